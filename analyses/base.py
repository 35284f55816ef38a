"""Spec -> Result, the shape every analysis takes.

A spec is a frozen dataclass of JSON values with a `kind`; its canonical JSON gives a stable hash
that names it in share links, the result cache, batch export and the CLI. A Result holds a JSON
summary, pandas tables and Plotly figures, and saves to / loads from a folder without pickle.

- Numeric fields declare their range with `bounded(default, lo, hi)`, tuples how many items they hold
  with `counted(lo, hi, noun)`; `Spec.validate` checks every such field, so a spec's own `validate`
  holds only the checks that need more than a range.
- A spec that reads fitted artifacts (an SAE, later a LIB basis or EK-FAC factors) lists them in
  `depends_on()`; their fingerprints join the result-cache key (analyses/workbench.py). A spec that
  fits one is a `FitSpec`: its artifact lives in a folder of the kind it names (`Settings.fit_dir`).
- A kind declares its name, title and page in its class line (`class PromptSpec(Spec, kind="prompt",
  title=…, page="models")`); the page is the app page that shows its results, so a share link
  `?a=<hash>` finds its page.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from compute.errors import BadInput
from compute.specs import spec_hash


def bounded(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A spec field whose value must lie in [lo, hi] (None: unbounded on that side)."""
    return field(default=default, metadata={"range": (lo, hi)})


def counted(lo: int = 0, hi: int | None = None, noun: str = "item") -> Any:
    """A tuple spec field (empty by default) holding between lo and hi items of `noun`."""
    return field(default=(), metadata={"count": (lo, hi, noun)})


def added(default: Any, legacy: Any, choices: tuple | None = None, lo: float | None = None,
          hi: float | None = None) -> Any:
    """A field added after specs of its kind were stored and shared. Specs stored before it existed
    lack it and meant `legacy`: the canonical JSON leaves the field out when it holds `legacy`, so those
    specs keep their hash (and their share links and cached results), and a stored spec read back
    without it gets `legacy`, not the new `default` that a spec written today gets."""
    meta = {"legacy": legacy}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if lo is not None or hi is not None:
        meta["range"] = (lo, hi)  # as bounded()
    return field(default=default, metadata=meta)


def widened(default: Any, was: Any) -> Any:
    """A field whose default changed after specs of its kind were stored (a method list that grew). Specs
    were always stored with the field written out, so their hashes are safe; one read back without it (a
    hand-trimmed link or file) meant the old default `was`, not today's."""
    return field(default=default, metadata={"stored_default": was})


