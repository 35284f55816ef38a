"""Canonical JSON and stable hashes for analysis specs (plain dicts at this layer)."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .errors import BadInput

HASH_LEN = 16


def _normalise(value: Any) -> Any:
    # Tuples and lists hash alike; floats that are integers hash like integers, so that a spec
    # round-tripped through a URL or JSON keeps its hash.
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise BadInput("a setting is NaN or infinite: every number in an analysis must be finite")
        return int(value) if value.is_integer() else value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"not JSON-serialisable in a spec: {type(value).__name__}")


def canonical_json(spec: dict) -> str:
    return json.dumps(_normalise(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:HASH_LEN]


def result_key(spec_hash_: str, model_fingerprint: str) -> str:
    """Results depend on the spec and on the exact weights it ran on."""
    return hashlib.sha256(f"{spec_hash_}:{model_fingerprint}".encode()).hexdigest()[:24]
