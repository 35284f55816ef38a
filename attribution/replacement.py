"""Replacement tokens for ReAGent: what a "replaced" context token becomes.

- `FrequencySampler`: draws from the unigram distribution of the zoo corpus under the model's own
  tokenizer (always works offline; never the original token).
- `MaskedLMSampler`: a masked language model predicts each replaced position from the rest of the
  context (the paper's choice is RoBERTa); tokens move between the two vocabularies by their token
  strings, so any byte-level BPE pair works (the zoo MLM shares the zoo LM's tokenizer exactly).
"""
from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

import numpy as np
import torch

from compute.datasets import CORPUS, EOT

FREQ_CHARS = 3_000_000


class FrequencySampler:
    name = "frequency"
    label = "unigram frequencies of the zoo corpus (offline)"

    def __init__(self, tokenizer, cache_dir: Path | None = None):
        self.vocab = len(tokenizer)
        counts = self._counts(tokenizer, cache_dir)
        counts = counts.astype(np.float64) + 1.0  # every token possible
        for tid in {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}:
            counts[tid] = 0.0  # never replace a token by a document break
        self.probs = torch.tensor(counts / counts.sum(), dtype=torch.float32)

    def _counts(self, tokenizer, cache_dir: Path | None) -> np.ndarray:
        key = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]
        path = cache_dir / f"unigram-{key}.npy" if cache_dir else None
        if path is not None and path.exists():
            return np.load(path)
        with lzma.open(CORPUS, "rt", encoding="utf-8") as fh:
            text = fh.read(FREQ_CHARS).replace(EOT, "\n")
        ids = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        counts = np.bincount(ids[ids < self.vocab], minlength=self.vocab)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, counts)
            tmp.replace(path)
        return counts

    def replace(self, ids: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """ids [b, n]; mask [b, n] bool: where to replace. Never returns the original token there."""
        out = ids.clone()
        n = int(mask.sum())
        if n == 0:
            return out
        draw = torch.multinomial(self.probs, n * 2, replacement=True, generator=gen).view(n, 2).to(ids.device)
        orig = ids[mask]
        out[mask] = torch.where(draw[:, 0] != orig, draw[:, 0], draw[:, 1])
        return out


class MaskedLMSampler:
    name = "masked_lm"

    def __init__(self, mlm, mlm_tokenizer, lm_tokenizer, label: str, device: str = "cpu"):
        self.mlm = mlm.eval().to(device)
        self.device = device
        self.label = label
        self.mask_id = mlm_tokenizer.mask_token_id
        if self.mask_id is None:
            raise ValueError(f"{label} has no mask token")
        lm_vocab, mlm_vocab = lm_tokenizer.get_vocab(), mlm_tokenizer.get_vocab()
        self.lm_to_mlm = torch.full((len(lm_tokenizer),), mlm_tokenizer.unk_token_id or self.mask_id)
        self.mlm_to_lm = torch.full((max(len(mlm_tokenizer), mlm.config.vocab_size),), -1)
        for s, i in lm_vocab.items():
            j = mlm_vocab.get(s)
            if j is not None and i < len(self.lm_to_mlm):
                self.lm_to_mlm[i] = j
                if j < len(self.mlm_to_lm):
                    self.mlm_to_lm[j] = i
        self.shared = int((self.mlm_to_lm >= 0).sum())
        if self.shared < 100:
            raise ValueError(f"{label} shares only {self.shared} tokens with the model's vocabulary")
        specials = [t for t in (lm_tokenizer.bos_token_id, lm_tokenizer.eos_token_id) if t is not None]
        self.allowed = (self.mlm_to_lm >= 0)
        for t in specials:
            self.allowed &= self.mlm_to_lm != t

    @torch.no_grad()
    def replace(self, ids: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = ids.clone()
        if not mask.any():
            return out
        x = self.lm_to_mlm[ids.cpu()].to(self.device)
        x[mask.to(self.device)] = self.mask_id
        logits = self.mlm(input_ids=x).logits.float()[mask.to(self.device)]  # [n_masked, V_mlm]
        logits = logits[:, : len(self.allowed)]
        logits[:, ~self.allowed.to(self.device)] = float("-inf")
        orig = self.lm_to_mlm[ids[mask].cpu()].to(self.device)
        logits[torch.arange(len(orig)), orig] = float("-inf")  # a replacement is never the original
        pick = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=gen).squeeze(-1)
        out[mask] = self.mlm_to_lm[pick].to(ids.device)
        return out
