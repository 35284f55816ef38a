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
