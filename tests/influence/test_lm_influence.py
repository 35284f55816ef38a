"""Influence queries on the zoo LM (EK-FAC through kronfluence on the HF model inside the bridge): a planted
copy of the query is the most helpful training sequence and carries its influence on the query's own tokens;
a copy with the completion swapped for a wrong one is among the most harmful; token scores sum to sequence
scores; per-module scores split MLP from attention; TF-IDF and low-rank query checks are reported; the CLI
prints the JSON the issue specifies."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analyses.influence_lm import InfluenceLMSpec
from compute.datasets import EOT, corpus_documents

PROMPT = "def greet(name):\n    return 'Hello, ' +"
COMPLETION = " name.title()"
WRONG = " str(len(greeting))"


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    filler = [d[:700] for d in corpus_documents("heldout")[:24]]
    # the planted copy opens the file, so it lies whole in the first training sequence
    docs = [PROMPT + COMPLETION] + filler[:12] + [PROMPT + WRONG] + filler[12:]
    path = tmp_path_factory.mktemp("train") / "train.txt"
    path.write_text(f"\n{EOT}\n".join(docs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def planted(wb, train_file):
    spec = InfluenceLMSpec(model="zoo-lm", train=f"text:{train_file}", modules="mlp+attn", prompt=PROMPT,
                           completion=COMPLETION, top=8, tfidf_k=8, rank=4)
    return spec, wb.run(spec).result


def _span(row, text: str) -> np.ndarray:
    """The token scores of `row` whose tokens lie inside `text` (where it occurs in the row's sequence)."""
    tokens, scores = list(row.tokens), np.asarray(list(row.token_scores))
    start = "".join(tokens).index(text)
    ends = np.cumsum([len(t) for t in tokens])
    return scores[(ends > start) & (ends <= start + len(text))]


def test_the_planted_copy_is_most_helpful_and_the_swapped_one_harmful(planted):
    spec, r = planted
    helpful, harmful = r.tables["helpful"], r.tables["harmful"]
    assert PROMPT + COMPLETION in helpful.text.iloc[0]
    assert helpful.score.iloc[0] > 3 * abs(helpful.score.iloc[1])
    assert (helpful.score > 0).all() and (harmful.score < 0).all()
    # The swapped copy shares its 128-token training sequence with the documents packed around it, whose
    # influence can outweigh it at the sequence level (measured: its own tokens −180 to −290 across Fisher
    # seeds, the rest of its sequence +300 to +450); token-wise it is the harm: its tokens sum negative and
    # hold the most harmful tokens of the training set.
    rows = pd.concat([helpful, harmful])
    swapped = rows[rows.text.str.contains(PROMPT + WRONG, regex=False)].iloc[0]
    own = _span(swapped, PROMPT + WRONG)
    assert own.sum() < 0 and own.sum() < -0.01 * helpful.score.iloc[0]
    every_token = np.sort(np.concatenate([np.asarray(list(t)) for t in rows.token_scores]))
    assert own.min() <= every_token[4]  # among the five most harmful tokens anywhere
    assert swapped.score < 0.1 * helpful.score.iloc[0]


def test_token_scores_add_up_and_sit_on_the_planted_tokens(planted):
    _, r = planted
    top = r.tables["helpful"].iloc[0]
    tokens, token_scores = list(top.tokens), np.asarray(list(top.token_scores))
    assert len(tokens) == len(token_scores)
    assert np.isclose(token_scores.sum(), top.score, rtol=1e-3)
    assert _span(top, PROMPT + COMPLETION).sum() > 0.5 * token_scores.sum()


def test_modules_split_mlp_from_attention_and_checks_are_reported(planted):
    _, r = planted
    modules = r.tables["modules"]
    assert set(modules.block) == {"mlp", "attention"} and set(modules.layer) == {0, 1}
    assert len(modules) == 12  # q, k, v, o and the two MLP projections, in both layers
    scores = r.tables["scores"].score.to_numpy()
    assert np.isclose(modules.total.sum(), scores.sum(), rtol=1e-3)
    checks = r.summary["checks"]
    assert 0.0 <= checks["tfidf_recall_of_unfiltered_top10"] <= 1.0
    assert checks["rank_r_vs_full_rank_pearson"] > 0.5
    assert r.summary["scored"] == 8
    assert 0 < r.summary["top_1pct_share_of_abs_influence"] <= 1
    assert "positive = helpful" in r.summary["sign_and_scale"]


def test_the_cli_prints_the_issue_json(train_file, tmp_path):
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "cli.main", "influence", "--model", "zoo-lm", "--prompt", PROMPT,
                        "--completion", COMPLETION, "--train", str(train_file), "--modules", "mlp", "--top", "3",
                        "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert len(out["helpful"]) == 3 and {"text", "score", "tokens", "token_scores"} <= set(out["helpful"][0])
    assert PROMPT + COMPLETION in out["helpful"][0]["text"]
    assert out["harmful"] and out["harmful"][0]["score"] < 0
    assert {"factors", "query_and_scores"} <= set(out["timing"])
