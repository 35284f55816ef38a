"""Small non-transformer networks of the zoo, saved as config.json + model.safetensors.

Only classes named here can be built from a folder: a checkpoint chooses an architecture by name,
never by code, so loading someone's folder cannot run their code.

They are TransformerLens `HookedRootModule`s, so every model of the workbench is addressed by hook name
(`run_with_cache`, `run_with_hooks`, `hook_dict`): `hook_input`, and `<layer>.hook_out` after each layer,
named by the layer's module path (`features.5.hook_out` is the output of module `features.5`).
Hook points hold no weights, so the saved state dicts are unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint


class HookedLayers(HookedRootModule):
    """Sequential stages whose every layer gets a hook point on its output; subclasses set `stages`."""
    stages: tuple[str, ...] = ()

    def _hook_layers(self) -> None:
        self.hook_input = HookPoint()
        for stage in self.stages:
            for layer in getattr(self, stage):
                layer.hook_out = HookPoint()
        self.setup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_input(x)
        for stage in self.stages:
            for layer in getattr(self, stage):
                x = layer.hook_out(layer(x))
        return x


class DigitsCNN(HookedLayers):
    """A two-block CNN for 8x8 grey-scale digits (scikit-learn's `load_digits`)."""
    stages = ("features", "classifier")

    def __init__(self, channels: int = 32, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),  # the last conv: GradCAM's layer
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * channels * 16, 128), nn.ReLU(),
                                        nn.Linear(128, n_classes))
        self._hook_layers()


class DigitsMLP(HookedLayers):
    """A multilayer perceptron for the 8x8 digits, 64 -> 100 -> 100 -> 10 with ReLUs: the interaction-bases
    paper's CIFAR-10 MLP in miniature (the flattened image in, module names as node layers)."""
    stages = ("layers",)

    def __init__(self, hidden: int = 100, n_classes: int = 10):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                    nn.ReLU(), nn.Linear(hidden, n_classes))
        self._hook_layers()


IMAGE_ARCHITECTURES: dict[str, type[nn.Module]] = {"DigitsCNN": DigitsCNN, "DigitsMLP": DigitsMLP}
