"""Model registry: resolve a model id, load it once per (model, device, dtype), evict the least used.

One loading path for toy and real language models: everything that is a Hugging Face causal LM
(the zoo's own folders, a user's local checkpoint, a TransformerLens model name) is booted through
TransformerLens's `TransformerBridge`, which gives the usual hook names (`blocks.L.attn.hook_z`, ...).
Image networks of the zoo are built from a whitelisted architecture name; they are TransformerLens
`HookedRootModule`s too (compute/zoo_nets.py), so every model is addressed by hook name.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import tabular_data
from .errors import BadInput, ModelLoadError, ModelNotFound
from .settings import ASSETS, Settings

ZOO_DIR = ASSETS / "zoo"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ModelInfo:
    id: str
    kind: str  # "lm" | "image" | "tabular" (a dataset: compute/tabular_data.py)
    source: str  # "zoo" | "local" | "transformerlens" | "upload"
    description: str
    path: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "source": self.source, "description": self.description,
                "path": self.path}


ZOO: dict[str, ModelInfo] = {
    "zoo-lm": ModelInfo("zoo-lm", "lm", "zoo",
                        "2-layer GPT-NeoX-style LM (BPE, 4096 tokens) trained on the Python standard library; "
                        "has induction heads", str(ZOO_DIR / "lm")),
    "zoo-modadd": ModelInfo("zoo-modadd", "lm", "zoo",
                            "1-layer transformer for (a + b) mod 113, prompt 'a b ='", str(ZOO_DIR / "modadd")),
    "zoo-digits-cnn": ModelInfo("zoo-digits-cnn", "image", "zoo",
                                "small CNN on scikit-learn's 8x8 digits", str(ZOO_DIR / "digits_cnn")),
    "rib-modadd": ModelInfo("rib-modadd", "lm", "zoo",
                            "rib's 1-layer (a + b) mod 113 transformer, no LayerNorm (ApolloResearch/rib, MIT), "
                            "a TransformerLens-format folder: the interaction-bases reference", str(ZOO_DIR / "rib_modadd")),
    "zoo-digits-mlp": ModelInfo("zoo-digits-mlp", "image", "zoo",
                                "MLP 64 -> 100 -> 100 -> 10 on scikit-learn's 8x8 digits (the interaction-bases "
                                "paper's MLP in miniature)", str(ZOO_DIR / "digits_mlp")),
    "zoo-digits-cnn-robust": ModelInfo("zoo-digits-cnn-robust", "image", "zoo",
                                       "the digits CNN's adversarially trained twin (PGD, L∞ ε = 0.1 on [0, 1] pixels; "
                                       "clean 99.1%, PGD-20 89.1%)", str(ZOO_DIR / "digits_cnn_robust")),
}
DEFAULT_MODEL = "zoo-lm"


@dataclass
class LoadedModel:
    info: ModelInfo
    model: Any  # TransformerBridge for "lm", nn.Module for "image", tabular_data.RawTable for "tabular"
    device: str
    dtype: str
    fingerprint: str
    tokenizer: Any = None
    image_config: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def n_ctx(self) -> int | None:
        return int(self.model.cfg.n_ctx) if self.kind == "lm" else None

    def hook_names(self) -> list[str]:
        if self.kind == "tabular":
            return []
        return list(self.model.hook_dict)  # TransformerBridge and the zoo's image nets alike

    def architecture(self) -> dict:
        if self.kind == "tabular":
            return {"architecture": "table", "rows": len(self.model.frame), "columns": self.model.frame.shape[1]}
        if self.kind == "lm":
            c = self.model.cfg
            inner = getattr(self.model, "original_model", self.model)  # a bridge's HF model, or a HookedTransformer
            hf = getattr(inner, "config", None)
            return {"architecture": type(inner).__name__, "n_layers": c.n_layers,
                    "n_heads": c.n_heads, "d_model": c.d_model, "d_head": c.d_head, "d_mlp": getattr(c, "d_mlp", None),
                    "d_vocab": c.d_vocab, "n_ctx": c.n_ctx, "hf_model_type": getattr(hf, "model_type", None),
                    "parameters": sum(p.numel() for p in inner.parameters())}
        return {"architecture": type(self.model).__name__, **{k: v for k, v in self.image_config.items() if k != "kwargs"},
                "parameters": sum(p.numel() for p in self.model.parameters())}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _official_tl_name(name: str) -> str | None:
    """The Hugging Face name behind a TransformerLens model name or alias, if it is one."""
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name
    except ImportError:  # pragma: no cover - layout of older TransformerLens
        return None
    try:
        return get_official_model_name(name)
    except (ValueError, KeyError):
        return None


def _folder_kind(folder: Path) -> str:
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise BadInput(f"{folder} is not a model folder: it has no config.json")
    try:
        data = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{cfg} is not valid JSON: {e}") from None
    if data.get("format") == "transformer_lens":
        return "lm"  # a TransformerLens-format folder (compute/tl_format.py)
    if "architecture" in data and "model_type" not in data:
        return "image"
    if "model_type" in data:
        return "lm"
    raise BadInput(f"{cfg} names neither a Hugging Face model_type nor a workbench image architecture")


def resolve(model_id: str, settings: Settings) -> ModelInfo:
    if not isinstance(model_id, str) or not model_id.strip():
        raise ModelNotFound("no model given: pick one of the zoo models, a TransformerLens name or a local folder")
    model_id = model_id.strip()
    if model_id in ZOO:
        return ZOO[model_id]
    if tabular_data.is_tabular(model_id):
        name = tabular_data.dataset_name(model_id)
        if name.startswith(tabular_data.CSV_PREFIX):
            path = tabular_data.csv_path(settings.uploads_dir, name)
            return ModelInfo(model_id, "tabular", "upload", f"uploaded CSV {path.stem}", str(path))
        if name not in tabular_data.BUILT_IN:
            raise ModelNotFound(f"unknown dataset '{name}'; built in: "
                                f"{', '.join(tabular_data.PREFIX + n for n in tabular_data.BUILT_IN)}, or upload a CSV")
        return ModelInfo(model_id, "tabular", "zoo", tabular_data.BUILT_IN[name][0])
    raw = model_id.removeprefix("local:")
    looks_like_path = model_id.startswith("local:") or raw.startswith(("/", "~", "."))
    candidates = [Path(raw).expanduser(), settings.models_dir / raw]
    if settings.path_roots is not None:  # a served app: only folders inside the operator's roots
        from .paths import confined, refusal

        allowed = []
        for c in candidates:
            try:
                allowed.append(confined(settings, str(c), "model folders"))
            except BadInput:
                continue
        if looks_like_path and not any(c.is_dir() for c in allowed):
            raise ModelNotFound(refusal(settings, "model folders"))  # the same words whether it exists or not
        candidates = allowed
    for candidate in candidates:
        if candidate.is_dir():
            folder = candidate.resolve()
            return ModelInfo(model_id, _folder_kind(folder), "local", f"local checkpoint {folder}", str(folder))
    if looks_like_path and (model_id.startswith("local:") or Path(raw).expanduser().is_absolute()):
        raise ModelNotFound(f"no model folder at {raw}")
    official = _official_tl_name(model_id)
    if official:
        return ModelInfo(model_id, "lm", "transformerlens", f"TransformerLens model {official}", official)
    raise ModelNotFound(
        f"unknown model '{model_id}'. Use a zoo model ({', '.join(ZOO)}), a TransformerLens model name "
        f"(e.g. gpt2, pythia-70m), or the path of a local Hugging Face model folder.")


def list_models(settings: Settings) -> list[ModelInfo]:
    out = list(ZOO.values())
    if settings.models_dir.is_dir():
        for d in sorted(settings.models_dir.iterdir()):
            try:
                out.append(ModelInfo(d.name, _folder_kind(d), "local", f"local checkpoint {d}", str(d)))
            except (BadInput, ModelLoadError):
                continue
    return out


def hash_files(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.suffix in {".safetensors", ".bin", ".json", ".model"} and p.is_file():
            h.update(p.name.encode())
            st = p.stat()
            if st.st_size <= 256 * 2**20:
                h.update(p.read_bytes())
            else:  # very large checkpoints: name, size and mtime are enough to notice a change
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _load_lm(info: ModelInfo, device: str, dtype: torch.dtype):
    from .tl_format import load_hooked_transformer, read_config

    if info.path and Path(info.path).is_dir() and read_config(Path(info.path)) is not None:
        return load_hooked_transformer(Path(info.path), device, dtype)
    import transformers
    from transformer_lens.model_bridge import TransformerBridge

    transformers.utils.logging.disable_progress_bar()
    target = info.path
    if info.source == "local":
        for needed in ("config.json",):
            if not (Path(target) / needed).exists():
                raise BadInput(f"{target} has no {needed}")
        if not any(Path(target).glob("*.safetensors")) and not any(Path(target).glob("*.bin")):
            raise ModelLoadError(f"{target} has no weights (model.safetensors)")
    try:
        bridge = TransformerBridge.boot_transformers(target, device=device, dtype=dtype)
    except OSError as e:
        msg = str(e)
        if info.source == "transformerlens" and ("connect" in msg or "offline" in msg.lower() or "cached" in msg):
            raise ModelLoadError(
                f"cannot load '{info.id}' ({target}): it is not in the local Hugging Face cache and the hub "
                f"cannot be reached from here (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}). "
                f"Download it on a machine with internet, or use a zoo model.") from None
        raise ModelLoadError(f"cannot load '{info.id}': {msg.splitlines()[0] if msg else type(e).__name__}") from None
    except Exception as e:  # corrupt weights, unsupported architecture, ...
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelLoadError(f"cannot load '{info.id}' from {target}: {type(e).__name__}: {first}") from None
    bridge.eval()
    return bridge


def _load_image_net(info: ModelInfo, device: str, dtype: torch.dtype):
    from safetensors.torch import load_file

    from .zoo_nets import IMAGE_ARCHITECTURES

    folder = Path(info.path)
    cfg = json.loads((folder / "config.json").read_text())
    arch = cfg.get("architecture")
    if arch not in IMAGE_ARCHITECTURES:
        raise ModelLoadError(f"unknown image architecture '{arch}' in {folder}; known: {', '.join(IMAGE_ARCHITECTURES)}")
    net = IMAGE_ARCHITECTURES[arch](**cfg.get("kwargs", {}))
    try:
        state = load_file(folder / "model.safetensors", device="cpu")
        net.load_state_dict(state, strict=True)
    except Exception as e:
        raise ModelLoadError(f"cannot read the weights of {folder}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return net.to(device=device, dtype=dtype).eval(), cfg


class ModelRegistry:
    """One loaded copy per (model, device, dtype), least-recently-used eviction, a lock per device."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._loaded: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._device_locks: dict[str, threading.RLock] = {}
        self.loads = 0
        self.evictions = 0

    def resolve(self, model_id: str) -> ModelInfo:
        return resolve(model_id, self.settings)

    def device_lock(self, device: str) -> threading.RLock:
        """Serialises work on one device, so that two reruns or sessions do not collide on the GPU.
        Re-entrant: an analysis that runs another one inside it (RunContext.require) takes it again."""
        with self._lock:
            return self._device_locks.setdefault(device, threading.RLock())

    def loaded_keys(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._loaded)

    def get(self, model_id: str, device: str | None = None, dtype: str = "float32") -> LoadedModel:
        info = self.resolve(model_id)
        device = device or self.settings.device or default_device()
        if dtype not in DTYPES:
            raise BadInput(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
        key = (info.id, device, dtype)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            loaded = self._load(info, device, dtype)
            self._loaded[key] = loaded
            self.loads += 1
            while len(self._loaded) > self.settings.max_loaded_models:
                self._evict(next(iter(self._loaded)))
            return loaded

    def fingerprint(self, model_id: str) -> str:
        """The weights' identity without loading the model when a folder is known."""
        info = self.resolve(model_id)
        with self._lock:
            for (mid, _, _), lm in self._loaded.items():
                if mid == info.id:
                    return lm.fingerprint
        if info.kind == "tabular":
            return tabular_data.fingerprint(info.id, self.settings.uploads_dir)
        if info.path and Path(info.path).is_dir():
            return hash_files(Path(info.path))
        return self.get(model_id).fingerprint

    def _load(self, info: ModelInfo, device: str, dtype: str) -> LoadedModel:
        torch_dtype = DTYPES[dtype]
        if info.kind == "tabular":  # tables train on the CPU whatever the device (scikit-learn, xgboost)
            raw = tabular_data.load_raw(info.id, self.settings.uploads_dir)
            return LoadedModel(info, raw, "cpu", dtype, tabular_data.fingerprint(info.id, self.settings.uploads_dir))
        if info.kind == "lm":
            bridge = _load_lm(info, device, torch_dtype)
            if info.path and Path(info.path).is_dir():
                fp = hash_files(Path(info.path))
            else:
                commit = getattr(bridge.original_model.config, "_commit_hash", None) or "unknown-revision"
                fp = hashlib.sha256(f"hf:{info.path}@{commit}".encode()).hexdigest()[:16]
            return LoadedModel(info, bridge, device, dtype, fp, tokenizer=getattr(bridge, "tokenizer", None))
        net, cfg = _load_image_net(info, device, torch_dtype)
        return LoadedModel(info, net, device, dtype, hash_files(Path(info.path)), image_config=cfg)

    def _evict(self, key: tuple[str, str, str]) -> None:
        loaded = self._loaded.pop(key)
        del loaded
        self.evictions += 1
        gc.collect()
        if key[1].startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def clear(self) -> None:
        with self._lock:
            for key in list(self._loaded):
                self._evict(key)
