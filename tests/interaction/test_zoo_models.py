"""Interaction bases on the zoo's own models: the mod-add transformer with LayerNorm and rotary positions,
the digits MLP (with edge ablation and integrated-gradient edges) and the zoo LM with rib's stochastic
sources and the next-token loss."""
import contextlib
import io
import json

import pytest

from analyses.interaction_bases import InteractionBasesSpec
from compute.errors import BadInput


def _needed(ablation, metric, target):
    """{(basis, layer): the fewest directions kept that reach the target}."""
    out = {}
    for (kind, layer), g in ablation.groupby(["basis", "node_layer"]):
        ok = g[g[metric] >= target]
        out[(kind, layer)] = int(ok.kept.min()) if len(ok) else None
    return out


@pytest.fixture(scope="module")
def modadd(wb):
    return wb.run(InteractionBasesSpec(model="zoo-modadd", edges=False)).result


def test_lib_needs_no_more_directions_than_pca_for_99_percent_on_zoo_modadd(modadd):
    assert modadd.summary["unablated_accuracy"] == 1.0
    needed = _needed(modadd.tables["node_ablation"], "accuracy", 0.99)
    for layer in ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"):
        assert needed[("lib", layer)] is not None and needed[("lib", layer)] <= needed[("pca", layer)], (layer, needed)


def test_ablating_nothing_reproduces_the_model_exactly(modadd):
    ab = modadd.tables["node_ablation"]
    dims = modadd.tables["node_layers"].set_index(["basis", "node_layer"]).orig_dim
    for (kind, layer), g in ab.groupby(["basis", "node_layer"]):
        full = g[g.kept == dims[(kind, layer)]]
        assert len(full) == 1 and full.accuracy.iloc[0] == modadd.summary["unablated_accuracy"]
        assert g[g.kept == 0].accuracy.iloc[0] < 0.05  # everything ablated: chance (1/113)


def test_mod_add_directions_carry_few_fourier_frequencies(modadd):
    d = modadd.tables["directions"]
    lib = d[(d.basis == "lib") & (d.node_layer == "blocks.0.hook_resid_post")]
    top = lib.head(20)
    # a grokked mod-add model computes with a handful of key frequencies: the top directions share them
    assert top.label.nunique() <= 12 and (top.power_share > 0.2).mean() > 0.5, top


@pytest.fixture(scope="module")
def mlp(wb):
    spec = InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                     "layers.4.hook_out", "logits"),
                                last_pos_from="", bases=("lib", "pca"), edge_ablation=True)
    return wb.run(spec).result


def test_the_digits_mlp_is_in_the_zoo_at_95_percent(mlp):
    assert mlp.summary["unablated_accuracy"] >= 0.95


def test_edge_ablation_finds_the_fewest_edges_and_lib_needs_fewer_than_pca(mlp):
    ea = mlp.tables["edge_ablation"]
    base = mlp.summary["unablated_accuracy"]
    for (kind, edge), g in ea.groupby(["basis", "edge"]):
        n = g["smallest_within_0.001"].iloc[0]
        probes = dict(zip(g.kept_edges, g.accuracy))
        assert probes[n] >= base - 0.001  # the answer keeps the accuracy
        assert all(v < base - 0.001 for k, v in probes.items() if k < n)  # every smaller probe lost it
        assert n < g.total_edges.iloc[0]
    needed = mlp.summary["edges_needed"]
    assert needed["lib: hook_input -> layers.2.hook_out"] < needed["pca: hook_input -> layers.2.hook_out"] / 3


def test_integrated_gradient_edges_differ_from_alpha_one_on_a_relu_net(wb, mlp):
    spec = InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                     "layers.4.hook_out", "logits"),
                                last_pos_from="", bases=("lib",), node_ablation=False, edge_intervals=6)
    ig = wb.run(spec).result.tables["edges"].set_index("edge").total
    plain = mlp.tables["edges"].query("basis == 'lib'").set_index("edge").total
    # the folded biases make the zero baseline meaningful; ReLU's kinks make the path matter
    assert (ig - plain).abs().max() > 1e-3 * plain.abs().max()
    assert (ig > 0).all()


