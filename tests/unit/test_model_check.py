"""The per-head scores of the model check, on attention patterns whose answer is known by construction."""
import dataclasses

import numpy as np
import torch

from analyses.model_check import ModelCheckSpec
from compute.tasks.induction import head_scores


def _patterns(offset: int, half: int) -> torch.Tensor:
    """[1, 3 heads, T, T]: head 0 attends to the previous token, head 1 is an induction head on the second
    copy (previous token elsewhere), head 2 attends uniformly to everything before it."""
    T = offset + 2 * half
    pat = torch.zeros(1, 3, T, T)
    for q in range(T):
        prev = max(q - 1, 0)
        pat[0, 0, q, prev] = 1.0
        pat[0, 1, q, q - half + 1 if q >= offset + half else prev] = 1.0
        pat[0, 2, q, : q + 1] = 1.0 / (q + 1)
    return pat


def test_scores_recover_the_heads_built_in():
    offset, half = 1, 10
    induction, previous = head_scores([_patterns(offset, half)], offset, half)
    assert induction.shape == previous.shape == (1, 3)
    assert previous[0, 0] == 1.0 and induction[0, 0] == 0.0
    assert induction[0, 1] == 1.0
    # the induction head attends to the previous token only on the first copy
    assert np.isclose(previous[0, 1], (half - 1) / (2 * half - 1))
    uniform_prev = np.mean([1 / (q + 1) for q in range(offset + 1, offset + 2 * half)])
    assert np.isclose(previous[0, 2], uniform_prev)


def test_new_result_version_is_not_served_from_an_older_cache_entry(wb):
    spec = ModelCheckSpec(model="zoo-digits-cnn")

    @dataclasses.dataclass(frozen=True)
    class OlderCheck(ModelCheckSpec):
        RESULT_VERSION = 1

    older = OlderCheck(model="zoo-digits-cnn")
    assert older.hash == spec.hash  # the share link stays the same ...
    assert wb.result_key(older) != wb.result_key(spec)  # ... but results of the older version are not reused
