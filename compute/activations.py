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

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Activations [start, stop) of the flattened tokens, reading only the shards that hold them."""
        parts, at = [], 0
        for name in self.meta["shards"]:
            if at >= stop:
                break
            with safe_open(str(self.path / name), "pt") as f:
                n = f.get_slice("acts").get_shape()[0]
                if at + n > start:
                    parts.append(f.get_slice("acts")[max(start - at, 0) : min(stop - at, n)])
            at += n
        return torch.cat(parts) if parts else torch.zeros(0, self.meta.get("d") or 0)

    def tokens(self) -> torch.Tensor:
        return load_file(self.path / "tokens.safetensors")["tokens"]


class ActivationCache:
    def __init__(self, root: Path, pool=None):
        """`pool` (compute.cluster.TaskPool): on a cluster, new sets are built shard by shard as parallel tasks."""
        self.pool = pool
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
                     batch_size: int = 16, progress: Callable[[float, str], None] | None = None,
                     pool=None) -> ActivationSet:
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
            # a shard is the fewest whole batches holding SHARD_TOKENS tokens: the same batches, hence the same
            # numbers, whether the shards run here one after another or as tasks on a cluster
            rows_per_shard = batch_size * -(-SHARD_TOKENS // (batch_size * seq_len))
            starts = range(0, len(tokens), rows_per_shard)
            names = [f"acts_{i:04d}.safetensors" for i in range(len(starts))]
            calls = [(lm.id, lm.fingerprint, hook, tokens[a : a + rows_per_shard], batch_size, str(tmp / name))
                     for a, name in zip(starts, names)]
            pool = pool or self.pool
            if pool is not None and pool.parallel and len(calls) > 1:
                dims = pool.map(activation_shard, calls, progress=progress, what=f"caching {hook}")
            else:
                dims = []
                for i, (_, _, _, rows, _, path) in enumerate(calls):
                    within = (lambda f, i=i: progress((i + f) / len(calls), f"caching {hook}")) if progress else None
                    dims.append(write_shard(lm, hook, rows, batch_size, Path(path), within))
            save_file({"tokens": tokens.contiguous()}, tmp / "tokens.safetensors")
            meta = {"model": lm.id, "fingerprint": lm.fingerprint, "dataset": dataset, "hook": hook,
                    "seq_len": seq_len, "n_tokens": int(tokens.numel()), "d": dims[0] if dims else None,
                    "shards": names, "exhausted": len(tokens) < n_rows}
            (tmp / "meta.json").write_text(json.dumps(meta))
            if final.exists():  # a smaller set for the same key: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
            self.builds += 1
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return ActivationSet(final, meta)


@torch.no_grad()
def write_shard(lm: LoadedModel, hook: str, rows: torch.Tensor, batch_size: int, path: Path,
                progress: Callable[[float], None] | None = None) -> int:
    """One shard: the hook's activations on these token rows, [rows·pos, d] in one safetensors file; returns d."""
    parts = []
    for i in range(0, len(rows), batch_size):
        # the forward pass stops after the hook's block (saves the later layers and the unembedding)
        a = activations_at(lm.model, hook, rows[i : i + batch_size].to(lm.device)).float().cpu()
        parts.append(a.reshape(a.shape[0] * a.shape[1], -1))  # [batch*pos, d]; hook_z heads concatenated
        if progress:
            progress(min(1.0, (i + batch_size) / len(rows)))
    acts = torch.cat(parts)
    save_file({"acts": acts.contiguous()}, path)
    return int(acts.shape[1])


_registry = None  # a cluster task's own model registry: one loaded copy per worker process


def activation_shard(model_id: str, fingerprint: str, hook: str, rows: torch.Tensor, batch_size: int,
                     path: str) -> int:
    """A shard as a cluster task computes it, with the worker process's own copy of the model."""
    global _registry
    from .models import ModelRegistry
    from .settings import load_settings

    if _registry is None:
        _registry = ModelRegistry(load_settings())
    lm = _registry.get(model_id)
    if lm.fingerprint != fingerprint:
        raise RuntimeError(f"{model_id} on this node has other weights than the submitting server's "
                           f"({lm.fingerprint} vs {fingerprint}): every node must see the same model files")
    with _registry.device_lock(lm.device):
        return write_shard(lm, hook, rows, batch_size, Path(path))

