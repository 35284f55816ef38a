"""A hand-built 2-layer attention-only TransformerLens model whose prediction depends on one token only.

Residual stream: token one-hot (dims 0..V-1), position one-hot (dims 32..32+n_ctx-1), and an output
subspace (dims 48..48+V-1). Both layers attend from every position to KEY_POS (when it can see it);
layer 0 copies the attended token's identity into the output subspace, which the unembedding reads,
so the next-token prediction at the last position is the token at KEY_POS. Layer 1 attends the same
way but writes nothing (so attention rollout has two layers to multiply). Its tokenizer is a word-level
Hugging Face tokenizer over "<s>", "[MASK]", "w2".."w19".
"""
from __future__ import annotations

import torch

V, N_CTX, D = 20, 12, 80
POS0, OUT0 = 32, 48
KEY_POS = 3  # position in the sequence (BOS is position 0): the third prompt token after BOS


def toy_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "[MASK]": 1, **{f"w{i}": i for i in range(2, V)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[MASK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", mask_token="[MASK]", unk_token="[MASK]")


def toy_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=D, n_ctx=N_CTX, d_head=D, n_heads=1, d_vocab=V,
                                  attn_only=True, normalization_type=None, positional_embedding_type="standard",
                                  act_fn="relu", seed=0, default_prepend_bos=False)
    model = HookedTransformer(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    sd["embed.W_E"][:, :V] = torch.eye(V)
    sd["pos_embed.W_pos"][:, POS0 : POS0 + N_CTX] = torch.eye(N_CTX)
    scale = D ** 0.5
    for layer in range(2):
        # every query asks for KEY_POS: score = 12 for the key at KEY_POS, 0 elsewhere
        sd[f"blocks.{layer}.attn.W_Q"][0, POS0 : POS0 + N_CTX, 0] = 1.0
        sd[f"blocks.{layer}.attn.W_K"][0, POS0 + KEY_POS, 0] = 12.0 * scale
    sd["blocks.0.attn.W_V"][0, :V, :V] = torch.eye(V)
    # the copy is amplified inside the head (x2) rather than only in the unembedding (x4): a gradient at
    # the last position's own embedding reaches the logits straight through W_U, and should not tie with
    # the path the model actually uses
    sd["blocks.0.attn.W_O"][0, :V, OUT0 : OUT0 + V] = 2.0 * torch.eye(V)
    sd["unembed.W_U"][OUT0 : OUT0 + V, :] = 4.0 * torch.eye(V)
    for k in list(sd):
        if k.endswith("IGNORE") or k.endswith("mask"):
            sd[k] = model.state_dict()[k]
    model.load_state_dict(sd)
    return model.eval()
