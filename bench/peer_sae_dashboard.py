"""The peer side of bench_dashboards.py, run with the sae-dashboard venv's Python (`make bench-env`).

sae-dashboard 0.8.0 needs transformer-lens 2.x's HookedTransformer; TL 2.x only loads official model
names, so the zoo LM's Hugging Face folder is converted with TL's own GPT-NeoX weight conversion (and
checked against the Hugging Face model's logits). Then SaeVisRunner computes the dashboards of every
feature over the given token rows. Prints one JSON line: seconds and a few numbers to cross-check.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def hooked_model(folder: str, reference: str | None = None):
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.neox import convert_neox_weights
    from transformers import GPTNeoXForCausalLM

    # transformers 5 writes the rotary settings as rope_parameters; 4.x (this venv) reads rotary_pct and
    # rotary_emb_base and would silently default to rotating a quarter of each head
    raw = json.loads((Path(folder) / "config.json").read_text())
    rope = raw.get("rope_parameters") or {}
    legacy = {"rotary_pct": rope.get("partial_rotary_factor", raw.get("rotary_pct", 0.25)),
              "rotary_emb_base": rope.get("rope_theta", raw.get("rotary_emb_base", 10000))}
    hf = GPTNeoXForCausalLM.from_pretrained(folder, **legacy).eval()
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size, d_head=c.hidden_size // c.num_attention_heads, n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size, n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings,
        eps=c.layer_norm_eps, d_vocab=c.vocab_size, act_fn=c.hidden_act, use_attn_scale=True,
        parallel_attn_mlp=c.use_parallel_residual, positional_embedding_type="rotary",
        rotary_adjacent_pairs=False, rotary_dim=round(c.rotary_pct * c.hidden_size // c.num_attention_heads),
        normalization_type="LN", original_architecture="GPTNeoXForCausalLM", default_prepend_bos=False,
        device="cpu")
    model = HookedSAETransformer(cfg)
    model.load_state_dict(convert_neox_weights(hf, cfg), strict=False)
    model.eval()
    if reference is None:
        return model, None
    # the same logits as the workbench's model (TransformerBridge on transformers 5) on full-length rows
    from safetensors.torch import load_file

    ref = load_file(reference)
    with torch.no_grad():
        diff = (model(ref["tokens"]) - ref["logits"]).abs().max().item()
    if diff > 1e-3:
        raise SystemExit(f"the converted model does not match the workbench's (max logit diff {diff})")
    return model, diff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-folder", required=True)
    ap.add_argument("--sae-folder", required=True)
    ap.add_argument("--tokens", required=True, help="safetensors file with 'tokens' [rows, seq]")
    ap.add_argument("--reference", required=True, help="safetensors with 'tokens' and the workbench's 'logits'")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import load_file
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    from sae_lens import SAE

    model, diff = hooked_model(args.model_folder, args.reference)
    sae = SAE.load_from_disk(args.sae_folder, device="cpu")
    # SaeVisRunner always folds the decoder norms into the encoder, which SAELens refuses for TopK SAEs.
    # Our decoder rows are unit-norm, so the fold is the identity: skip it (checked, not assumed).
    norms = sae.W_dec.norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise SystemExit("decoder rows are not unit-norm: folding would change this TopK SAE")
    sae.fold_W_dec_norm = lambda: None
    tokens = load_file(args.tokens)["tokens"]
    hook = sae.cfg.metadata.hook_name
    cfg = SaeVisConfig(hook_point=hook, features=list(range(sae.cfg.d_sae)), minibatch_size_features=256,
                       minibatch_size_tokens=64, device="cpu", dtype="float32", verbose=False)
    t0 = time.perf_counter()
    data = SaeVisRunner(cfg).run(encoder=sae, model=model, tokens=tokens)
    seconds = time.perf_counter() - t0
    # cross-check: each feature's highest activation (the first top-activating example)
    max_acts = {}
    before = cfg.feature_centric_layout.seq_cfg.buffer[0]
    for f, fd in list(data.feature_data_dict.items())[:64]:
        groups = fd.sequence_data.seq_group_data if fd.sequence_data is not None else []
        # the highlighted token of each top example (at index buffer[0] of its window), not the whole window
        vals = [s.feat_acts[before] for g in groups[:1] for s in g.seq_data if len(s.feat_acts) > before]
        max_acts[int(f)] = float(max(vals)) if vals else 0.0
    print(json.dumps({"seconds": seconds, "features": len(data.feature_data_dict), "tokens": int(tokens.numel()),
                      "logit_check_max_diff": diff, "max_acts": max_acts}))


if __name__ == "__main__":
    main()
