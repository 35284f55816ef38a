"""Where the workbench keeps its state, and the knobs an operator sets through the environment."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"
# A kind of fitted artifact (FitSpec.ARTIFACT: "saes" for trained SAEs, …) is a folder under the home,
# one sub-folder per fit; its name must be a plain identifier so that it stays inside the home.
ARTIFACT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Settings:
    home: Path  # results, activations, the SQLite store, job logs
    max_loaded_models: int
    device: str | None  # None: CUDA when present, else CPU

    @property
    def store_path(self) -> Path:
        return self.home / "workbench.sqlite"

    @property
    def results_dir(self) -> Path:
        return self.home / "results"

    @property
    def activations_dir(self) -> Path:
        return self.home / "activations"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        """Extra local checkpoints an operator drops in; listed beside the zoo."""
        return self.home / "models"

    @property
    def uploads_dir(self) -> Path:
        """Files researchers upload (images), content-addressed."""
        return self.home / "images"

    def fit_dir(self, artifact: str) -> Path:
        """Where fitted artifacts of one kind live, one folder per fit (e.g. "saes": trained SAEs)."""
        if not ARTIFACT_NAME.match(artifact or ""):
            raise ValueError(f"'{artifact}' is not an artifact kind (lower-case letters, digits and _)")
        return self.home / artifact

    def cache_dir(self, name: str) -> Path:
        """Derived data an analysis may rebuild at any time (e.g. "attribution": corpus token frequencies)."""
        return self.home / "cache" / name


def load_settings() -> Settings:
    home = Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".cache" / "interp-workbench").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return Settings(
        home=home,
        max_loaded_models=max(1, int(os.environ.get("WORKBENCH_MAX_MODELS", "3"))),
        device=os.environ.get("WORKBENCH_DEVICE") or None,
    )