def _fmt(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


class Dependency(Protocol):
    """Something a result depends on besides its spec and its model's weights (an SAE, a fitted basis)."""

    def fingerprint(self, wb) -> str: ...


@dataclass(frozen=True)
class Spec:
    KIND: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    PAGE: ClassVar[str] = ""  # the app page that shows this kind (see app/pages.py); "" = the Jobs page

    def __init_subclass__(cls, kind: str = "", title: str = "", page: str = "", **kwargs):
        """`class PromptSpec(Spec, kind="prompt", title=…, page="models")`: a kind declares itself in one place."""
        super().__init_subclass__(**kwargs)
        cls.KIND = kind or cls.KIND
        cls.TITLE = title or cls.TITLE
        cls.PAGE = page or cls.PAGE
    # Raised when an analysis's results change shape or meaning: it joins the result-cache key (not the spec
    # hash, so share links keep working) and results stored by an older version are recomputed, not reopened.
    RESULT_VERSION: ClassVar[int] = 1
    model: str

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if "legacy" in f.metadata and data[f.name] == f.metadata["legacy"]:
                del data[f.name]
        return {"kind": self.KIND, **data}

    @property
    def hash(self) -> str:
        return spec_hash(self.to_dict())

    def resources(self) -> dict:
        """What a job of this spec asks of a Ray cluster (compute.cluster): one CPU, and the GPUs an operator gives
        each job (WORKBENCH_RAY_GPUS_PER_JOB, default 0); a kind that needs more says so."""
        gpus = float(os.environ.get("WORKBENCH_RAY_GPUS_PER_JOB", "0") or 0)
        return {"num_cpus": 1, **({"num_gpus": gpus} if gpus > 0 else {})}

    def validate(self) -> None:
        """Cheap checks that need no model; raise BadInput with a message for the researcher."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise BadInput("no model given")
        for f in dataclasses.fields(self):
            lo, hi = f.metadata.get("range", (None, None))
            v = getattr(self, f.name)
            if any(isinstance(x, float) and not math.isfinite(x) for x in (v if isinstance(v, (tuple, list)) else (v,))):
                raise BadInput(f"{f.name} must be finite numbers" if isinstance(v, (tuple, list))
                               else f"{f.name} must be a finite number")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                if lo is None:
                    raise BadInput(f"{f.name} must be at most {_fmt(hi)}")
                if hi is None:
                    raise BadInput(f"{f.name} must be at least {_fmt(lo)}")
                raise BadInput(f"{f.name} must be between {_fmt(lo)} and {_fmt(hi)}")
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise BadInput(f"{f.name} must be one of {', '.join(map(str, f.metadata['choices']))}, not '{v}'")
            if "count" in f.metadata:
                lo, hi, noun = f.metadata["count"]
                if len(v) < lo:
                    raise BadInput(f"give at least {'one' if lo == 1 else lo} {noun}")
                if hi is not None and len(v) > hi:
                    raise BadInput(f"at most {hi:,} {noun}s in one {self.TITLE or self.KIND}")

    def result_version(self) -> int:
        """RESULT_VERSION, or a finer answer where only some specs of a kind compute differently now."""
        return self.RESULT_VERSION

    def depends_on(self) -> tuple[Dependency, ...]:
        """Fitted artifacts this analysis reads; their fingerprints join its result-cache key."""
        return ()

    def check_ready(self, wb) -> None:
        """Before a job is queued: what the worker will read exists and is whole (an SAE's files), so a typo gets
        its message in the page that submitted it. The dependencies' own checks, by default."""
        for dependency in self.depends_on():
            check = getattr(dependency, "check_ready", None)
            if check is not None:
                check(wb)

    def token_budget(self) -> int:
        """The tokens this analysis processes (activations read, SAE training, dashboards, influence scans), for
        a server's per-job limit; 0 where it is one prompt's worth. Specs that read a corpus name it n_tokens."""
        return int(getattr(self, "n_tokens", 0) or 0)

    def describe(self) -> str:
        return f"{self.TITLE or self.KIND} on {self.model}"

    @classmethod
    def from_dict(cls, data: dict, stored: bool = False, validate: bool = True) -> "Spec":
        """`stored`: the dict is a canonical JSON this code (or an older version) wrote: fields added
        since it was written take their legacy value."""
        data = dict(data)
        kind = data.pop("kind", cls.KIND)
        if kind != cls.KIND:
            raise BadInput(f"spec kind '{kind}' is not '{cls.KIND}'")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise BadInput(f"unknown field(s) for {cls.KIND}: {', '.join(sorted(unknown))}")
        missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise BadInput(f"missing field(s) for {cls.KIND}: {', '.join(missing)}")
        if stored:
            for n, f in fields.items():
                if n not in data and "legacy" in f.metadata:
                    data[n] = f.metadata["legacy"]
                elif n not in data and "stored_default" in f.metadata:
                    data[n] = f.metadata["stored_default"]
        values = {k: _coerce(v, hints[k], k) for k, v in data.items()}
        spec = cls(**values)
        if validate:
            spec.validate()
        return spec


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
        if origin is tuple:
            (inner, *_rest) = typing.get_args(hint) or (Any,)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v != ""]
            return tuple(_coerce(v, inner, name) for v in value)
    except (TypeError, ValueError):
        raise BadInput(f"field '{name}' should be {getattr(hint, '__name__', hint)}, got {value!r}") from None
    return value


@dataclass
class Result:
    kind: str
    summary: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        (folder / "figures").mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"kind": self.kind, "summary": self.summary,
                                                         "tables": list(self.tables), "figures": list(self.figures)},
                                                        default=_json_default))
        for name, df in self.tables.items():
            df.to_parquet(folder / "tables" / f"{name}.parquet", index=False)
        for name, fig in self.figures.items():
            (folder / "figures" / f"{name}.json").write_text(fig.to_json())

    @classmethod
    def load(cls, folder: Path) -> "Result":
        folder = Path(folder)
        head = json.loads((folder / "summary.json").read_text())
        tables = {n: pd.read_parquet(folder / "tables" / f"{n}.parquet") for n in head["tables"]}
        figures = {n: pio.from_json((folder / "figures" / f"{n}.json").read_text()) for n in head["figures"]}
        return cls(head["kind"], head["summary"], tables, figures)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


@dataclass(frozen=True)
class FitSpec(Spec):
    """A spec that fits an artifact (an SAE; later a LIB basis, EK-FAC factors) into a folder of its own,
    `Workbench.artifact_folder(spec)`: under `Settings.fit_dir(ARTIFACT)`, named by the spec's result key.
    A spec that reads the artifact names the fit in `depends_on()` (kronfluence's named factors)."""
    ARTIFACT: ClassVar[str] = ""

    def artifact_version(self) -> int:
        """Raised when the fitted artifact itself changes (not only how its result is evaluated)."""
        return self.result_version()

    def fingerprint(self, wb) -> str:
        # Deterministic fits: the fit's own result key (spec, weights, its dependencies) names its artifact.
        return wb.result_key(self)
