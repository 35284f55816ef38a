"""Train the zoo language model: a small GPT-NeoX (Pythia-style) causal transformer on the stdlib corpus.

Saved as an ordinary Hugging Face folder (config.json + model.safetensors + tokenizer files), so the
workbench loads it exactly like a user's own checkpoint, through TransformerLens's TransformerBridge.

Induction heads need a reason to exist and time to form. A share of the training rows are
`[EOT] R R` with R a run of uniformly random tokens: the second copy is only predictable by
looking back at what followed the same token last time, which is what an induction head does.
The natural rows (code, with its repeated identifiers) reward the same mechanism more softly.
The script logs the loss on the first and second copy of held-out repeated sequences, the signature
of induction heads (the second-copy loss collapses once they form).

The committed model took two stages (see the Makefile's `zoo` recipe and the README). Stage 1 trains the
LM (text plus repeats). Stage 2 adds `--previous-token-aux`, a training-only read-out that predicts token
t-1 from the residual stream after block 0. An induction head in layer 1 needs a previous-token head in
layer 0, and the LM loss rewards one only once a layer-1 head is already looking for it; that
chicken-and-egg plateau outlasted every CPU run without the read-out (none formed in 2,400 steps of
stage 1 plus 6,800 more like stage 2). With it, layer 0 carried the previous token within 300 steps and
a layer-1 induction head formed about step 2,000.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_corpus import ASSETS, EOT, load_corpus  # noqa: E402


def encode_docs(tokenizer, docs: list[str], eot_id: int) -> np.ndarray:
    ids: list[int] = []
    for enc in tokenizer(docs)["input_ids"]:
        ids.append(eot_id)
        ids.extend(enc)
    return np.asarray(ids, dtype=np.int32)


def repeated_random_batch(gen: torch.Generator, batch: int, ctx: int, vocab: int, eot_id: int) -> torch.Tensor:
    """`[EOT] R R` rows of length ctx, R = (ctx-1)//2 uniformly random tokens (a spare slot continues the copy)."""
    half = (ctx - 1) // 2
    # Random tokens avoid the special token so that a "copy" is never ambiguous with a document break.
    rnd = torch.randint(0, vocab - 1, (batch, half), generator=gen)
    rnd = rnd + (rnd >= eot_id).long()
    bos = torch.full((batch, 1), eot_id, dtype=torch.long)
    return torch.cat([bos, rnd, rnd, rnd[:, : ctx - 1 - 2 * half]], dim=1)


def varied_repeat_batch(gen: torch.Generator, batch: int, ctx: int, vocab: int, eot_id: int,
                        min_len: int = 8, max_len: int = 120) -> torch.Tensor:
    """`[EOT] R1 R1 R2 R2 ...` with random lengths |Ri|: the copy offset changes from pair to pair, so
    only a content-based mechanism (an induction head) predicts the second copies, not a head that
    attends a fixed distance back."""
    rows = []
    for _ in range(batch):
        row = [eot_id]
        while len(row) < ctx:
            n = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
            r = torch.randint(0, vocab - 1, (n,), generator=gen)
            r = r + (r >= eot_id).long()
            row.extend(r.tolist() * 2)
        rows.append(row[:ctx])
    return torch.tensor(rows, dtype=torch.long)


def span_repeat_batch(rng: np.random.Generator, data: np.ndarray, batch: int, ctx: int, eot_id: int,
                      min_len: int = 8, max_len: int = 120) -> torch.Tensor:
    """`[EOT] S1 S1 S2 S2 ...` with Si spans of corpus text of random lengths: the second copies reward an
    induction head on tokens whose embeddings the natural text trains well (random-token repeats alone
    gave the model nothing to start from); such heads then work on random tokens too."""
    rows = []
    for _ in range(batch):
        row = [eot_id]
        while len(row) < ctx:
            n = int(rng.integers(min_len, max_len + 1))
            start = int(rng.integers(0, len(data) - n))
            span = [t for t in data[start : start + n].tolist() if t != eot_id]
            row.extend(span * 2)
        rows.append(row[:ctx])
    return torch.tensor(rows, dtype=torch.long)


def alternation_batch(gen: torch.Generator, batch: int, ctx: int, vocab: int, eot_id: int,
                      min_len: int = 4, max_len: int = 16) -> torch.Tensor:
    """`[EOT] a b a b a ... c d c d ...`: segments of random lengths alternating two random tokens. Past a
    segment's first two tokens, the next token is the one before the current: a head that attends to the
    previous token and copies it predicts it. That is the half of an induction circuit that never formed in
    layer 0 from text and repeats alone."""
    rows = []
    for _ in range(batch):
        row = [eot_id]
        while len(row) < ctx:
            n = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
            pair = torch.randint(0, vocab - 1, (2,), generator=gen)
            pair = (pair + (pair >= eot_id).long()).tolist()
            row.extend((pair * n)[:n])
        rows.append(row[:ctx])
    return torch.tensor(rows, dtype=torch.long)


