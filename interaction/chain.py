"""A model as a chain of folded-bias steps between its node layers (rib's SequentialTransformer / folded MLP),
and the sections between the node layers a researcher picks.

Every activation is [N, P, d + 1]: P positions (1 for an MLP), a constant in the last slot (the folded
bias). A chain knows its node layers in forward order (`order`), how to reach the first from the model's
inputs (`embed`), the names it also answers to (rib's, `canonical`), and which of its node layers hold a
LayerNorm variance in slot 0 (`variance_layers`, rib's ln_out nodes, whose variance direction is kept apart).
Which chain a loaded model has: `chain_for` (interaction/models.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from compute.errors import BadInput

LOGITS = "logits"


@dataclass
class Step:
    """The computation from node layer `start` to the next one in the chain."""
    start: str
    run: Callable[[torch.Tensor], torch.Tensor]
    attention: bool = False  # mixes positions (so it cannot come after the last-position cut)


@dataclass
class Chain:
    steps: list[Step]
    output: str  # the last node layer (the logits), kept in its neuron basis (rib: rotate_final_node_layer false)
    embed: Callable[[torch.Tensor], torch.Tensor]  # model inputs -> the first node layer's activations
    canonical: Callable[[str], str] = lambda name: name
    variance_layers: frozenset[str] = field(default_factory=frozenset)

    @property
    def order(self) -> list[str]:
        return [s.start for s in self.steps] + [self.output]

    def activations_at(self, inputs: torch.Tensor, layer: str) -> torch.Tensor:
        """The activations [N, P, d + 1] at a node layer, run from the model's inputs."""
        f = self.embed(inputs)
        with torch.no_grad():
            for s in self.steps[: self.order.index(self.canonical(layer))]:
                f = s.run(f)
        return f


@dataclass
class Section:
    """The computation from one chosen node layer to the next."""
    start: str
    end: str
    run: Callable[[torch.Tensor], torch.Tensor]  # [b, P, d+1] -> [b, P', d'+1] (or logits)


def build_sections(chain: Chain, node_layers: list[str], last_pos_from: str | None = None) -> list[Section]:
    """Sections between consecutive node layers (in forward order); from `last_pos_from` on, each
    step's output keeps only the last position (rib's last_pos_module_type)."""
    order = chain.order
    layers = [chain.canonical(n) for n in node_layers]
    unknown = [n for n, c in zip(node_layers, layers) if c not in order]
    if unknown:
        raise BadInput(f"unknown node layer(s) {', '.join(unknown)}; this model has {', '.join(order)}")
    idx = [order.index(c) for c in layers]
    if idx != sorted(idx) or len(set(idx)) != len(idx):
        raise BadInput("node layers must be distinct and in forward order")
    if layers[-1] != chain.output:
        raise BadInput(f"the last node layer must be the model's output ({chain.output}), which stays in its "
                       f"neuron basis as rib's")
    cut = None
    if last_pos_from:
        name = chain.canonical(last_pos_from)
        if name not in order:
            raise BadInput(f"unknown node layer {last_pos_from} for the last-position cut")
        cut = order.index(name)
        late = [s.start for s in chain.steps[cut:] if s.attention]
        if late:
            raise BadInput(f"the last-position cut at {name} comes before attention ({late[0]}), which needs "
                           f"every position; cut after the last attention layer")
    sections = []
    for a, b in zip(idx, idx[1:]):
        steps = chain.steps[a:b]

        def run(f, steps=steps, first_index=a):
            for i, step in enumerate(steps):
                f = step.run(f)
                if cut is not None and first_index + i + 1 >= cut and f.shape[-2] > 1:
                    f = f[..., -1:, :]  # from the cut on, only the last position
            return f
        sections.append(Section(order[a], order[b], run))
    return sections
