"""ReAGent on targets the model finds unlikely (p ≈ 0.01) and on three-token targets: the planted token is
still found, and a low-probability target is flagged.

The published update adds logit((Δp + 1) / 2) with Δp = p_original - p_replaced, at most ±2p per step: for
p = 0.01 it barely moves the random initial scores. Ours divides Δp by p_original (a relative change,
the published rule when p is near 1)."""
import numpy as np
import torch

from attribution.reagent import LOW_PROBABILITY, reagent
from attribution.text_task import TextTask

V, N, KEY, OTHER = 2000, 12, 6, 3  # vocabulary, prompt tokens after BOS, the planted token's feature index


class UniformSampler:
    """Replaces a token by a uniformly drawn other one."""
    name = label = "uniform"

    def replace(self, ids, mask, gen):
        out = ids.clone()
        draw = torch.randint(2, V, (int(mask.sum()),), generator=gen)
        out[mask] = torch.where(draw != ids[mask], draw, (draw + 1) % V)
        return out


class PlantedLowP(torch.nn.Module):
    """Every target token's logit is 3 when the prompt's token at KEY is the original one, else -1; all other
    logits are 0. With 2,000 tokens that is p ≈ 0.01 per target token, still the top prediction."""

    def __init__(self, prompt: torch.Tensor, targets: torch.Tensor):
        super().__init__()
        self.key_token = int(prompt[1 + KEY])
        self.targets = targets
        self.n_prompt = len(prompt)

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, V)
        present = (ids[:, 1 + KEY] == self.key_token).float() * 4 - 1  # 3 or -1
        for j, t in enumerate(self.targets.tolist()):
            logits[:, self.n_prompt - 1 + j, t] = present
        return logits


def planted(n_targets: int) -> TextTask:
    g = torch.Generator().manual_seed(0)
    prompt = torch.cat([torch.tensor([0]), torch.randint(2, V, (N,), generator=g)])
    targets = torch.randint(2, V, (n_targets,), generator=g)
    return TextTask(PlantedLowP(prompt, targets), prompt, targets)


def test_a_planted_token_is_found_for_a_target_of_probability_one_in_a_hundred():
    task = planted(1)
    p = float(task.logprob_ids(task.prompt_ids[None]).exp())
    assert 0.005 < p < 0.02
    a = reagent(task, UniformSampler(), max_steps=60, num_probes=8, seed=0, keep_top_n=3, stop_top_k=1)
    assert int(np.argmax(a.scores)) == KEY, np.round(a.scores, 3)
    assert a.notes["converged_probes"] == 8
    assert a.notes["p_target"] < LOW_PROBABILITY and "unlikely" in a.notes["warning"]


def test_a_planted_token_is_found_for_a_three_token_target():
    task = planted(3)
    p = float(task.logprob_ids(task.prompt_ids[None]).exp())
    assert p < 1e-5  # three tokens of p ≈ 0.01 each
    a = reagent(task, UniformSampler(), max_steps=60, num_probes=8, seed=0, keep_top_n=3, stop_top_k=1)
    assert int(np.argmax(a.scores)) == KEY, np.round(a.scores, 3)
    assert a.notes["converged_probes"] == 8


class NeverPredicted(PlantedLowP):
    """The target's logit is -1 whatever the prompt: it is never the top prediction."""

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, V)
        for j, t in enumerate(self.targets.tolist()):
            logits[:, self.n_prompt - 1 + j, t] = -1.0
        return logits


def test_keeping_every_token_meets_the_stopping_rule_at_the_first_step():
    """The rule: stop when the probe's top-N tokens alone (all others replaced) keep every target token in
    the model's top k. With N = all tokens nothing is replaced, the prompt is the original one, and the
    target is the model's top prediction: every probe stops after one step."""
    task = planted(1)
    a = reagent(task, UniformSampler(), max_steps=50, num_probes=6, seed=0, keep_top_n=N, stop_top_k=1)
    assert a.notes["converged_probes"] == 6 and a.notes["median_steps"] == 1
    # keeping only one token stops a probe only once that token is the planted one: it takes longer
    b = reagent(task, UniformSampler(), max_steps=60, num_probes=6, seed=0, keep_top_n=1, stop_top_k=1)
    assert b.notes["converged_probes"] == 6 and b.notes["median_steps"] > 1
    assert int(np.argmax(b.scores)) == KEY


def test_no_converged_probe_is_warned_and_all_probes_are_averaged():
    base = planted(1)
    task = TextTask(NeverPredicted(base.prompt_ids, base.target_ids), base.prompt_ids, base.target_ids)
    a = reagent(task, UniformSampler(), max_steps=12, num_probes=4, seed=0, keep_top_n=3, stop_top_k=1)
    assert a.notes["converged_probes"] == 0 and a.notes["median_steps"] == 12
    assert "no probe met the stopping condition" in a.notes["warning"]
    assert abs(a.scores.sum() - 1) < 1e-9
    assert a.cost["forward_passes"] >= 12 * 2  # a replaced batch and a stopping test per step, all steps
