"""Tasks (compute/tasks/): each zoo model's task from its folder, its training loss against the model's own
numbers, its splits, and the hooked image net."""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from compute.tasks import task_for
from compute.tasks.digits import Digits
from compute.tasks.language_modeling import LanguageModelling
from compute.tasks.modular_addition import ModularAddition
from compute.tasks.next_token import mean_next_token_loss, next_token_loss


def test_each_zoo_model_has_its_task(wb):
    assert isinstance(task_for(wb.models.get("zoo-lm")), LanguageModelling)
    assert isinstance(task_for(wb.models.get("zoo-modadd")), ModularAddition)
    assert isinstance(task_for(wb.models.get("zoo-digits-cnn")), Digits)


def test_the_next_token_loss_is_transformer_lens_s(zoo_lm):
    task = task_for(zoo_lm)
    rows = task.data(zoo_lm, "test", n=4, seq_len=64)
    assert rows.shape == (4, 64) and (rows[:, 0] == zoo_lm.tokenizer.bos_token_id).all()
    with torch.no_grad():
        ours = task.loss(zoo_lm.model, rows)
        theirs = zoo_lm.model(rows, return_type="loss")
        per_token = next_token_loss(zoo_lm.model(rows), rows, reduction="none")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert per_token.shape == (4, 63)
    assert abs(mean_next_token_loss(zoo_lm.model, rows, batch=3) - float(theirs)) < 1e-4


def test_modular_addition_split_loss_and_accuracy(wb):
    lm = wb.models.get("zoo-modadd")
    task = task_for(lm)
    train, test = task.pairs()
    assert len(train) + len(test) == 113 ** 2 and len(train) == round(0.4 * 113 ** 2)
    assert not {tuple(p) for p in train} & {tuple(p) for p in test}
    batch = task.data(lm, "test", n=256)
    assert torch.equal(batch["labels"], torch.tensor((test[:256, 0] + test[:256, 1]) % 113))
    # the zoo tokenizer maps the number i to token i and "=" to 113, as the training script assumed
    assert torch.equal(batch["input_ids"], task.batch(test[:256])["input_ids"])
    acc, loss = task.accuracy(lm.model, batch)
    assert acc == 1.0 and loss < 0.01
    assert abs(float(task.loss(lm.model, batch)) - loss) < 1e-5


def test_digits_split_and_loss(wb):
    lm = wb.models.get("zoo-digits-cnn")
    task = task_for(lm)
    x, y = task.data(lm, "test")
    assert x.shape == (450, 1, 8, 8) and float(x.max()) <= 1.0 and set(y.tolist()) == set(range(10))
    with torch.no_grad():
        assert float(task.loss(lm.model, (x, y))) < 0.2


def test_the_image_net_is_hooked_without_changing_its_weights(wb):
    lm = wb.models.get("zoo-digits-cnn")
    net = lm.model
    folder = Path(lm.info.path)
    assert set(net.state_dict()) == set(load_file(folder / "model.safetensors"))
    x = task_for(lm).data(lm, "test", n=8)[0]
    with torch.no_grad():
        plain = net.classifier(net.features(x))  # the layers alone, without hook points
        logits, cache = net.run_with_cache(x)
    torch.testing.assert_close(logits, plain)
    gradcam_layer = json.loads((folder / "config.json").read_text())["gradcam_layer"]
    assert f"{gradcam_layer}.hook_out" in lm.hook_names() and "hook_input" in lm.hook_names()
    assert cache[f"{gradcam_layer}.hook_out"].shape == (8, 64, 4, 4)
    torch.testing.assert_close(cache["classifier.3.hook_out"], logits)