def natural_batch(rng: np.random.Generator, data: np.ndarray, batch: int, ctx: int, eot_id: int) -> torch.Tensor:
    starts = rng.integers(0, len(data) - ctx, size=batch)
    rows = np.stack([data[s : s + ctx - 1] for s in starts])
    bos = np.full((batch, 1), eot_id, dtype=np.int32)
    return torch.from_numpy(np.concatenate([bos, rows], axis=1)).long()


@torch.no_grad()
def evaluate(model, held: np.ndarray, gen_seed: int, ctx: int, vocab: int, eot_id: int) -> dict:
    model.eval()
    rng = np.random.default_rng(gen_seed)
    x = natural_batch(rng, held, 32, ctx, eot_id)
    logits = model(x).logits
    held_loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten()).item()
    # the check uses a repeat length never used in fixed-mode training (64, not (ctx-1)//2), so a
    # head that merely attends a fixed distance back does not pass for an induction head
    out = {"held_out_loss": held_loss}
    for half, suffix in ((64, ""), (16, "_period16")):
        g = torch.Generator().manual_seed(gen_seed)
        r = repeated_random_batch(g, 32, 2 * half + 1, vocab, eot_id)
        lg = model(r).logits
        per_tok = torch.nn.functional.cross_entropy(lg[:, :-1].flatten(0, 1), r[:, 1:].flatten(),
                                                    reduction="none").view(32, -1)
        out["repeat_first_loss" + suffix] = per_tok[:, : half - 1].mean().item()  # tokens 2..half of the first copy
        out["repeat_second_loss" + suffix] = per_tok[:, half : 2 * half - 1].mean().item()  # the second copy
    model.train()
    return out


class PreviousTokenProbe(torch.nn.Module):
    """A linear read-out, used only during training, that predicts token t-1 from the residual stream after
    block 0 at position t. Its loss rewards layer 0 for writing the previous token where a later head's keys
    can read it: the first half of an induction circuit, which the LM loss alone rewards only once a layer-1
    head already looks for it. The probe is discarded; the saved model is a plain GPT-NeoX."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d_model)
        self.proj = torch.nn.Linear(d_model, d_model, bias=False)

    def loss(self, resid_after_block0: torch.Tensor, tokens: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        logits = self.proj(self.norm(resid_after_block0[:, 1:])) @ embed.T
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, :-1].flatten())


def build_model(args, vocab: int, eot_id: int):
    """A fresh GPT-NeoX: a plain Hugging Face class with nn.Linear layers (what kronfluence needs) that
    TransformerBridge boots from a folder."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=args.d_model, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=4 * args.d_model,
        max_position_embeddings=args.ctx, rotary_pct=args.rotary_pct, use_parallel_residual=False,
        tie_word_embeddings=args.tie_embeddings, bos_token_id=eot_id, eos_token_id=eot_id,
        attention_dropout=0.0, hidden_dropout=0.0,
    )
    return GPTNeoXForCausalLM(cfg)