def test_the_cli_uses_the_model_s_own_node_layers(wb, mlp):
    from cli.main import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli(["lib", "--model", "zoo-digits-mlp", "--basis", "lib,pca", "--edge-ablation", "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    assert set(out["lib"]["node_layers"]) == {"hook_input", "layers.2.hook_out", "layers.4.hook_out", "layers.5.hook_out"}
    assert out["lib"]["edge_ablation"]["hook_input -> layers.2.hook_out"]["n_edges"] == \
        mlp.summary["edges_needed"]["lib: hook_input -> layers.2.hook_out"]


def test_the_zoo_lm_with_stochastic_sources_and_the_next_token_loss(wb):
    spec = InteractionBasesSpec(model="zoo-lm", node_layers=("blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid",
                                                             "blocks.1.hook_resid_post", "logits"),
                                last_pos_from="", bases=("lib", "pca"), position_sources=1, hidden_sources=16,
                                edges=False, sequences=8, seq_len=64)
    res = wb.run(spec).result
    assert res.summary["metric"] == "loss"
    base = res.summary["unablated_loss"]
    assert 0.5 < base < 6
    ab = res.tables["node_ablation"]
    dims = res.tables["node_layers"].set_index(["basis", "node_layer"]).orig_dim
    for (kind, layer), g in ab.groupby(["basis", "node_layer"]):
        assert g[g.kept == dims[(kind, layer)]].loss.iloc[0] == pytest.approx(base, rel=1e-9)
        assert g[g.kept == 0].loss.iloc[0] > base + 1  # ablating everything costs nats
    lam = res.tables["lambda"]
    assert (lam[lam.basis == "lib"]["lambda"] >= 0).all() and len(lam) > 0


def test_bad_input_gets_a_clear_message(wb):
    with pytest.raises(BadInput, match=r"192 dimensions but the data gives only 16 activation vectors"):
        wb.run(InteractionBasesSpec(model="zoo-lm", node_layers=("blocks.1.hook_resid_post", "logits"),
                                    last_pos_from="", sequences=1, seq_len=16))
    with pytest.raises(BadInput, match="next-token loss at every position"):
        wb.run(InteractionBasesSpec(model="zoo-lm", node_layers=("blocks.1.hook_resid_post", "logits"),
                                    last_pos_from="blocks.1.hook_resid_post"))
    with pytest.raises(BadInput, match="backward passes"):
        wb.run(InteractionBasesSpec(model="zoo-lm", node_layers=("blocks.1.hook_resid_post", "logits"),
                                    last_pos_from="", sequences=64, seq_len=128))
    with pytest.warns(UserWarning, match="float32 requested"):
        wb.run(InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "logits"), last_pos_from="",
                                    bases=("pca",), dtype="float32", edges=False))


def test_the_bases_are_fitted_once_and_reused_by_later_analyses(wb, mlp):
    from analyses.interaction_fit import load_bases

    spec = InteractionBasesSpec(model="zoo-digits-mlp", node_layers=("hook_input", "layers.2.hook_out",
                                                                     "layers.4.hook_out", "logits"),
                                last_pos_from="", bases=("lib", "pca"), edges=False, node_ablation=True)
    res = wb.run(spec).result  # another analysis on the same bases
    for fit in spec.fits():
        assert wb.run(fit).cached  # fitted once, by the first analysis
        bases = load_bases(wb.artifact_folder(fit))
        assert {k: b.kept_dim for k, b in bases.items()} == wb.cached(fit).summary["kept_dims"]
    same = ["basis", "node_layer", "kept", "accuracy"]
    assert res.tables["node_ablation"][same].equals(mlp.tables["node_ablation"][same])
    assert res.summary["basis_folders"] == mlp.summary["basis_folders"]
    with pytest.raises(BadInput, match="cannot be read"):
        load_bases(wb.settings.home / "no-such-basis")
