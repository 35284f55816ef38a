"""A multilayer perceptron of the zoo (compute/zoo_nets.py: Flatten, Linear and ReLU layers with hook points)
as a chain of folded-bias steps. Node layers are the networks' hook names: `hook_input` (the flattened
image) and `<module>.hook_out` after each layer; every activation is [N, 1, d + 1] (one position)."""
from __future__ import annotations

import torch
from torch import nn

from compute.errors import BadInput

from .chain import Chain, Step


def _linear(layer: nn.Linear):
    W = layer.weight.detach().double().T
    b = layer.bias.detach().double() if layer.bias is not None else None

    def run(f: torch.Tensor) -> torch.Tensor:
        x, c = f[..., :-1], f[..., -1:]
        return torch.cat([x @ W + (c * b if b is not None else 0.0), c], dim=-1)

    return run


def _relu(f: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.relu(f[..., :-1]), f[..., -1:]], dim=-1)


def mlp_chain(net) -> Chain:
    """The chain of a HookedLayers net made only of Flatten (first), Linear and ReLU layers."""
    layers = [(f"{stage}.{i}", m) for stage in net.stages for i, m in enumerate(getattr(net, stage))]
    steps, previous = [], "hook_input"
    for k, (name, m) in enumerate(layers):
        if isinstance(m, nn.Flatten):
            if k:
                raise BadInput("interaction bases read an MLP whose only Flatten comes first")
            continue  # the input is flattened by embed
        if isinstance(m, nn.Linear):
            steps.append(Step(previous, _linear(m)))
        elif isinstance(m, nn.ReLU):
            steps.append(Step(previous, _relu))
        else:
            raise BadInput(f"interaction bases read MLPs of Linear and ReLU layers; {name} is a {type(m).__name__} "
                           f"(convolutions are not supported)")
        previous = f"{name}.hook_out"

    def embed(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), 1, -1).double()
        return torch.cat([x, torch.ones(len(x), 1, 1, dtype=x.dtype)], dim=-1)

    output = previous
    return Chain(steps, output, embed, canonical=lambda n: output if n == "logits" else n)
