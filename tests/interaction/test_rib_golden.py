"""Our interaction bases against rib's own numbers on its modular-addition checkpoint (the zoo's rib-modadd,
assets/zoo/rib_modadd; tests/fixtures/rib_modadd_seed0/golden.json: what rib's run_rib_build.py /
run_ablations.py computed on it, with
the paper's settings: float64, jacobian basis, squared edges, centred, node layers ln1.0 / ln2.0 / unembed /
output, the last position only from ln2.0 on).

Where a number cannot match to the issue's tolerance, the test says why instead of hiding it:
- Kept dimensions are counted against a threshold of 1e-15 in float64, which is the rounding level of these
  Gram and Λ tails. At ln2.0 the golden's own Gram eigenvalues put 126 above it, yet rib's run kept 127 (its
  eigensolver saw the 127th, 7.6e-16 in the golden list, above 1e-15), and our Λ keeps 111 where rib kept 110
  (both Λ near 1.0e-15 out of 3e5). There the count may differ by one; everywhere else it is exact.
- Λ at ln1.0 (through the attention layer) agrees to about 1e-6 for the largest values and to 5e-4 for the
  smallest of those above 1e-6 of the largest: computing the same Gram's eigenpairs by SVD instead of eigh
  moves our own values by as much, so that layer's Λ is not determined more finely than that in float64.
  Λ at ln2.0 and unembed, the Gram eigenvalues, the edge totals and every node-ablation accuracy match to
  the issue's tolerances (1e-6, 1%, 0.01)."""
import json
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rib_modadd_seed0"
GOLDEN = json.loads((FIXTURE / "golden.json").read_text())
MODEL = "rib-modadd"
RIB_NAMES = {"blocks.0.hook_resid_pre": "ln1.0", "blocks.0.hook_resid_mid": "ln2.0",
             "blocks.0.hook_resid_post": "unembed", "logits": "output"}


@pytest.fixture(scope="module")
def built(wb):
    from analyses.interaction_bases import InteractionBasesSpec

    spec = InteractionBasesSpec(model=MODEL, bases=("lib", "pca"))
    return wb.run(spec).result


def _relative(ours, theirs):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    big = np.abs(theirs) > 1e-6 * np.abs(theirs).max()
    return float(np.max(np.abs(ours[big] - theirs[big]) / np.abs(theirs[big])))


def test_the_model_and_its_split_are_rib_s(built):
    assert built.summary["train_examples"] == int(0.3 * 113 ** 2)
    assert built.summary["unablated_accuracy"] == pytest.approx(GOLDEN["node_ablation"]["lib"]["no_ablation_accuracy"])


@pytest.mark.parametrize("layer", ["ln1.0", "ln2.0", "unembed"])
def test_gram_eigenvalues(built, layer):
    g = built.tables["gram"]
    hook = next(h for h, r in RIB_NAMES.items() if r == layer)
    ours = np.sort(g[g.node_layer == hook].eigenvalue.to_numpy())[::-1]
    theirs = np.sort(np.asarray(GOLDEN["gram_eigenvalues"][layer]))[::-1]
    assert _relative(ours, theirs) < 1e-6


@pytest.mark.parametrize("kind", ["lib", "pca"])
def test_kept_dimensions(built, kind):
    t = built.tables["node_layers"].query("basis == @kind").set_index("node_layer")
    for hook, name in RIB_NAMES.items():
        gold = GOLDEN[kind]["node_layers"][name]
        assert t.loc[hook, "orig_dim"] == gold["orig_dim"]
        if name == "output":
            assert not t.loc[hook, "rotated"]
        elif name == "ln2.0":  # a Gram eigenvalue and a Λ at the threshold's rounding level (module doc)
            assert abs(t.loc[hook, "kept_dim"] - gold["kept_dim"]) <= 1, (kind, name)
        else:
            assert t.loc[hook, "kept_dim"] == gold["kept_dim"], (kind, name)


@pytest.mark.parametrize("layer, tolerance", [("unembed", 1e-6), ("ln2.0", 1e-6), ("ln1.0", 1e-3)])
def test_lib_lambda(built, layer, tolerance):
    lam = built.tables["lambda"]
    hook = next(h for h, r in RIB_NAMES.items() if r == layer)
    ours = lam[(lam.basis == "lib") & (lam.node_layer == hook)].sort_values("index")["lambda"].to_numpy()
    theirs = np.asarray(GOLDEN["lib"]["node_layers"][layer]["lambda"])
    n = min(len(ours), len(theirs))  # ln2.0: 126 Gram directions kept here, 127 by rib (module doc)
    assert n >= len(theirs) - 1
    assert _relative(ours[:n], theirs[:n]) < tolerance


@pytest.mark.parametrize("kind", ["lib", "pca"])
def test_edge_totals(built, kind):
    e = built.tables["edges"].query("basis == @kind")
    for _, row in e.iterrows():
        a, b = [RIB_NAMES[x.strip()] for x in row.edge.split("->")]
        gold = GOLDEN[kind]["edges"][f"{a}->{b}"]
        assert row.total == pytest.approx(gold["total"], rel=0.01), (kind, row.edge)
        assert row["max"] == pytest.approx(gold["max"], rel=0.01)