def write_portable_config(folder: Path) -> None:
    """transformers 5 saves the rotary settings only as rope_parameters; 4.x reads rotary_pct and
    rotary_emb_base (and silently defaults to a quarter of each head). Write both, so the folder loads the
    same model in either (the sae-dashboard benchmark peer runs transformers 4.x)."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rope = cfg.get("rope_parameters") or {}
    cfg.setdefault("rotary_pct", rope.get("partial_rotary_factor", 1.0))
    cfg.setdefault("rotary_emb_base", rope.get("rope_theta", 10000.0))
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ASSETS / "zoo" / "lm")
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=float, default=30e6)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--repeat-share", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=float("inf"), help="stop early (and save) after this long")
    ap.add_argument("--repeat-mode", choices=["fixed", "varied", "mixed"], default="fixed",
                    help="fixed: [EOT] R R with |R| = (ctx-1)//2; varied: pairs of random lengths 8..120; "
                         "mixed: half of the repeat rows repeat corpus spans, half random tokens (varied)")
    ap.add_argument("--rotary-pct", type=float, default=0.25,
                    help="share of each head's dimensions that rotary embeddings rotate (Pythia: 0.25). At 1.0 "
                         "every q/k dimension depends on the distance, leaving little room for the content-only "
                         "matching an induction head needs; three runs at 1.0 here formed none")
    ap.add_argument("--alternation-share", type=float, default=0.0,
                    help="share of rows made of alternating random pairs (a b a b ... c d c d ...): the next token is "
                         "the one before the current, which rewards a previous-token head directly (an induction "
                         "head builds on one in an earlier layer). Measured: fine-tuning a text-trained 2-layer "
                         "model, a layer-0 head attends 0.6 to the previous token after 100 steps, 0.98 after 1,000; "
                         "from scratch, they form in the last layer (2 layers: layer 1, 0.98 by step 700; 3 layers: "
                         "layer 2), which feeds the logits directly and where no later head can read them")
    ap.add_argument("--tie-embeddings", action="store_true",
                    help="share the input and output embedding: copying any token is then one generic circuit "
                         "rather than 4,096 separate alignments of an embedding with its unembedding")
    ap.add_argument("--previous-token-aux", type=float, default=0.0,
                    help="weight of a training-only loss (PreviousTokenProbe) for reading the previous token out "
                         "of the residual stream after block 0; it decays linearly to 0 over the first "
                         "--aux-share of the steps, so the last steps train the LM loss alone")
    ap.add_argument("--aux-share", type=float, default=0.3)
    ap.add_argument("--init-from", type=Path, default=None,
                    help="continue from this checkpoint folder")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (schedule unchanged)")
    args = ap.parse_args(argv)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.out)
    eot_id = tokenizer.convert_tokens_to_ids(EOT)
    vocab = len(tokenizer)
    train_docs, held_docs = load_corpus()
    train_ids = encode_docs(tokenizer, train_docs, eot_id)
    held_ids = encode_docs(tokenizer, held_docs, eot_id)
    print(f"train tokens {len(train_ids)/1e6:.2f}M, held-out {len(held_ids)/1e6:.2f}M, vocab {vocab}", flush=True)

    model = AutoModelForCausalLM.from_pretrained(args.init_from) if args.init_from else build_model(args, vocab, eot_id)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params/1e6:.2f}M", flush=True)
    probe = PreviousTokenProbe(model.config.hidden_size) if args.previous_token_aux > 0 else None
    params = list(model.named_parameters()) + (list(probe.named_parameters()) if probe else [])
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    steps = int(args.tokens // (args.batch * args.ctx))
    warmup = min(300, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    n_rep = int(round(args.batch * args.repeat_share))
    n_alt = int(round(args.batch * args.alternation_share))
    if n_rep + n_alt > args.batch:
        ap.error("--repeat-share + --alternation-share must not exceed 1")
    t0, log = time.time(), []
    for step in range(steps):
        parts = [natural_batch(rng, train_ids, args.batch - n_rep - n_alt, args.ctx, eot_id)]
        if n_alt:
            parts.append(alternation_batch(gen, n_alt, args.ctx, vocab, eot_id))
        if n_rep and args.repeat_mode == "fixed":
            parts.append(repeated_random_batch(gen, n_rep, args.ctx, vocab, eot_id))
        elif n_rep and args.repeat_mode == "varied":
            parts.append(varied_repeat_batch(gen, n_rep, args.ctx, vocab, eot_id))
        elif n_rep:
            n_span = n_rep // 2
            parts.append(span_repeat_batch(rng, train_ids, n_span, args.ctx, eot_id))
            parts.append(varied_repeat_batch(gen, n_rep - n_span, args.ctx, vocab, eot_id))
        x = torch.cat(parts)
        aux_weight = args.previous_token_aux * max(0.0, 1 - step / max(1, args.aux_share * steps))
        if aux_weight > 0:
            out = model(x, labels=x, output_hidden_states=True)
            aux = probe.loss(out.hidden_states[1], x, model.get_input_embeddings().weight)
            loss = out.loss + aux_weight * aux
        else:
            aux, loss = None, model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        elapsed = (time.time() - t0) / 60
        if step % 100 == 0 or step == steps - 1 or elapsed > args.max_minutes:
            ev = evaluate(model, held_ids, 1234, args.ctx, vocab, eot_id)
            ev.update(step=step, train_loss=loss.item(), minutes=round(elapsed, 2))
            if aux is not None:
                ev.update(previous_token_aux_loss=aux.item(), aux_weight=aux_weight)
            log.append(ev)
            print(json.dumps(ev), flush=True)
            model.save_pretrained(args.out)  # a usable checkpoint at every log point
        if elapsed > args.max_minutes or (args.max_steps is not None and step + 1 >= args.max_steps):
            break
    model.save_pretrained(args.out)
    write_portable_config(args.out)
    log_path = args.out / "training_log.json"
    stages = json.loads(log_path.read_text()).get("stages", []) if args.init_from and log_path.exists() else []
    stages.append({"args": {k: str(v) for k, v in vars(args).items()}, "params": n_params, "log": log})
    log_path.write_text(json.dumps({"stages": stages}, indent=1))


if __name__ == "__main__":
    main()
