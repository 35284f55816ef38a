"""The check an SAE passes before a job is queued for it (sae.loading.check_sae_source, through Workbench.submit):
whole SAEs pass, every kind of damage is named, and a job is never queued for an SAE the worker cannot load."""
import json
import struct
from pathlib import Path

import pytest

from analyses.sae_runs import SAEEvalSpec
from analyses.sae_source import sae_location
from compute.errors import BadInput
from sae.loading import SAELoadError, check_sae_source, load_sae


@pytest.fixture(scope="module")
def whole(wb, small_sae) -> Path:
    return Path(sae_location(wb, small_sae))


def copy_of(whole: Path, into: Path, weights: bytes | None = None, cfg: str | None = None) -> Path:
    into.mkdir()
    (into / "cfg.json").write_text((whole / "cfg.json").read_text() if cfg is None else cfg)
    (into / "sae_weights.safetensors").write_bytes(
        (whole / "sae_weights.safetensors").read_bytes() if weights is None else weights)
    return into


def test_a_whole_sae_passes_and_loads(whole, tmp_path):
    check_sae_source(str(whole))
    folder = copy_of(whole, tmp_path / "copy")
    check_sae_source(str(folder))
    assert load_sae(str(folder)).cfg.d_sae == 256


def _weights_with_header_length(whole: Path, claimed: int) -> bytes:
    data = (whole / "sae_weights.safetensors").read_bytes()
    return struct.pack("<Q", claimed) + data[8:]


@pytest.mark.parametrize("damage, message", [
    (lambda w: dict(cfg="[1, 2]"), "not the SAE's settings"),
    (lambda w: dict(cfg="{ nope"), "not valid JSON"),
    (lambda w: dict(weights=b"\x01\x02"), "only 2 bytes"),
    (lambda w: dict(weights=_weights_with_header_length(w, 10**12)), "header claims"),
    (lambda w: dict(weights=struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc"), "header is not readable"),
    (lambda w: dict(weights=(w / "sae_weights.safetensors").read_bytes()[:-1]), "cut short: its tensors need"),
], ids=["cfg not an object", "cfg not JSON", "weights of two bytes", "header longer than the file",
        "header not JSON", "last byte missing"])
def test_damage_is_named(whole, tmp_path, damage, message):
    folder = copy_of(whole, tmp_path / "damaged", **damage(whole))
    with pytest.raises(SAELoadError, match=message):
        check_sae_source(str(folder))
    with pytest.raises(Exception):  # what the check spares a worker: SAELens cannot load it either
        load_sae(str(folder))


def test_missing_weights_and_releases(tmp_path, monkeypatch):
    (tmp_path / "cfg.json").write_text(json.dumps({"d_in": 4}))
    with pytest.raises(SAELoadError, match="no sae_weights.safetensors"):
        check_sae_source(str(tmp_path))
    with pytest.raises(SAELoadError, match="knows no release 'gpt3-res'"):
        check_sae_source("gpt3-res:blocks.0")
    with pytest.raises(SAELoadError, match="has no SAE 'blocks.99.hook_resid_pre'"):
        check_sae_source("gpt2-small-res-jb:blocks.99.hook_resid_pre")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SAELoadError, match="not in the local Hugging Face cache"):
        check_sae_source("gpt2-small-res-jb:blocks.0.hook_resid_pre")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    check_sae_source("gpt2-small-res-jb:blocks.0.hook_resid_pre")  # online: the worker fetches it


def test_no_job_is_queued_for_a_broken_sae(wb, whole, tmp_path):
    folder = copy_of(whole, tmp_path / "cut", weights=(whole / "sae_weights.safetensors").read_bytes()[:100])
    before = len(wb.jobs.list())
    with pytest.raises(BadInput, match="damaged or cut short"):
        wb.submit(SAEEvalSpec(model="zoo-lm", sae=str(folder)))
    with pytest.raises(BadInput, match="does not exist in zoo-lm"):
        wb.submit(SAEEvalSpec(model="zoo-lm", sae=str(whole), hook="blocks.7.hook_resid_pre"))
    assert len(wb.jobs.list()) == before
