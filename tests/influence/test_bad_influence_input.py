"""Bad influence queries get messages that say what is wrong: a completion that tokenizes to nothing, a
training file that is empty or not text, a model whose layers the engine cannot track, a query image of the
wrong shape, damping ≤ 0, an unknown strategy."""
import numpy as np
import pytest
import torch

from analyses.influence_image import InfluenceImageSpec
from analyses.influence_lm import InfluenceLMSpec, query_batch
from compute.errors import BadInput
from influence.tasks import lm_modules


def lm_spec(**kw):
    base = dict(model="zoo-lm", prompt="def f(x):", completion=" return x", max_sequences=20)
    return InfluenceLMSpec(**{**base, **kw})


def test_a_completion_that_tokenizes_to_nothing(wb):
    with pytest.raises(BadInput, match="give a completion"):
        lm_spec(completion="").validate()
    tok = wb.models.get("zoo-lm").tokenizer
    with pytest.raises(BadInput, match="tokenizes to nothing"):
        query_batch(tok, "def f(x):", "\u200b" * 0 + "", 128)


def test_training_files_that_are_empty_or_not_text(wb, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n<|endoftext|>\n   \n", encoding="utf-8")
    with pytest.raises(BadInput, match="is empty"):
        wb.run(lm_spec(train=f"text:{empty}"))
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(BadInput, match="not a text file"):
        wb.run(lm_spec(train=f"text:{binary}"))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(BadInput, match="not UTF-8"):
        wb.run(lm_spec(train=f"text:{latin}"))
    with pytest.raises(BadInput, match="not found"):
        wb.run(lm_spec(train=f"text:{tmp_path / 'missing.txt'}"))


def test_a_model_whose_layers_cannot_be_tracked_is_named(wb, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("1 + 2 = 3\n" * 50, encoding="utf-8")
    with pytest.raises(BadInput, match="HookedTransformer, which has no nn.Linear"):
        wb.run(lm_spec(model="rib-modadd", train=f"text:{text}"))  # weights in TransformerLens's own format
    with pytest.raises(BadInput, match="training corpus ships"):
        wb.run(lm_spec(model="zoo-modadd"))  # a model with no corpus of its own needs --train

    class Conv1DStyle(torch.nn.Module):  # GPT-2-like: projections as raw parameters, no nn.Linear
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Module()])
            self.layers[0].mlp = torch.nn.Module()
            self.layers[0].mlp.c_fc = torch.nn.Parameter(torch.zeros(4, 4))

        def forward(self, input_ids):
            return input_ids

    with pytest.raises(BadInput, match="nn.Linear and nn.Conv2d"):
        lm_modules(Conv1DStyle(), "mlp")


def test_a_query_image_of_the_wrong_shape(wb, tmp_path):
    from analyses.attribution_image import store_upload
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 5, 5), dtype=np.float32))
    name = store_upload(wb, buf.getvalue(), "wrong.npy")
    with pytest.raises(BadInput, match="shape"):
        wb.run(InfluenceImageSpec(model="zoo-digits-cnn", image=name))


def test_damping_must_be_positive_and_the_strategy_known():
    with pytest.raises(BadInput, match="damping must be positive"):
        lm_spec(damping="0").validate()
    with pytest.raises(BadInput, match="damping must be positive"):
        lm_spec(damping="-0.1").validate()
    with pytest.raises(BadInput, match="'auto' or a positive number"):
        lm_spec(damping="lots").validate()
    with pytest.raises(BadInput, match="strategy must be one of"):
        lm_spec(strategy="lissa").validate()
    with pytest.raises(BadInput, match="modules must be one of"):
        lm_spec(modules="attn").validate()
    assert lm_spec(damping="1e-3").damping_value() == 1e-3
