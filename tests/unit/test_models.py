import shutil

import pytest
import torch

from compute.errors import BadInput, ModelLoadError, ModelNotFound
from compute.models import ZOO, ModelRegistry, list_models


def test_zoo_models_are_listed(fresh_settings):
    ids = [m.id for m in list_models(fresh_settings)]
    assert ids[: len(ZOO)] == list(ZOO)


def test_zoo_lm_loads_through_transformer_bridge_with_the_usual_hooks(zoo_lm):
    from transformer_lens.model_bridge import TransformerBridge

    assert isinstance(zoo_lm.model, TransformerBridge)
    hooks = set(zoo_lm.hook_names())
    for name in ("blocks.0.attn.hook_z", "blocks.1.attn.hook_pattern", "blocks.0.hook_resid_post",
                 "blocks.1.hook_mlp_out", "hook_embed"):
        assert name in hooks
    arch = zoo_lm.architecture()
    assert arch["architecture"] == "GPTNeoXForCausalLM"
    assert 2 <= arch["n_layers"] <= 4 and 1e6 <= arch["parameters"] <= 10e6


def test_bridge_matches_the_plain_hugging_face_model(zoo_lm):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(ZOO["zoo-lm"].path).eval()
    ids = zoo_lm.tokenizer("for i in range(10):\n    print(i)", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(zoo_lm.model(ids), hf(ids).logits, atol=1e-4)


def test_one_copy_per_model_and_lru_eviction(fresh_settings):
    reg = ModelRegistry(fresh_settings)  # max 2 loaded
    a = reg.get("zoo-digits-cnn")
    assert reg.get("zoo-digits-cnn") is a and reg.loads == 1
    reg.get("zoo-modadd")
    reg.get("zoo-digits-cnn")  # touch: now zoo-modadd is least recently used
    reg.get("zoo-lm")
    assert reg.evictions == 1
    assert [k[0] for k in reg.loaded_keys()] == ["zoo-digits-cnn", "zoo-lm"]
    assert reg.get("zoo-digits-cnn") is a


def test_fingerprint_changes_with_the_weights(fresh_settings, tmp_path):
    src = ZOO["zoo-digits-cnn"].path
    dst = tmp_path / "my-cnn"
    shutil.copytree(src, dst)
    reg = ModelRegistry(fresh_settings)
    before = reg.fingerprint(str(dst))
    assert before == reg.fingerprint("zoo-digits-cnn")
    from safetensors.torch import load_file, save_file

    w = load_file(dst / "model.safetensors")
    w["classifier.3.bias"] += 1.0
    save_file(w, dst / "model.safetensors")
    assert reg.fingerprint(str(dst)) != before


def test_unknown_model_says_what_is_possible(fresh_settings):
    with pytest.raises(ModelNotFound, match="unknown model 'gpt-7'.*zoo-lm.*TransformerLens"):
        ModelRegistry(fresh_settings).get("gpt-7")


def test_transformerlens_name_offline_fails_clearly(fresh_settings):
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        ModelRegistry(fresh_settings).get("gpt2")


def test_folder_without_config_is_not_a_model(fresh_settings, tmp_path):
    with pytest.raises(BadInput, match="no config.json"):
        ModelRegistry(fresh_settings).get(str(tmp_path))


def test_corrupt_checkpoint_gives_a_clear_message(fresh_settings, tmp_path):
    dst = tmp_path / "broken-lm"
    shutil.copytree(ZOO["zoo-lm"].path, dst)
    data = (dst / "model.safetensors").read_bytes()
    (dst / "model.safetensors").write_bytes(data[: len(data) // 3])  # truncated download
    with pytest.raises(ModelLoadError, match="cannot load"):
        ModelRegistry(fresh_settings).get(str(dst))


def test_corrupt_image_checkpoint_gives_a_clear_message(fresh_settings, tmp_path):
    dst = tmp_path / "broken-cnn"
    shutil.copytree(ZOO["zoo-digits-cnn"].path, dst)
    (dst / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot read the weights"):
        ModelRegistry(fresh_settings).get(str(dst))


def test_image_folder_cannot_name_arbitrary_code(fresh_settings, tmp_path):
    dst = tmp_path / "evil"
    shutil.copytree(ZOO["zoo-digits-cnn"].path, dst)
    (dst / "config.json").write_text('{"architecture": "os.system"}')
    with pytest.raises(ModelLoadError, match="unknown image architecture"):
        ModelRegistry(fresh_settings).get(str(dst))


def test_unknown_dtype(fresh_settings):
    with pytest.raises(BadInput, match="dtype"):
        ModelRegistry(fresh_settings).get("zoo-digits-cnn", dtype="float8")


def test_eviction_under_concurrent_use_keeps_every_caller_working(fresh_settings):
    """Four threads ask for three models through one registry that may hold one: each gets a working model
    (a forward pass on its own input), and the registry never holds more than its limit."""
    import dataclasses
    import threading

    settings = dataclasses.replace(fresh_settings, max_loaded_models=1)
    reg = ModelRegistry(settings)
    failures, peak = [], []

    def use(model_id: str, rounds: int = 4):
        try:
            for _ in range(rounds):
                lm = reg.get(model_id)
                peak.append(len(reg.loaded_keys()))
                with reg.device_lock(lm.device), torch.no_grad():
                    if lm.kind == "lm":
                        out = lm.model(torch.tensor([[1, 2, 3]]))
                        assert out.shape[-1] == lm.model.cfg.d_vocab
                    else:
                        shape = tuple(lm.image_config["input_shape"])
                        assert lm.model(torch.zeros(1, *shape)).shape == (1, 10)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(f"{model_id}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=use, args=(m,)) for m in ("zoo-lm", "zoo-digits-cnn", "zoo-modadd", "zoo-lm")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures
    assert max(peak) <= 1 and len(reg.loaded_keys()) == 1
    assert reg.evictions >= 2


def test_the_device_lock_serialises_and_is_re_entrant(fresh_settings):
    import threading
    import time

    reg = ModelRegistry(fresh_settings)
    spans = []

    def work(i):
        with reg.device_lock("cpu"):
            start = time.perf_counter()
            with reg.device_lock("cpu"):  # an analysis requiring another takes it again
                time.sleep(0.05)
            spans.append((start, time.perf_counter()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    spans.sort()
    assert len(spans) == 4 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # never two at once


# measured KL(float32 ‖ half) per token on this prompt: bfloat16 1.4e-4, float16 1.7e-6 nats
@pytest.mark.parametrize("dtype, tolerance", [("bfloat16", 2e-3), ("float16", 5e-5)])
def test_half_precision_zoo_lm_agrees_with_float32(fresh_settings, dtype, tolerance):
    reg = ModelRegistry(fresh_settings)
    full = reg.get("zoo-lm")
    half = reg.get("zoo-lm", dtype=dtype)
    assert half is not full and half.dtype == dtype
    ids = full.tokenizer("def add(a, b):\n    return a + b\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = torch.log_softmax(full.model(ids).float(), -1)
        b = torch.log_softmax(half.model(ids).float(), -1)
    assert next(half.model.parameters()).dtype == getattr(torch, dtype)
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.95  # the same predictions
    p = a.exp()
    assert float((p * (a - b)).sum(-1).mean()) < tolerance  # KL(float32 ‖ half) per token, nats
