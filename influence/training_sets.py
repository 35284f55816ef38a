"""Training sets for influence queries, cut the way the model was trained.

Language models: documents joined into one token stream, each preceded by the end-of-text token, and cut into
consecutive rows of [EOT] + (ctx − 1) tokens — what assets/scripts/train_lm.py does (it samples windows of
that stream at random; the rows here tile it). `corpus` is the zoo LM's own training split at its final
training context (128); `text:PATH` is a UTF-8 file of documents separated by lines holding only <|endoftext|>.
When a set holds more rows than asked for, rows are taken evenly across the whole stream (every file of the
corpus is represented), in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compute.datasets import EOT, corpus_documents
from compute.errors import BadInput

ZOO_TRAINING_CONTEXT = 128  # train_lm.py's second stage (assets/zoo/lm/training_log.json)
MAX_TRAIN_FILE_BYTES = 200 * 2**20


@dataclass
class SequenceSet(torch.utils.data.Dataset):
    input_ids: torch.Tensor  # [N, T]
    rows: np.ndarray  # each sequence's row number in the full tiling of the stream
    total_rows: int
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        ids = self.input_ids[i]
        labels = torch.cat([ids[1:], torch.tensor([-100])])  # position t predicts token t+1; the last predicts nothing
        return {"input_ids": ids, "labels": labels}

    def subset(self, idx) -> "SequenceSet":
        idx = np.asarray(idx, dtype=int)
        return SequenceSet(self.input_ids[idx], self.rows[idx], self.total_rows, self.source)


def read_documents(path: str) -> list[str]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"training file not found: {p}")
    data = p.read_bytes()
    if len(data) > MAX_TRAIN_FILE_BYTES:
        raise BadInput(f"the training file is {len(data) / 2**20:.0f} MB; the limit is {MAX_TRAIN_FILE_BYTES // 2**20} MB")
    if b"\x00" in data:
        raise BadInput(f"{p.name} is not a text file (it holds NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{p.name} is not UTF-8 text") from None
    docs = [d.strip("\n") for d in _split_documents(text)]
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise BadInput(f"the training file {p.name} is empty")
    return docs


def _split_documents(text: str) -> list[str]:
    docs, cur = [], []
    for line in text.split("\n"):
        if line.strip() == EOT:
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    return docs


def lm_sequences(tokenizer, train: str, ctx: int, max_sequences: int, is_zoo_lm: bool) -> SequenceSet:
    if train == "corpus":
        if not is_zoo_lm:
            raise BadInput("only the zoo LM's training corpus ships with the workbench; name your model's "
                           "training data as a text file (--train FILE)")
        docs, ctx = corpus_documents("train"), ZOO_TRAINING_CONTEXT
    elif train.startswith("text:"):
        docs = read_documents(train[5:])
    else:
        raise BadInput(f"unknown training set '{train}': use 'corpus' (the zoo LM's own) or text:PATH")
    eot = tokenizer.convert_tokens_to_ids(EOT)
    if eot is None or eot == tokenizer.unk_token_id:
        eot = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if eot is None:
        raise BadInput("the model's tokenizer has no end-of-text token to separate documents with")
    stream: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        stream.append(eot)
        stream.extend(enc)
    body = ctx - 1
    total = len(stream) // body
    if total == 0:
        raise BadInput(f"the training set has {len(stream)} tokens, fewer than one sequence of {ctx}")
    rows = np.arange(total) if total <= max_sequences else np.linspace(0, total - 1, max_sequences).round().astype(int)
    arr = np.asarray(stream[: total * body], dtype=np.int64).reshape(total, body)[rows]
    ids = torch.from_numpy(np.concatenate([np.full((len(rows), 1), eot), arr], axis=1))
    return SequenceSet(ids, rows, total, train)
