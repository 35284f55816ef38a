"""Token datasets for activation caching and evaluation.

`zoo-stdlib` is the zoo corpus (train split), `zoo-stdlib-heldout` its held-out files; `text:PATH`
is any UTF-8 text file on the server. Documents are tokenised with the model's own tokenizer and
cut into rows of `seq_len` tokens, each starting with the model's BOS token when it has one.
"""
from __future__ import annotations

import lzma
from pathlib import Path

import torch

from .errors import BadInput
from .settings import ASSETS

EOT = "<|endoftext|>"
CORPUS = ASSETS / "corpus" / "python-stdlib.txt.xz"
HELD_OUT_EVERY = 20  # assets/scripts/build_corpus.py splits by this too
DATASETS = {"zoo-stdlib": "Python standard library source (train split of the zoo corpus)",
            "zoo-stdlib-heldout": "Python standard library source (held-out files)"}


def corpus_documents(split: str) -> list[str]:
    with lzma.open(CORPUS, "rt", encoding="utf-8") as fh:
        docs = fh.read().split(EOT)
    keep_held = split == "heldout"
    return [d for i, d in enumerate(docs) if (i % HELD_OUT_EVERY == 0) == keep_held]


def dataset_documents(dataset: str) -> list[str]:
    if dataset == "zoo-stdlib":
        return corpus_documents("train")
    if dataset == "zoo-stdlib-heldout":
        return corpus_documents("heldout")
    if dataset.startswith("text:"):
        path = Path(dataset[5:]).expanduser()
        if not path.is_file():
            raise BadInput(f"dataset file not found: {path}")
        try:
            return [path.read_text(encoding="utf-8")]
        except UnicodeDecodeError:
            raise BadInput(f"dataset file {path} is not UTF-8 text") from None
    raise BadInput(f"unknown dataset '{dataset}'; use one of {', '.join(DATASETS)} or text:PATH")


def token_rows(tokenizer, dataset: str, seq_len: int, n_rows: int, bos_id: int | None) -> torch.Tensor:
    """The first n_rows rows of seq_len tokens of the dataset (deterministic)."""
    if seq_len < 2:
        raise BadInput("seq_len must be at least 2")
    body = seq_len - (1 if bos_id is not None else 0)
    rows: list[list[int]] = []
    buf: list[int] = []
    for doc in dataset_documents(dataset):
        buf.extend(tokenizer(doc)["input_ids"])
        while len(buf) >= body and len(rows) < n_rows:
            rows.append(([bos_id] if bos_id is not None else []) + buf[:body])
            buf = buf[body:]
        if len(rows) >= n_rows:
            break
    if not rows:
        raise BadInput(f"dataset '{dataset}' has fewer than {body} tokens")
    return torch.tensor(rows, dtype=torch.long)
