"""Circuit tasks: pairs of a positive prompt (the model can predict the answer) and a negative, corrupted one
(it cannot), with the answer token and a wrong token; the metric is the logit difference answer − wrong at
the last position (O'Neill & Bui 2024; Wang et al.'s IOI).

Built in for the zoo LM: induction on repeated random tokens, and two Python tasks (repeating an argument name
in `__init__`, closing a bracket). Templates of the paper's tasks (IOI, greater-than, docstring) ship for users
with GPT-2-style models. A user's task is JSON ({"name", "pairs": [{"positive", "negative", "answer", "wrong"}]})
or CSV with those columns (`wrong` optional: then the negative's own answer is unknown and the metric is the
answer's logit alone).
"""
from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass

import torch

from compute.errors import BadInput

MAX_PAIRS = 2048


@dataclass(frozen=True)
class Pair:
    positive: str
    negative: str
    answer: str
    wrong: str = ""


@dataclass(frozen=True)
class TaskTokens:
    """Token ids of a task, pairs of equal length (positives, negatives [n, T] per length group)."""
    groups: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], ...]  # (pos, neg, answer, wrong)
    dropped: int  # built-in pairs left out because positive and negative tokenise to different lengths

    @property
    def n_pairs(self) -> int:
        return sum(len(g[0]) for g in self.groups)


IDENTIFIERS = ("name", "value", "path", "data", "key", "size", "text", "line", "result", "item", "node", "func",
               "args", "index", "count", "mode", "level", "prefix", "parent", "source", "target", "limit", "state",
               "token", "buffer", "offset", "module", "filename", "message")
NAMES = ("Mary", "John", "Tom", "James", "Anna", "Paul", "Sarah", "David", "Laura", "Mark", "Emma", "Peter")
PLACES = ("store", "park", "school", "office", "garden", "station")
OBJECTS = ("drink", "book", "ring", "letter", "bag", "key")


def _init_assign(n: int, rng: random.Random) -> list[Pair]:
    out = []
    for _ in range(n):
        a, b = rng.sample(IDENTIFIERS, 2)
        out.append(Pair(f"    def __init__(self, {a}):\n        self.{a} =",
                        f"    def __init__(self, {b}):\n        self.{a} =", f" {a}", f" {b}"))
    return out


def _close_bracket(n: int, rng: random.Random) -> list[Pair]:
    out = []
    for _ in range(n):
        a, b = rng.sample(IDENTIFIERS, 2)
        out.append(Pair(f"x = {a}({b}[0", f"x = {a}[{b}(0", "]", ")"))
    return out


def _ioi(n: int, rng: random.Random) -> list[Pair]:
    out = []
    for _ in range(n):
        a, b, c, d = rng.sample(NAMES, 4)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        out.append(Pair(f"When {a} and {b} went to the {place}, {b} gave a {obj} to",
                        f"When {c} and {d} went to the {place}, {b} gave a {obj} to", f" {a}", f" {b}"))
    return out


def _greater_than(n: int, rng: random.Random) -> list[Pair]:
    out = []
    for _ in range(n):
        yy = rng.randrange(2, 98)
        # the answer: a year after the start; wrong: one before it (Hanna et al. score the probability mass above)
        out.append(Pair(f"The war lasted from the year 17{yy:02d} to the year 17",
                        f"The war lasted from the year 1701 to the year 17", f"{yy + 1:02d}", f"{yy - 1:02d}"))
    return out


def _docstring(n: int, rng: random.Random) -> list[Pair]:
    out = []
    for _ in range(n):
        f, a, b, c, x, y, z = rng.sample(IDENTIFIERS, 7)
        body = '):\n    """Do it.\n\n    :param {p}: the first\n    :param {q}: the second\n    :param'
        out.append(Pair(f"def {f}(self, {a}, {b}, {c}" + body.format(p=a, q=b),
                        f"def {f}(self, {x}, {y}, {z}" + body.format(p=a, q=b), f" {c}", f" {a}"))
    return out


TEXT_TASKS = {
    "init_assign": ("Python: `self.x = x` in `__init__` repeats the argument name", _init_assign),
    "close_bracket": ("Python: close the innermost bracket (`]` after `(b[0`, not `)`)", _close_bracket),
    "ioi": ("IOI template (GPT-2): the indirect object; negatives with other names", _ioi),
    "greater_than": ("Greater-than template (GPT-2): a later year; negatives start at 1701", _greater_than),
    "docstring": ("Docstring template (attn-only models): the next :param name; negatives rename the arguments",
                  _docstring),
}
INDUCTION = "induction"
BUILT_IN = {INDUCTION: "Induction: a random token sequence repeated; negatives repeat a different one",
            **{k: v[0] for k, v in TEXT_TASKS.items()}}


