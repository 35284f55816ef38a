"""Train the zoo masked language model: ReAGent's replacement model when RoBERTa cannot be loaded.

A small RoBERTa-style encoder on the zoo corpus with the zoo LM's own tokenizer plus a <mask> token,
so a replaced token of the zoo LM maps to the MLM one to one. BERT's recipe: 15% of tokens chosen,
of which 80% masked, 10% random, 10% kept. Saved as a Hugging Face folder (assets/zoo/mlm) with a
training log (held-out masked-token accuracy).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from compute.datasets import token_rows  # noqa: E402
from compute.settings import ASSETS  # noqa: E402

MASK = "<mask>"


def mask_batch(x: torch.Tensor, mask_id: int, vocab: int, special: int, gen: torch.Generator):
    labels = x.clone()
    chosen = (torch.rand(x.shape, generator=gen) < 0.15) & (x != special)
    labels[~chosen] = -100
    roll = torch.rand(x.shape, generator=gen)
    inp = x.clone()
    inp[chosen & (roll < 0.8)] = mask_id
    rnd = chosen & (roll >= 0.8) & (roll < 0.9)
    inp[rnd] = torch.randint(0, vocab, (int(rnd.sum()),), generator=gen)
    return inp, labels


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ASSETS / "zoo" / "mlm")
    ap.add_argument("--lm", type=Path, default=ASSETS / "zoo" / "lm", help="whose tokenizer to use")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer, RobertaConfig, RobertaForMaskedLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.lm)
    tok.add_special_tokens({"mask_token": MASK})
    mask_id = tok.convert_tokens_to_ids(MASK)
    special = tok.bos_token_id
    vocab = len(tok)
    n_rows = args.steps * args.batch // 4 + 64  # each row is seen about four times
    train = token_rows(tok, "zoo-stdlib", args.seq, n_rows, special)
    held = token_rows(tok, "zoo-stdlib-heldout", args.seq, 64, special)
    cfg = RobertaConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=args.seq + 2, pad_token_id=special,
                        bos_token_id=special, eos_token_id=special, type_vocab_size=1)
    model = RobertaForMaskedLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    log, t0 = [], time.time()

    @torch.no_grad()
    def held_accuracy() -> float:
        model.eval()
        inp, labels = mask_batch(held, mask_id, vocab, special, torch.Generator().manual_seed(123))
        pred = model(input_ids=inp).logits.argmax(-1)
        model.train()
        sel = labels != -100
        return float((pred[sel] == labels[sel]).float().mean())

    for step in range(args.steps):
        idx = torch.randint(0, len(train), (args.batch,), generator=gen)
        inp, labels = mask_batch(train[idx], mask_id, vocab, special, gen)
        loss = model(input_ids=inp, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps - 1:
            entry = {"step": step, "loss": float(loss), "held_out_masked_accuracy": held_accuracy(),
                     "minutes": round((time.time() - t0) / 60, 2)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tok.save_pretrained(args.out)
    (args.out / "training_log.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                            "log": log}, indent=1))


if __name__ == "__main__":
    main()
