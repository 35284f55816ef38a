"""Small non-transformer networks of the zoo, saved as config.json + model.safetensors.

Only classes named here can be built from a folder: a checkpoint chooses an architecture by name,
never by code, so loading someone's folder cannot run their code.
"""
from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """A two-block CNN for 8x8 grey-scale digits (scikit-learn's `load_digits`)."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


IMAGE_ARCHITECTURES: dict[str, type[nn.Module]] = {"DigitsCNN": DigitsCNN}
