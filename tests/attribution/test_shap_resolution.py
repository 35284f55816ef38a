"""SHAP on text resolves every token once its budget allows (issue: eleven tokens shared one value).

shap's Partition explainer expands a tree of adjacent spans from the root; a node at depth d is expanded
2^d times. Our tree is balanced (halving), so n tokens need about 2n²/3 evaluations; the chain the
workbench built before needed about 2^n, and left the first tokens of any realistic prompt sharing a value.
"""
import numpy as np
import pytest
import torch

from attribution.text_methods import adjacent_tree, evals_to_resolve, node_spans, shap_values
from attribution.text_task import TextTask
from tests.attribution.toy import toy_tokenizer

N, A, B, TARGET, MASK = 21, 2, 9, 5, 1


class TwoTokenModel(torch.nn.Module):
    """Planted: the target's logit at the last position is 3·[token A present] + 2·[token B present]
    (present: not masked); no other token matters."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, 20)
        present = (ids != MASK).float()
        logits[:, -1, TARGET] = 3 * present[:, 1 + A] + 2 * present[:, 1 + B]
        return logits


def planted_task() -> TextTask:
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.tensor([0]), torch.randint(2, 20, (N,), generator=g)])
    return TextTask(TwoTokenModel(), ids, torch.tensor([TARGET]))


def test_the_tree_is_balanced_and_its_budget_is_known():
    for n in (2, 3, 8, 21, 32, 64):
        tree = adjacent_tree(n)
        spans = node_spans(tree)
        assert spans[-1] == (0, n - 1)  # the root covers the prompt
        for left, right, _, size in tree:  # every merge joins neighbours, halves differ by at most one token
            a, b = spans[int(left)], spans[int(right)]
            assert a[1] + 1 == b[0] and abs((a[1] - a[0]) - (b[1] - b[0])) <= 1 and size == b[1] - a[0] + 1
    for n in (8, 16, 32, 64):  # halving a power of two: (n² - 1)/3 expansions, two rows each, + 1
        assert evals_to_resolve(adjacent_tree(n)) == (2 * n * n + 1) // 3
    assert evals_to_resolve(adjacent_tree(21)) == 331


def test_two_separated_planted_tokens_get_their_own_values():
    task = planted_task()
    a = shap_values(task, tokenizer=toy_tokenizer(), max_evals=500)
    s = a.scores
    assert a.notes["resolved"] and a.notes["unresolved_spans"] == [] and a.notes["evals_to_resolve"] == 331
    assert s[A] > s[B] > 0
    others = np.delete(s, [A, B])
    np.testing.assert_allclose(others, 0, atol=1e-9)  # tokens that do not matter get nothing
    # Owen values sum to f(all) - f(none) (efficiency)
    full, empty = task.logprob_ids(task.prompt_ids[None]), task.logprob_ids(torch.tensor([[0] + [MASK] * N]))
    assert s.sum() == pytest.approx(float(full - empty), abs=1e-6)


def test_a_budget_too_small_names_the_spans_that_share_a_value():
    task = planted_task()
    a = shap_values(task, tokenizer=toy_tokenizer(), max_evals=60)
    assert not a.notes["resolved"] and a.notes["evals_to_resolve"] == 331
    spans = a.notes["unresolved_spans"]
    assert spans and all(0 <= lo < hi < N for lo, hi in spans)
    # every run of adjacent tokens with one value (longer than one token) lies inside a reported span
    s = a.scores
    for i in range(N - 1):
        if s[i] == s[i + 1] and abs(s[i]) > 0:
            assert any(lo <= i and i + 1 <= hi for lo, hi in spans), (i, spans)
    assert "ties" in a.notes


def test_the_issue_prompt_resolves_at_the_default_budget(wb):
    from analyses.attribution_text import AttributionTextSpec

    spec = AttributionTextSpec(model="zoo-lm", prompt="def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return",
                               target=" a", methods=("shap",))
    res = wb.run(spec).result
    notes = res.summary["notes"]["shap"]
    assert notes["resolved"] and notes["unresolved_spans"] == [] and notes["evals_to_resolve"] <= spec.shap_max_evals
    first11 = res.tables["scores"].query("method == 'shap'").score.to_numpy()[:11]
    assert len(np.unique(first11)) == 11, first11