def parse_task(text: str) -> tuple[str, list[Pair]]:
    """A user's task file (JSON or CSV) -> (name, pairs); BadInput saying what is wrong."""
    text = (text or "").strip()
    if not text:
        raise BadInput("the task is empty: give JSON {\"pairs\": [...]} or CSV with positive,negative,answer columns")
    if text[0] in "{[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"the task file does not parse as JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
        name, rows = (data.get("name", "custom"), data.get("pairs")) if isinstance(data, dict) else ("custom", data)
        if not isinstance(rows, list):
            raise BadInput("the task JSON needs a list under \"pairs\"")
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as e:
            raise BadInput(f"the task file does not parse as CSV: {e}") from None
        name = "custom"
    pairs = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row.get(k)
                                                for k in ("positive", "negative", "answer")):
            raise BadInput(f"pair {i + 1} needs non-empty text fields positive, negative and answer")
        pairs.append(Pair(row["positive"], row["negative"], row["answer"], str(row.get("wrong") or "")))
    if not pairs:
        raise BadInput("the task has no pairs")
    if len(pairs) > MAX_PAIRS:
        raise BadInput(f"the task has {len(pairs)} pairs; at most {MAX_PAIRS}")
    return str(name), pairs


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _one_token(tok, text: str, what: str, i: int) -> int:
    ids = _ids(tok, text)
    if len(ids) != 1:
        raise BadInput(f"pair {i + 1}: the {what} {text!r} is {len(ids)} tokens for this model; it must be one token")
    return ids[0]


def _grouped(rows: list[tuple[list[int], list[int], int, int]]) -> tuple:
    by_len: dict[int, list] = {}
    for r in rows:
        by_len.setdefault(len(r[0]), []).append(r)
    return tuple((torch.tensor([r[0] for r in g]), torch.tensor([r[1] for r in g]),
                  torch.tensor([r[2] for r in g]), torch.tensor([r[3] for r in g])) for _, g in sorted(by_len.items()))


def text_task_tokens(lm, pairs: list[Pair], strict: bool) -> TaskTokens:
    """Tokenise pairs (BOS first when the model has one). `strict`: a pair whose positive and negative differ in
    length is an error (a user's task); otherwise it is dropped and counted (a template)."""
    tok = lm.tokenizer
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    rows, dropped = [], 0
    for i, p in enumerate(pairs):
        pos, neg = bos + _ids(tok, p.positive), bos + _ids(tok, p.negative)
        if len(pos) != len(neg):
            if strict:
                raise BadInput(f"pair {i + 1}: the positive is {len(pos)} tokens and the negative {len(neg)}; patching "
                               f"a head from one into the other needs equal lengths")
            dropped += 1
            continue
        if lm.n_ctx and len(pos) > lm.n_ctx:
            raise BadInput(f"pair {i + 1} is {len(pos)} tokens; the model's context is {lm.n_ctx}")
        ans = _one_token(tok, p.answer, "answer", i)
        wrong = _one_token(tok, p.wrong, "wrong answer", i) if p.wrong else -1
        rows.append((pos, neg, ans, wrong))
    if not rows:
        raise BadInput("no pair of this task has a positive and a negative of equal length for this tokenizer")
    return TaskTokens(_grouped(rows), dropped)


def induction_tokens(lm, n: int, length: int, seed: int) -> TaskTokens:
    """Positive: BOS, r_1..r_L, r_1..r_{L-1} -> r_L. Negative: BOS, s_1..s_L, r_1..r_{L-1} (no earlier copy);
    wrong answer s_L, an equally random token."""
    tok = lm.tokenizer
    special = set(tok.all_special_ids)
    vocab = [i for i in range(int(lm.model.cfg.d_vocab)) if i not in special]
    g = torch.Generator().manual_seed(seed)
    pick = lambda k: torch.tensor(vocab)[torch.randint(len(vocab), (n, k), generator=g)]  # noqa: E731
    r, s = pick(length), pick(length)
    bos = torch.full((n, 1), tok.bos_token_id if tok.bos_token_id is not None else vocab[0])
    pos = torch.cat([bos, r, r[:, :-1]], 1)
    neg = torch.cat([bos, s, r[:, :-1]], 1)
    return TaskTokens(((pos, neg, r[:, -1], s[:, -1]),), 0)


def task_tokens(lm, task: str, task_text: str, n: int, seed: int) -> tuple[str, str, TaskTokens]:
    """(name, description, tokens) of a built-in task (n pairs) or of a user's task text."""
    if task_text.strip():
        name, pairs = parse_task(task_text)
        return name, f"user task ({len(pairs)} pairs)", text_task_tokens(lm, pairs, strict=True)
    if task == INDUCTION:
        return task, BUILT_IN[task], induction_tokens(lm, n, 12, seed)
    if task in TEXT_TASKS:
        return task, BUILT_IN[task], text_task_tokens(lm, TEXT_TASKS[task][1](n, random.Random(seed)), strict=False)
    raise BadInput(f"unknown task '{task}'; built in: {', '.join(BUILT_IN)} (or give a task file)")
