"""Build the zoo corpus and tokenizer from the Python standard library that ships with every CPython.

Why the standard library: it is real text (code, docstrings, comments) with plenty of repeated
identifiers -- the kind of structure that rewards induction heads -- and it is redistributable under
the PSF License 2.0 (copied beside the corpus). Files are read in sorted order, so the corpus is
deterministic for a given Python build; every 20th file is held out (compute.datasets.HELD_OUT_EVERY) for evaluation.

Writes assets/corpus/python-stdlib.txt.xz (documents separated by the end-of-text token),
assets/corpus/LICENSE-PSF.txt and the byte-level BPE tokenizer files into the zoo LM folder.
"""
from __future__ import annotations

import argparse
import lzma
import shutil
import sys
import sysconfig
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ASSETS.parent))
# the corpus location, separator and train/held-out split are the workbench's own (compute.datasets)
from compute.datasets import CORPUS as CORPUS_PATH  # noqa: E402
from compute.datasets import EOT, corpus_documents  # noqa: E402


def stdlib_files(stdlib: Path) -> list[Path]:
    skip = {"site-packages", "__pycache__", "lib2to3", "idlelib", "ensurepip", "turtledemo"}
    files = [p for p in sorted(stdlib.rglob("*.py")) if not skip.intersection(p.relative_to(stdlib).parts)]
    return files


def build_corpus(max_bytes: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in stdlib_files(stdlib):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if EOT in text or not text.strip():
            continue
        docs.append(f"# file: {path.relative_to(stdlib)}\n{text}")
        total += len(text)
        if total >= max_bytes:
            break
    CORPUS_PATH.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(CORPUS_PATH, "wt", encoding="utf-8", preset=9) as fh:
        fh.write(EOT.join(docs))
    licence = stdlib / "LICENSE.txt"
    if licence.exists():
        shutil.copyfile(licence, CORPUS_PATH.parent / "LICENSE-PSF.txt")
    return docs


def load_corpus() -> tuple[list[str], list[str]]:
    """(train documents, held-out documents) of the shipped corpus."""
    return corpus_documents("train"), corpus_documents("heldout")


def train_tokenizer(docs: list[str], vocab_size: int, out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOT], min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT)
    fast.model_max_length = 256
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-mb", type=float, default=14.0, help="raw corpus size to keep (MB)")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--tokenizer-out", type=Path, default=ASSETS / "zoo" / "lm")
    args = ap.parse_args(argv)
    docs = build_corpus(int(args.max_mb * 1e6))
    train, _ = load_corpus()
    train_tokenizer(train, args.vocab_size, args.tokenizer_out)
    print(f"{len(docs)} files, {sum(map(len, docs))/1e6:.1f} MB raw, "
          f"{CORPUS_PATH.stat().st_size/1e6:.2f} MB compressed (python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
