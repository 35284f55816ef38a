"""Spec -> Result, the shape every analysis takes.

A spec is a frozen dataclass of JSON values with a `kind`; its canonical JSON gives a stable hash
that names it in share links, the result cache, batch export and the CLI. A Result holds a JSON
summary, pandas tables and Plotly figures, and saves to / loads from a folder without pickle.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from compute.errors import BadInput
from compute.specs import spec_hash


@dataclass(frozen=True)
class Spec:
    KIND: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    # Raised when an analysis's results change shape or meaning: it joins the result-cache key (not the spec
    # hash, so share links keep working) and results stored by an older version are recomputed, not reopened.
    RESULT_VERSION: ClassVar[int] = 1
    model: str

    def to_dict(self) -> dict:
        return {"kind": self.KIND, **dataclasses.asdict(self)}

    @property
    def hash(self) -> str:
        return spec_hash(self.to_dict())

    def validate(self) -> None:
        """Cheap checks that need no model; raise BadInput with a message for the researcher."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise BadInput("no model given")

    def describe(self) -> str:
        return f"{self.TITLE or self.KIND} on {self.model}"

    @classmethod
    def from_dict(cls, data: dict) -> "Spec":
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
        values = {k: _coerce(v, hints[k], k) for k, v in data.items()}
        spec = cls(**values)
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
class Analysis:
    spec_cls: type[Spec]
    run: Callable[..., Result]
    long: bool  # runs as a background job by default


ANALYSES: dict[str, Analysis] = {}


def register(spec_cls: type[Spec], long: bool = False):
    def deco(fn: Callable[..., Result]) -> Callable[..., Result]:
        if not spec_cls.KIND:
            raise ValueError("spec class needs a KIND")
        ANALYSES[spec_cls.KIND] = Analysis(spec_cls, fn, long)
        return fn
    return deco


def spec_from_dict(data: dict) -> Spec:
    from . import registry  # noqa: F401  (imports every analysis module so that they register)

    if not isinstance(data, dict) or "kind" not in data:
        raise BadInput("a spec is a JSON object with a 'kind'")
    kind = data["kind"]
    if kind not in ANALYSES:
        raise BadInput(f"unknown analysis kind '{kind}'; known: {', '.join(sorted(ANALYSES))}")
    return ANALYSES[kind].spec_cls.from_dict(data)
