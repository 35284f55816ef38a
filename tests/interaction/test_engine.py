"""The interaction-bases engine on cases whose answer is known: a planted MLP whose computation lives in a
2-d subspace, C·C⁺ on the kept subspace, rib's stochastic sources as unbiased estimates of the exact M′ and
edges, integrated gradients against their definition, edge masking against one pass per output, and the
GPT-NeoX chain (LayerNorm, rotary) against the zoo LM's own logits."""
import numpy as np
import pytest
import torch
from torch import nn

from compute.zoo_nets import HookedLayers
from interaction.ablation import edge_masked_output
from interaction.build import Sources, basis_jacobian_M, build_bases, collect_activations, squared_edges
from interaction.chain import Section, build_sections
from interaction.mlp import mlp_chain


class Planted(HookedLayers):
    """10 inputs -> 16 ReLU units -> 3 outputs, the hidden layer reading only span(e0 + e1, e2 − e3)."""
    stages = ("layers",)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3)).double()
        basis = torch.zeros(2, 10, dtype=torch.float64)
        basis[0, :2] = 1 / 2 ** 0.5
        basis[1, 2], basis[1, 3] = 1 / 2 ** 0.5, -1 / 2 ** 0.5
        self.subspace = basis
        with torch.no_grad():
            self.layers[0].weight.copy_(torch.randn(16, 2, dtype=torch.float64) @ basis)
        self._hook_layers()


def _planted_bases(kind="lib"):
    net = Planted()
    chain = mlp_chain(net)
    sections = build_sections(chain, ["hook_input", "layers.1.hook_out", "logits"])
    x = torch.randn(2000, 10, dtype=torch.float64) * torch.linspace(0.5, 3.0, 10)  # anisotropic data
    acts = collect_activations(chain.embed(x), sections)
    return net, sections, acts, build_bases(kind, sections, acts)


def test_a_planted_2d_computation_is_found_as_the_top_lib_directions():
    net, _, _, built = _planted_bases()
    C = built.bases["hook_input"].C
    assert C.shape[1] == 3  # the constant direction and the two planted ones; the other 7 have Λ = 0
    found = torch.linalg.qr(C[:-1, 1:3])[0]  # the input part of the two non-constant functions
    cosines = torch.linalg.svdvals(found.T @ net.subspace.T)  # of the principal angles with the planted plane
    torch.testing.assert_close(cosines, torch.ones(2, dtype=torch.float64), atol=1e-8, rtol=0)
    pca = _planted_bases("pca")[3].bases["hook_input"]
    assert pca.C.shape[1] == 11  # PCA keeps every direction the data varies in


def test_c_pinv_c_is_the_identity_on_the_kept_subspace():
    _, _, _, built = _planted_bases()
    for layer, basis in built.bases.items():
        if basis.C is not None:
            k = basis.C.shape[1]
            torch.testing.assert_close(basis.C_pinv @ basis.C, torch.eye(k, dtype=torch.float64), atol=1e-8, rtol=0)


def _attention_like_section():
    """A small nonlinear section over positions (causal mixing), so sources over positions matter."""
    torch.manual_seed(1)
    W = torch.randn(5, 4, dtype=torch.float64) / 2

    def run(f):
        mixed = torch.cumsum(f, dim=-2) / torch.arange(1, f.shape[-2] + 1, dtype=f.dtype)[:, None]
        return torch.tanh(mixed @ W)
    return Section("a", "b", run)


def test_stochastic_sources_estimate_the_exact_m_dash():
    section = _attention_like_section()
    f = torch.randn(64, 6, 5, dtype=torch.float64)
    exact = basis_jacobian_M(section, f, None)
    estimates = [basis_jacobian_M(section, f, None, Sources(positions=1, seed=s)) for s in range(200)]
    mean = torch.stack(estimates).mean(0)
    assert float((mean - exact).norm() / exact.norm()) < 0.05  # unbiased: the mean of 200 draws is close
    single = float((estimates[0] - exact).norm() / exact.norm())
    assert 0 < single < 0.5  # one draw is an estimate, not the exact value
    both = torch.stack([basis_jacobian_M(section, f, None, Sources(positions=1, hidden=2, seed=s))
                        for s in range(200)]).mean(0)
    assert float((both - exact).norm() / exact.norm()) < 0.05


def test_stochastic_edges_estimate_the_exact_edges():
    section = _attention_like_section()
    f = torch.randn(64, 6, 5, dtype=torch.float64)
    eye = torch.eye(5, dtype=torch.float64)
    exact = squared_edges(section, f, eye, eye, None)
    mean = torch.stack([squared_edges(section, f, eye, eye, None, sources=4, seed=s) for s in range(100)]).mean(0)
    assert float((mean - exact).norm() / exact.norm()) < 0.05


