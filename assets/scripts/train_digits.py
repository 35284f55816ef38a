"""Train the zoo's image classifiers on scikit-learn's 8x8 digits (shipped with the package): the small CNN
(`--arch cnn`, zoo-digits-cnn), its adversarially trained twin (`--arch cnn --adversarial`,
zoo-digits-cnn-robust: PGD training in the L∞ ball of radius --epsilon, Madry et al. 2018) or the MLP
64 -> 100 -> 100 -> 10 (`--arch mlp`, zoo-digits-mlp). Clean and PGD-20 accuracy at --epsilon go into the
folder's training_log.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from compute.digits_training import train_digits  # noqa: E402
from compute.tasks.digits import Digits  # noqa: E402
from compute.zoo_nets import DigitsCNN, DigitsMLP  # noqa: E402

OUT = {"cnn": ROOT / "assets" / "zoo" / "digits_cnn", "mlp": ROOT / "assets" / "zoo" / "digits_mlp",
       "cnn_robust": ROOT / "assets" / "zoo" / "digits_cnn_robust"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", choices=("cnn", "mlp"), default="cnn")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adversarial", action="store_true", help="train on PGD examples (the robust twin)")
    ap.add_argument("--epsilon", type=float, default=0.1, help="L∞ radius on the [0, 1] pixel scale")
    ap.add_argument("--pgd-steps", type=int, default=7)
    args = ap.parse_args(argv)
    from attribution.adversarial import accuracy
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    task = {"task": "sklearn_digits", "split_seed": args.seed, "test_fraction": 0.25}
    x_tr, x_te, y_tr, y_te = Digits(task).split_arrays()
    x_tr, y_tr = torch.from_numpy(x_tr), torch.from_numpy(y_tr).long()
    x_te, y_te = torch.from_numpy(x_te), torch.from_numpy(y_te).long()
    net = DigitsCNN() if args.arch == "cnn" else DigitsMLP()
    train_digits(net, x_tr, y_tr, args.epochs, args.epsilon if args.adversarial else None, args.pgd_steps)
    log = {"test_accuracy": accuracy(net, x_te, y_te), "epsilon": args.epsilon,
           "pgd20_accuracy": accuracy(net, x_te, y_te, args.epsilon, steps=20), "adversarial_training": args.adversarial,
           "pgd_train_steps": args.pgd_steps if args.adversarial else 0, "epochs": args.epochs, "seed": args.seed}
    print(json.dumps(log))
    out = OUT[args.arch + ("_robust" if args.adversarial else "")]
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out / "model.safetensors")
    config = {"input_shape": [1, 8, 8], "classes": [str(i) for i in range(10)], "input_range": [0.0, 1.0]}
    if args.arch == "cnn":
        config.update(architecture="DigitsCNN", kwargs={"channels": 32, "n_classes": 10}, gradcam_layer="features.5")
    else:
        config.update(architecture="DigitsMLP", kwargs={"hidden": 100, "n_classes": 10})
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "task.json").write_text(json.dumps(task, indent=1))
    if args.adversarial or args.arch == "cnn":
        (out / "training_log.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
