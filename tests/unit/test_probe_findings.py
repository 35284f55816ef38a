"""The probe's findings that were bugs (issue 16's list), each a case: a message instead of a traceback, data
kept, and the input named; nothing silently ignored."""
import json
import struct
import zlib

import pytest

from cli.main import main
from compute.errors import BadInput


def _cli(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.err


def test_sae_train_out_never_deletes_a_folder_or_trains_into_a_file(capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    rc, err = _cli(capsys, "sae", "train", "--hook", "blocks.0.hook_resid_post", "--out", str(folder),
                   "--tokens", "4096")
    assert rc == 2 and "not empty" in err and "nothing was touched" in err
    assert (folder / "thesis.tex").read_text() == "years of work"
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    rc, err = _cli(capsys, "sae", "train", "--hook", "blocks.0.hook_resid_post", "--out", str(afile),
                   "--tokens", "4096")
    assert rc == 2 and "is a file" in err and afile.read_text() == "x"


@pytest.mark.parametrize("content, message", [
    ("folder", "is a folder"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a UTF-8 text file"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('["kind", "prompt"]', "holds a JSON list"),
    ('{"kind": "prompt", "model": "zoo-lm", "top_k": "five"}', "top_k"),
])
def test_bad_spec_files_get_messages(capsys, tmp_path, content, message):
    path = tmp_path / "spec.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    rc, err = _cli(capsys, "run", str(path), "--json")
    assert rc == 2 and message in err, err
    assert "Traceback" not in err


def test_an_argument_that_is_not_utf8_is_named(capsys):
    bad = b"def f(\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    rc, err = _cli(capsys, "attribute", "--prompt", bad, "--json")
    assert rc == 2 and "--prompt is not valid UTF-8" in err


def test_a_negative_class_other_than_minus_one_is_refused(capsys):
    rc, err = _cli(capsys, "attribute", "--model", "zoo-digits-cnn", "--image", "digits:0", "--class", "-7",
                   "--methods", "saliency", "--json")
    assert rc == 2 and "target" in err


def test_a_bad_export_format_runs_nothing_and_makes_no_folder(capsys, tmp_path, wb):
    from analyses.prompt import PromptSpec

    h = wb.store.put_spec(PromptSpec(model="zoo-lm", prompt="x").to_dict())
    out = tmp_path / "export"
    rc, err = _cli(capsys, "export", h, "--out", str(out), "--format", "gif")
    assert rc == 2 and "unknown figure format 'gif'" in err
    assert not out.exists()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height pixels in a few bytes (the probe's 30000 × 30000 in 109 KB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_and_not_stored(wb, capsys, tmp_path):
    from analyses.attribution_image import store_upload

    bomb = _png_header_only(30_000, 30_000)
    before = set(wb.settings.uploads_dir.glob("*")) if wb.settings.uploads_dir.exists() else set()
    with pytest.raises(BadInput, match="more than 16,777,216 pixels"):
        store_upload(wb, bomb, "bomb.png")
    with pytest.raises(BadInput, match="5,000 × 5,000 pixels"):  # under PIL's own guard, over ours
        store_upload(wb, _png_header_only(5_000, 5_000), "big.png")
    with pytest.raises(BadInput, match="not an image"):
        store_upload(wb, b"GIF89a but not really", "x.gif")
    after = set(wb.settings.uploads_dir.glob("*")) if wb.settings.uploads_dir.exists() else set()
    assert after == before  # rejected uploads are not kept
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    rc, err = _cli(capsys, "attribute", "--model", "zoo-digits-cnn", "--image", str(path), "--json")
    assert rc == 2 and "pixels" in err and "Traceback" not in err


def test_the_same_analysis_submitted_twice_runs_one_job(wb):
    from analyses.model_check import ModelCheckSpec

    spec = ModelCheckSpec(model="zoo-modadd")
    first = wb.submit(spec)
    second = wb.submit(spec)
    try:
        assert second.id == first.id
    finally:
        wb.jobs.cancel(first.id)


def test_an_analysis_already_stored_is_a_done_job_without_a_worker(wb):
    from analyses.prompt import PromptSpec

    spec = PromptSpec(model="zoo-lm", prompt="def g():", top_k=3)
    outcome = wb.run(spec)
    rec = wb.submit(spec)
    assert rec.status == "done" and rec.pid is None and rec.result_key == outcome.result_key