def test_integrated_gradient_edges_follow_their_definition():
    """For f ↦ x² (one input, one output), the IG attribution over [0, 1] is x · ∫ 2αx dα = x², so E = x⁴;
    α = 1 alone (the gradient) gives (2x · x)² = 4x⁴. The trapezoidal rule is exact for this integrand."""
    section = Section("a", "b", lambda f: f[..., :1] ** 2)
    x = torch.tensor([[[1.5, 1.0]], [[-2.0, 1.0]]], dtype=torch.float64)  # [N, P, 1 + constant]
    eye = torch.eye(2, dtype=torch.float64)
    expected = float((x[:, 0, 0] ** 4).mean())
    ig = squared_edges(section, x, eye, eye, None, n_intervals=8)
    assert float(ig[0, 0]) == pytest.approx(expected, rel=1e-12)
    assert float(squared_edges(section, x, eye, eye, None)[0, 0]) == pytest.approx(4 * expected, rel=1e-12)


def test_edge_masking_matches_one_pass_per_output():
    torch.manual_seed(0)
    W1 = torch.randn(5, 4, dtype=torch.float64)
    section = Section("a", "b", lambda f: torch.tanh(f @ W1))
    f = torch.randn(7, 2, 5, dtype=torch.float64)
    C_in = torch.randn(5, 5, dtype=torch.float64)
    C_out = torch.randn(4, 3, dtype=torch.float64)
    C_in_pinv, C_out_pinv = torch.linalg.inv(C_in), torch.linalg.pinv(C_out)
    keep = torch.rand(3, 5) > 0.5
    keep[1] = keep[0]  # two outputs sharing a mask share a pass
    got = edge_masked_output(section, f, C_in, C_in_pinv, C_out, C_out_pinv, keep, out_chunk=1)
    f_hat = f @ C_in
    ref = torch.stack([(section.run((f_hat * keep[i].double()) @ C_in_pinv) @ C_out)[..., i] for i in range(3)], -1)
    torch.testing.assert_close(got, ref @ C_out_pinv, rtol=0, atol=1e-12)


def test_the_gpt_neox_chain_computes_the_zoo_lm(wb):
    """LayerNorm, partial rotary and the fused QKV read from the Hugging Face model behind the bridge: at
    c = 1 the folded chain gives the model's own logits, and the ln-out node layers hold the variance."""
    from compute.tasks import task_for
    from interaction.models import chain_for

    lm = wb.models.get("zoo-lm")
    ids = task_for(lm).data(lm, "test", 4, 32)
    chain = chain_for(lm)
    assert "blocks.1.ln1_out" in chain.order and chain.variance_layers >= {"blocks.0.ln1_out", "ln_final_out"}
    acts = collect_activations(chain.embed(ids), build_sections(chain, chain.order))
    with torch.no_grad():
        ref = lm.model(ids).double()
    torch.testing.assert_close(acts.by_layer["logits"], ref, rtol=1e-4, atol=1e-4)
    stream = acts.by_layer["blocks.1.hook_resid_pre"][..., :-1]
    np.testing.assert_allclose(acts.by_layer["blocks.1.ln1_out"][..., 0].numpy(),
                               stream.var(-1, unbiased=False).numpy(), rtol=1e-12)


def test_fourier_labels_name_the_planted_frequencies():
    from interaction.fourier import dominant_frequencies

    p = 13
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    w = 2 * np.pi / p
    values = np.stack([np.cos(w * 3 * a), np.sin(w * 5 * b), np.cos(w * 4 * (a + b)), np.cos(w * 2 * (a - b)),
                       np.ones_like(a, dtype=float)], -1).reshape(p * p, -1)
    labels = dominant_frequencies(values, p)
    assert [x["label"] for x in labels] == ["a: 3", "b: 5", "a+b: 4", "a−b: 2", "constant"]
    assert all(x["power_share"] == pytest.approx(1.0) for x in labels[:4])


def test_whitened_pca_gives_unit_variance_directions():
    net, sections, acts, _ = _planted_bases()
    from interaction.build import build_bases

    basis = build_bases("pca", sections, acts, pca_whiten=True).bases["hook_input"]
    f = acts.by_layer["hook_input"].reshape(-1, 11)
    f_hat = (f @ basis.C)[:, 1:]  # the constant direction first
    cov = (f_hat - f_hat.mean(0)).T @ (f_hat - f_hat.mean(0)) / len(f_hat)
    torch.testing.assert_close(cov, torch.eye(10, dtype=torch.float64), atol=1e-8, rtol=0)