@pytest.mark.parametrize("kind", ["lib", "pca"])
def test_node_ablation_accuracy_at_every_k_of_rib_s_schedule(built, kind):
    ab = built.tables["node_ablation"].query("basis == @kind")
    for layer, gold in GOLDEN["node_ablation"][kind]["accuracy_by_kept_dims"].items():
        hook = next(h for h, r in RIB_NAMES.items() if r == layer)
        ours = ab[ab.node_layer == hook].set_index("kept").accuracy
        assert sorted(int(k) for k in gold) == sorted(ours.index.tolist())  # the same schedule
        worst = max(abs(ours[int(k)] - v) for k, v in gold.items())
        assert worst <= 0.01, (kind, layer, worst)


def test_the_graph_holds_the_strongest_edges_of_each_pair(built):
    top = built.tables["top_edges"]
    edges = built.tables["edges"]
    for (kind, edge), part in top.groupby(["basis", "edge"]):
        row = edges[(edges.basis == kind) & (edges.edge == edge)].iloc[0]
        assert part.value.max() == pytest.approx(row["max"])  # the strongest edge is in it
        assert part.value.is_monotonic_decreasing
        assert (part.in_index < row.in_dim).all() and (part.out_index < row.out_dim).all()
    fig = built.figures["graph_lib"]
    assert len(fig.data) > 10 and fig.data[-1].mode == "markers"  # edges, then the nodes coloured by community


def test_the_folded_sections_compute_the_model(wb):
    """At c = 1 the sections with folded biases give the model's own logits (and the constant stays 1)."""
    import torch

    from compute.tasks import task_for
    from interaction.build import collect_activations
    from interaction.chain import build_sections
    from interaction.models import chain_for

    lm = wb.models.get(MODEL)
    ids = task_for(lm).data(lm, "test")["input_ids"][:64]
    chain = chain_for(lm)
    sections = build_sections(chain, ["ln1.0", "ln2.0", "unembed", "output"], "ln2.0")
    with torch.no_grad():
        _, cache = lm.model.run_with_cache(ids)
        f0 = torch.cat([cache["blocks.0.hook_resid_pre"].double(), torch.ones(64, 3, 1, dtype=torch.float64)], -1)
        torch.testing.assert_close(chain.activations_at(ids, "ln1.0"), f0, rtol=1e-6, atol=1e-6)
        acts = collect_activations(f0, sections)
        ref = lm.model(ids)[:, -1].double()
    torch.testing.assert_close(acts.by_layer["logits"][:, -1], ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(acts.by_layer["blocks.0.hook_resid_mid"][..., -1], torch.ones(64, 1, dtype=torch.float64))


def test_models_that_are_not_supported_get_a_clear_message(wb):
    from analyses.interaction_bases import InteractionBasesSpec
    from compute.errors import BadInput

    with pytest.raises(BadInput, match="convolutions are not supported"):
        wb.run(InteractionBasesSpec(model="zoo-digits-cnn", node_layers=("hook_input", "logits"), last_pos_from=""))
    with pytest.raises(BadInput, match="before attention"):
        wb.run(InteractionBasesSpec(model=MODEL, last_pos_from="blocks.0.hook_resid_pre"))
    with pytest.raises(BadInput, match="must be the model's output"):
        wb.run(InteractionBasesSpec(model=MODEL, node_layers=("blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid")))
    with pytest.raises(BadInput, match="unknown node layer"):
        wb.run(InteractionBasesSpec(model=MODEL, node_layers=("blocks.3.hook_resid_pre", "logits")))
    with pytest.raises(BadInput, match="forward order"):
        wb.run(InteractionBasesSpec(model=MODEL, node_layers=("blocks.0.hook_resid_post",
                                                                     "blocks.0.hook_resid_pre", "logits")))


def test_the_cli_prints_each_basis_in_the_stated_shape(built):
    """`workbench lib … --json` (the same spec as the fixture: a cache hit)."""
    import contextlib
    import io

    from cli.main import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli(["lib", "--model", MODEL, "--basis", "lib,pca", "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    assert set(out) == {"lib", "pca"}
    lib = out["lib"]
    assert lib["node_layers"]["blocks.0.hook_resid_pre"]["kept_dim"] == 115
    assert len(lib["node_layers"]["blocks.0.hook_resid_pre"]["gram_eigenvalues"]) == 129
    edge = lib["edges"]["blocks.0.hook_resid_post -> logits"]["total"]
    assert edge == pytest.approx(GOLDEN["lib"]["edges"]["unembed->output"]["total"], rel=0.01)
    assert lib["node_ablation"]["blocks.0.hook_resid_mid"]["17"] == pytest.approx(
        GOLDEN["node_ablation"]["lib"]["accuracy_by_kept_dims"]["ln2.0"]["17"], abs=0.01)
