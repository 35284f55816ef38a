"""On-disk activation cache per (model weights, dataset, hook, context length).

Activations are flattened to [tokens, d] (hook_z's heads are concatenated) and stored as
safetensors shards with a meta.json, published atomically like results. A later request for the
same or fewer tokens is a disk read; SAE training and feature dashboards read from here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .datasets import token_rows
from .disk_budget import touch
from .errors import BadInput
from .hooks import activations_at, check_hook
from .models import LoadedModel

SHARD_TOKENS = 1 << 16


@dataclass(frozen=True)
class ActivationSet:
    path: Path
    meta: dict

    def load(self, n_tokens: int | None = None) -> torch.Tensor:
        parts, have = [], 0
        for name in self.meta["shards"]:
            t = load_file(self.path / name)["acts"]
            parts.append(t)
            have += len(t)
            if n_tokens is not None and have >= n_tokens:
                break
        acts = torch.cat(parts)
        return acts[:n_tokens] if n_tokens is not None else acts

    def tokens(self) -> torch.Tensor:
        return load_file(self.path / "tokens.safetensors")["tokens"]


class ActivationCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.builds = 0

    def key(self, fingerprint: str, dataset: str, hook: str, seq_len: int) -> str:
        return hashlib.sha256(f"{fingerprint}|{dataset}|{hook}|{seq_len}".encode()).hexdigest()[:24]

    def lookup(self, fingerprint: str, dataset: str, hook: str, seq_len: int, n_tokens: int) -> ActivationSet | None:
        path = self.root / self.key(fingerprint, dataset, hook, seq_len)
        meta_path = path / "meta.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            for name in [*meta["shards"], "tokens.safetensors"]:
                with safe_open(str(path / name), "pt"):  # the header, and that the file holds all it declares
                    pass
        except Exception:  # noqa: BLE001 - a truncated shard, a damaged meta.json: set aside, rebuilt below
            self._set_aside(path)
            return None
        if not (meta["n_tokens"] >= n_tokens or meta.get("exhausted")):
            return None  # a dataset smaller than the request was cached whole: that is all there is
        touch(path)  # for the disk budget's least-recently-used order
        return ActivationSet(path, meta)

    def _set_aside(self, path: Path) -> None:
        """A damaged entry leaves the cache in one rename (no reader sees it after), then is removed."""
        aside = self.root / f".tmp-damaged-{path.name}-{os.getpid()}-{time.time_ns()}"
        try:
            path.rename(aside)
        except OSError:
            aside = path
        shutil.rmtree(aside, ignore_errors=True)

    def get_or_build(self, lm: LoadedModel, dataset: str, hook: str, n_tokens: int, seq_len: int = 128,
                     batch_size: int = 16, progress: Callable[[float, str], None] | None = None) -> ActivationSet:
        if lm.kind != "lm":
            raise BadInput("activation caching needs a language model")
        check_hook(lm.model, hook, lm.id)
        if n_tokens <= 0:
            raise BadInput("n_tokens must be positive")
        seq_len = min(seq_len, lm.n_ctx or seq_len)
        hit = self.lookup(lm.fingerprint, dataset, hook, seq_len, n_tokens)
        if hit is not None:
            return hit
        n_rows = -(-n_tokens // seq_len)
        tok = lm.tokenizer
        tokens = token_rows(tok, dataset, seq_len, n_rows, tok.bos_token_id)
        final = self.root / self.key(lm.fingerprint, dataset, hook, seq_len)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            shards, buf, buf_n, d = [], [], 0, None

            def flush():
                nonlocal buf, buf_n
                name = f"acts_{len(shards):04d}.safetensors"
                save_file({"acts": torch.cat(buf).contiguous()}, tmp / name)
                shards.append(name)
                buf, buf_n = [], 0

            for i in range(0, len(tokens), batch_size):
                # the forward pass stops after the hook's block (saves the later layers and the unembedding)
                a = activations_at(lm.model, hook, tokens[i : i + batch_size].to(lm.device)).float().cpu()
                a = a.reshape(a.shape[0] * a.shape[1], -1)  # [batch*pos, d]; hook_z heads concatenated
                d = a.shape[1]
                buf.append(a)
                buf_n += len(a)
                if buf_n >= SHARD_TOKENS:
                    flush()
                if progress:
                    progress(min(1.0, (i + batch_size) / len(tokens)), f"caching {hook}")
            if buf:
                flush()
            save_file({"tokens": tokens.contiguous()}, tmp / "tokens.safetensors")
            meta = {"model": lm.id, "fingerprint": lm.fingerprint, "dataset": dataset, "hook": hook,
                    "seq_len": seq_len, "n_tokens": int(tokens.numel()), "d": d, "shards": shards,
                    "exhausted": len(tokens) < n_rows}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if final.exists():  # a smaller set for the same key: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
            self.builds += 1
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return ActivationSet(final, meta)

