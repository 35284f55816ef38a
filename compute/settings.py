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
class Limits:
    """What one user may ask of a shared server (0: no limit). Each message that enforces one names its variable."""
    jobs_per_user: int = 0  # queued + running jobs of one user (WORKBENCH_MAX_JOBS_PER_USER)
    jobs_total: int = 0  # queued + running jobs of everyone (WORKBENCH_MAX_JOBS)
    job_tokens: int = 0  # tokens one job may process: activations, SAE training, dashboards, influence
    #                      (WORKBENCH_MAX_JOB_TOKENS)
    disk_bytes: int = 0  # the result + activation caches, least recently used evicted (WORKBENCH_DISK_BUDGET_GB)


@dataclass(frozen=True)
class Settings:
    home: Path  # results, activations, the SQLite store, job logs
    max_loaded_models: int
    device: str | None  # None: CUDA when present, else CPU
    # Folders a browser may name as a model, an SAE or a training file. None: any (the local single-user tool,
    # and the CLI, which its operator runs); a served deployment lists its roots (WORKBENCH_MODEL_ROOTS).
    path_roots: tuple[Path, ...] | None = None
    limits: Limits = Limits()
    # A PostgreSQL server shared by a group's servers and workers (WORKBENCH_DATABASE_URL); None: the SQLite file.
    database_url: str | None = None
    # A Ray cluster that runs the jobs (WORKBENCH_RAY_ADDRESS, host:port); None: local worker processes.
    ray_address: str | None = None

    @property
    def store_path(self) -> Path:
        return self.home / "workbench.sqlite"

    @property
    def store_target(self) -> Path | str:
        """What the store opens: the shared database's URL when one is set, else the SQLite file under the home."""
        return self.database_url or self.store_path

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


def load_settings(served: bool = False) -> Settings:
    """`served`: for the app serving a group (sign-in configured, or WORKBENCH_MODEL_ROOTS set): browser-named
    folders are confined to the roots, and the job limits apply (defaults 4 per user, 16 in all)."""
    home = Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".cache" / "interp-workbench").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    roots = None
    if served:
        listed = [p for p in os.environ.get("WORKBENCH_MODEL_ROOTS", "").split(os.pathsep) if p.strip()]
        roots = tuple(Path(p).expanduser() for p in listed) or (home / "models", home / "saes", home / "data")
    return Settings(
        home=home,
        max_loaded_models=max(1, int(os.environ.get("WORKBENCH_MAX_MODELS", "3"))),
        device=os.environ.get("WORKBENCH_DEVICE") or None,
        path_roots=roots,
        limits=Limits(jobs_per_user=_env_number("WORKBENCH_MAX_JOBS_PER_USER", 4 if served else 0),
                      jobs_total=_env_number("WORKBENCH_MAX_JOBS", 16 if served else 0),
                      job_tokens=_env_number("WORKBENCH_MAX_JOB_TOKENS", 0),
                      disk_bytes=int(_env_number("WORKBENCH_DISK_BUDGET_GB", 0.0, float) * 2**30)),
        database_url=os.environ.get("WORKBENCH_DATABASE_URL", "").strip() or None,
        ray_address=os.environ.get("WORKBENCH_RAY_ADDRESS", "").strip() or None,
    )


def _env_number(name: str, default, cast=int):
    """A non-negative number from the environment (`default` when unset), or an error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return max(cast(0), cast(raw))
    except ValueError:
        raise ValueError(f"{name} must be a {'whole ' if cast is int else ''}number, not '{raw}'") from None


def served_mode() -> bool:
    """The app serves a group when sign-in is configured (a shared token, or OIDC in .streamlit/secrets.toml)
    or the operator lists folder roots; otherwise it is the single-user local tool."""
    if os.environ.get("WORKBENCH_TOKEN") or os.environ.get("WORKBENCH_MODEL_ROOTS"):
        return True
    return oidc_configured()


def oidc_configured() -> bool:
    for folder in (Path.cwd(), REPO_ROOT, Path.home()):
        secrets = folder / ".streamlit" / "secrets.toml"
        if secrets.is_file():
            import tomllib

            try:
                if "auth" in tomllib.loads(secrets.read_text()):
                    return True
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
                continue
    return False
