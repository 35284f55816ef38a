"""Train the zoo's modular-addition model: (a + b) mod 113 from the prompt "a b =".

As in Nanda et al. (2023) and the LIB paper (Bushnaq et al. 2024): a one-layer transformer with a
ReLU MLP, full-batch AdamW with strong weight decay (which makes it generalise -- "grok" -- after
first memorising). Saved as a GPT-NeoX Hugging Face folder with a word-level tokenizer, so the
workbench loads it through TransformerBridge like every other language model; task.json records
the train/test split that `workbench zoo-check` evaluates on.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from compute.tasks.modular_addition import ModularAddition  # noqa: E402

OUT = ROOT / "assets" / "zoo" / "modadd"


def save_tokenizer(p: int, out: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {str(i): i for i in range(p)} | {"=": p, "<unk>": p + 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--train-fraction", type=float, default=0.4)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    p = args.p
    task = {"task": "modular_addition", "p": p, "split_seed": args.seed, "train_fraction": args.train_fraction}
    modadd = ModularAddition(task)
    train, test = (modadd.batch(pairs) for pairs in modadd.pairs())  # ids: the number i is token i, "=" is p
    cfg = GPTNeoXConfig(vocab_size=p + 2, hidden_size=128, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=512, hidden_act="relu", max_position_embeddings=3, rotary_pct=1.0,
                        use_parallel_residual=False, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
    model = GPTNeoXForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd, betas=(0.9, 0.98))
    t0, log, done_at = time.time(), [], None
    for step in range(args.steps):
        loss = modadd.loss(model, train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == args.steps - 1:
            acc, test_loss = modadd.accuracy(model, test)
            rec = {"step": step, "train_loss": loss.item(), "test_loss": test_loss,
                   "test_accuracy": acc, "seconds": round(time.time() - t0, 1)}
            log.append(rec)
            print(json.dumps(rec), flush=True)
            if acc >= 0.999 and done_at is None:
                done_at = step
            if done_at is not None and step >= done_at + 1000:  # a margin past full generalisation
                break
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT)
    save_tokenizer(p, OUT)
    (OUT / "task.json").write_text(json.dumps(task, indent=1))
    (OUT / "training_log.json").write_text(json.dumps({"args": vars(args), "log": log}, indent=1))


if __name__ == "__main__":
    main()
