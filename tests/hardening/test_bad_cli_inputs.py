"""Bad input on the command line: each gets `error: …` (a clear message naming what is wrong), exit status 2,
no traceback, and nothing is half-done (files the user had are still there)."""
from __future__ import annotations

import json
import struct
import zlib

import pytest

from cli.main import main
from tests.hardening.cases import record

BINARY = b"def f(\xff\xfe".decode("utf-8", "surrogateescape")


def _png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


FILES = {  # name -> content, made in tmp_path; "{tmp}" in an argument stands for that folder
    "bomb.png": _png(30_000, 30_000),
    "text.png": b"this is not an image",
    "binary.txt": b"\x00\x01\x02\xff" * 100,
    "empty.txt": b"",
    "latin1.txt": "café".encode("latin-1"),
    "deep.json": ("[" * 100_000 + "]" * 100_000).encode(),
    "list.json": b'["kind", "prompt"]',
    "types.json": json.dumps({"kind": "prompt", "model": "zoo-lm", "top_k": "five"}).encode(),
    "unknown_kind.json": json.dumps({"kind": "no_such_analysis", "model": "zoo-lm"}).encode(),
    "bad.json": b'{"kind": "prompt", ',
    "task.json": b'{"not": "a task"}',
    "bad.csv": b"a,b\n1,2\n",
}

CASES = [  # (argv, words the message must hold)
    (["models", "--json"], None),  # a sanity case: works
    (["run", "{tmp}/missing.json"], "no spec file"),
    (["run", "{tmp}"], "is a folder"),
    (["run", "{tmp}/binary.txt"], "not a UTF-8 text file"),
    (["run", "{tmp}/deep.json"], "nested too deeply"),
    (["run", "{tmp}/list.json"], "holds a JSON list"),
    (["run", "{tmp}/types.json"], "top_k"),
    (["run", "{tmp}/unknown_kind.json"], "no_such_analysis"),
    (["run", "{tmp}/bad.json"], "not valid JSON"),
    (["attribute", "--prompt", ""], "prompt"),
    (["attribute", "--prompt", "x" * 200_000], "prompt"),
    (["attribute", "--prompt", BINARY], "not valid UTF-8"),
    (["attribute", "--model", "no-such-model", "--prompt", "x"], "unknown model"),
    (["attribute", "--model", "/etc", "--prompt", "x"], "/etc"),
    (["attribute", "--prompt", "x", "--methods", "bogus"], "bogus"),
    (["attribute", "--model", "zoo-digits-cnn", "--image", "digits:0", "--class", "-7", "--methods", "saliency"],
     "target"),
    (["attribute", "--model", "zoo-digits-cnn", "--image", "digits:999999", "--methods", "saliency"], "digits"),
    (["attribute", "--model", "zoo-digits-cnn", "--image", "{tmp}/missing.png"], "missing.png"),
    (["attribute", "--model", "zoo-digits-cnn", "--image", "{tmp}/bomb.png"], "pixels"),
    (["attribute", "--model", "zoo-digits-cnn", "--image", "{tmp}/text.png"], "not an image"),
    (["sae", "train", "--hook", "blocks.9.hook_resid_post", "--tokens", "4096"], "blocks.9.hook_resid_post"),
    (["sae", "train", "--hook", "blocks.0.hook_resid_post", "--k", "-1"], "k"),
    (["sae", "train", "--hook", "blocks.0.hook_resid_post", "--tokens", "0"], "n_tokens"),
    (["sae", "train", "--hook", "blocks.0.hook_resid_post", "--arch", "nope"], "nope"),
    (["sae", "train", "--hook", "blocks.0.hook_resid_post", "--out", "{tmp}"], "not empty"),
    (["influence", "--prompt", "a", "--completion", "b", "--damping", "-1"], "damping must be positive"),
    (["influence", "--prompt", "a", "--completion", "b", "--damping", "NaN"], "damping"),
    (["influence", "--prompt", "a", "--completion", ""], "completion"),
    (["influence", "--prompt", "a", "--completion", "b", "--train", "{tmp}/missing.txt"], "not found"),
    (["influence", "--prompt", "a", "--completion", "b", "--train", "{tmp}/binary.txt"], "not a text file"),
    (["influence", "--prompt", "a", "--completion", "b", "--train", "{tmp}/empty.txt"], "empty"),
    (["influence", "--prompt", "a", "--completion", "b", "--train", "{tmp}/latin1.txt"], "UTF-8"),
    (["influence", "--prompt", "a", "--completion", "b", "--max-sequences", "-3"], "max_sequences"),
    (["influence", "--model", "zoo-digits-cnn", "--image", "{tmp}/text.png"], "not an image"),
    (["export", "nothash", "--out", "{tmp}/out"], "nothash"),
    (["export", "0123456789abcdef", "--out", "{tmp}/out"], "no analysis is stored"),
    (["lib", "--model", "zoo-lm", "--basis", "bogus"], "bogus"),
    (["lib", "--model", "zoo-lm", "--node-layers", "blocks.7.hook_resid_pre,logits"], "blocks.7"),
    (["circuits", "--task", "no_such_task"], "no_such_task"),
    (["circuits", "--task", "{tmp}/task.json"], "task"),
    (["tabular", "--data", "no-such-data"], "no-such-data"),
    (["tabular", "--data", "{tmp}/bad.csv"], "rows"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-inputs")
    for name, content in FILES.items():
        (d / name).write_bytes(content)
    (d / "keep.txt").write_text("a user's file")
    return d


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_a_bad_cli_input_gets_a_clear_message(argv, words, folder, capsys):
    argv = [a.replace("{tmp}", str(folder)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors: status 2 and a usage line
        rc = e.code
    out = capsys.readouterr()
    if words is None:
        assert rc == 0, out.err
        return
    shown = " ".join(a if len(a) < 60 else a[:20] + f"…({len(a):,} chars)" for a in argv).encode(
        "utf-8", "backslashreplace").decode()
    message = out.err.strip().splitlines()[-1] if out.err.strip() else "(nothing)"
    record("cli", shown.replace(str(folder), "{tmp}"), message.replace(str(folder), "{tmp}"))
    assert rc == 2, (rc, out.err[-800:])
    assert "Traceback" not in out.err and out.err.strip(), out.err[-800:]
    assert words.lower() in out.err.lower(), out.err[-800:]
    assert (folder / "keep.txt").read_text() == "a user's file"
