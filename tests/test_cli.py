"""The `workbench` command line: JSON out, cache on the second run, batch export, clear errors."""
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main as cli
from compute.export import find_browser

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(list(args))
    return code, out.getvalue(), err.getvalue()


def test_console_script_lists_models_as_json():
    exe = Path(sys.executable).parent / "workbench"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli.main"]
    p = subprocess.run(cmd + ["models", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr
    ids = [m["id"] for m in json.loads(p.stdout)]
    assert ids[:4] == ["zoo-lm", "zoo-modadd", "zoo-digits-cnn", "rib-modadd"]


def test_every_code_package_imports_from_the_installed_workbench(tmp_path):
    """The console script runs outside the checkout: every package of ours must be installed, not found by
    luck on the working directory (`workbench circuits` once failed with No module named 'circuits')."""
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests",))
    assert {"analyses", "circuits", "interaction", "compute"} <= set(packages)
    code = "import importlib, sys; sys.path = [p for p in sys.path if p not in ('', '.')]; " \
           f"[importlib.import_module(m) for m in {packages!r}]"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]


def test_run_prints_hash_and_summary_then_hits_the_cache(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "prompt", "model": "zoo-lm", "prompt": "while True:\n    pass\n"}))
    code, out, _ = run_cli("run", str(spec), "--json")
    assert code == 0
    first = json.loads(out)
    assert len(first["hash"]) == 16 and first["cached"] is False
    assert first["summary"]["n_tokens"] > 3 and "predictions" in first["figures"]
    code, out, _ = run_cli("run", str(spec), "--json")
    again = json.loads(out)
    assert again["cached"] is True and again["hash"] == first["hash"] and again["summary"] == first["summary"]


def _exported(tmp_path, formats: str) -> tuple[str, Path]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "prompt", "model": "zoo-lm", "prompt": "return None\n"}))
    _, out, _ = run_cli("run", str(spec), "--json")
    h = json.loads(out)["hash"]
    code, out, err = run_cli("export", f"http://localhost:8501/?a={h}&model=zoo-lm", h, "--out",
                             str(tmp_path / "out"), "--format", formats, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert len(report["analyses"]) == 1  # the same analysis given twice is exported once
    return h, Path(report["analyses"][0]["folder"])


def test_export_by_link_and_hash(tmp_path):
    _, folder = _exported(tmp_path, "html")
    names = {p.name for p in folder.iterdir()}
    assert {"predictions.html", "logit_lens.html", "attention_layer0.html", "tokens.csv", "summary.json"} <= names
    assert "Plotly.newPlot" in (folder / "predictions.html").read_text()


def test_static_export_files_open_at_the_figure_size(tmp_path):
    import struct
    import xml.etree.ElementTree as ET

    if not find_browser():
        pytest.skip("NO BROWSER: PNG/SVG export is untested here; install Debian's chromium (make test does)")
    h, folder = _exported(tmp_path, "png,svg")
    from analyses.workbench import Workbench

    wb = Workbench()
    fig = wb.cached(wb.load_shared(h)).figures["predictions"]
    png = (folder / "predictions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    scale = 2  # compute/export.py's default
    assert (width, height) == ((fig.layout.width or 700) * scale, (fig.layout.height or 500) * scale)
    svg = ET.parse(folder / "predictions.svg").getroot()
    assert svg.tag.endswith("svg") and float(svg.get("width")) == width  # kaleido scales SVG alike
    texts = "".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
    assert fig.layout.title.text and fig.layout.title.text[:20] in texts  # the figure, not a blank page


@pytest.mark.parametrize("spec, message", [
    ({"kind": "prompt", "model": "gpt-7", "prompt": "x"}, "unknown model 'gpt-7'"),
    ({"kind": "prompt", "model": "zoo-lm", "prompt": ""}, "prompt is empty"),
    ({"kind": "prompt", "model": "gpt2", "prompt": "x"}, "not in the local Hugging Face cache"),
    ({"kind": "teleport", "model": "zoo-lm"}, "unknown analysis kind"),
])
def test_bad_specs_exit_2_with_a_message(tmp_path, spec, message):
    f = tmp_path / "spec.json"
    f.write_text(json.dumps(spec))
    code, out, err = run_cli("run", str(f))
    assert code == 2 and message in err and "Traceback" not in err


def test_malformed_json_and_unknown_hash(tmp_path):
    f = tmp_path / "spec.json"
    f.write_text("{not json")
    code, _, err = run_cli("run", str(f))
    assert code == 2 and "not valid JSON" in err
    code, _, err = run_cli("export", "ffffffffffffffff", "--out", str(tmp_path / "o"))
    assert code == 2 and "no analysis is stored under 'ffffffffffffffff'" in err
    code, _, err = run_cli("export", "not-a-link", "--out", str(tmp_path / "o"))
    assert code == 2 and "neither a share link" in err


def test_sae_browser_specs_run_headless(tmp_path, small_sae):
    spec = tmp_path / "feature.json"
    spec.write_text(json.dumps({"kind": "sae_feature", "model": "zoo-lm", "sae": small_sae, "feature": 5,
                                "n_tokens": 16384}))
    code, out, err = run_cli("run", str(spec), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["summary"]["feature"] == 5 and res["summary"]["d_sae"] == 256
    spec.write_text(json.dumps({"kind": "sae_feature", "model": "zoo-lm", "sae": small_sae, "feature": 300,
                                "n_tokens": 16384}))
    code, out, err = run_cli("run", str(spec), "--json")
    assert code == 2 and "out of range: this SAE has 256 features" in err


def test_attribute_text_and_image(tmp_path):
    code, out, err = run_cli("attribute", "--prompt", "import os\nimport sys\nprint(os.path", "--target", ".",
                             "--methods", "ig,saliency,rollout", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert [m["method"] for m in res["methods"]] == ["integrated_gradients", "saliency", "attention_rollout"]
    assert {"soft_ns", "soft_nc", "deletion_auc", "forward_passes", "seconds"} <= set(res["methods"][0])
    assert len(res["agreement"]) == 3  # each pair once
    code, out, err = run_cli("attribute", "--model", "zoo-digits-cnn", "--image", "digits:2", "--methods",
                             "gradcam,gradcam++,occlusion", "--json")
    assert code == 0, err
    assert [m["method"] for m in json.loads(out)["methods"]] == ["gradcam", "gradcam_pp", "occlusion"]
    code, _, err = run_cli("attribute", "--prompt", "", "--json")
    assert code == 2 and "prompt is empty" in err
    code, _, err = run_cli("attribute", "--prompt", "x = 1", "--methods", "magic", "--json")
    assert code == 2 and "unknown method" in err


def test_cli_choices_and_method_names_come_from_the_registries():
    from attribution.registry import IMAGE_METHODS, TEXT_METHODS, canonical
    from cli.main import build_parser
    from sae.registry import ARCHITECTURES, OPTION_CHOICES

    parser = build_parser()
    for arch in ARCHITECTURES:
        assert parser.parse_args(["sae", "train", "--hook", "h", "--arch", arch]).arch == arch
    for aux in OPTION_CHOICES["aux_loss"]:
        assert parser.parse_args(["sae", "train", "--hook", "h", "--aux-loss", aux]).aux_loss == aux
    with pytest.raises(SystemExit):
        parser.parse_args(["sae", "train", "--hook", "h", "--arch", "relu"])
    assert canonical(["ig", "ixg", "rollout", "reagent"], TEXT_METHODS) == (
        "integrated_gradients", "input_x_gradient", "attention_rollout", "reagent")
    assert canonical(["gradcam++", "ig"], IMAGE_METHODS) == ("gradcam_pp", "integrated_gradients")


def test_attribute_a_prompts_file_with_and_without_targets(tmp_path):
    f = tmp_path / "prompts.tsv"
    f.write_text("import os\\nimport\tsys\nfor i in range(\n", encoding="utf-8")
    code, out, err = run_cli("attribute", "--prompts-file", str(f), "--methods", "saliency,occlusion", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["summary"]["prompts"] == 2
    assert {m["method"] for m in res["methods"]} == {"saliency", "occlusion"}
    from analyses.attribution_text import AttributionBatchSpec

    expected = AttributionBatchSpec(model="zoo-lm", prompts=("import os\nimport", "for i in range("),
                                    targets=("sys", ""), methods=("saliency", "occlusion"), replacement="zoo-mlm")
    assert res["hash"] == expected.hash  # the file was read as the page reads its text box
    code, _, err = run_cli("attribute", "--prompts-file", str(tmp_path / "missing.tsv"), "--json")
    assert code == 2 and "cannot read prompts" in err


def test_attribute_an_image_file_and_a_class(tmp_path):
    import numpy as np
    from PIL import Image

    from analyses.attribution_image import load_image
    from analyses.workbench import Workbench

    wb = Workbench()
    x, label, _ = load_image(wb, wb.models.get("zoo-digits-cnn"), "digits:0")
    digit = x[0, 0].numpy().astype(np.float64)
    digit = (digit - digit.min()) / (digit.max() - digit.min())
    img = Image.fromarray((digit * 255).astype(np.uint8)).resize((64, 64))
    jpeg = tmp_path / "digit.jpg"
    img.save(jpeg, format="JPEG", quality=95)
    other = int((int(label) + 1) % 10)
    code, out, err = run_cli("attribute", "--model", "zoo-digits-cnn", "--image", str(jpeg), "--class", str(other),
                             "--methods", "gradcam,occlusion", "--json")
    assert code == 0, err
    s = json.loads(out)["summary"]
    assert s["image"].startswith("upload:") and s["target"] == other  # the class asked for, not the prediction
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5, 5), dtype=np.float32))
    code, _, err = run_cli("attribute", "--model", "zoo-digits-cnn", "--image", str(wrong), "--json")
    assert code == 2 and "shape" in err and "Traceback" not in err
    code, _, err = run_cli("attribute", "--model", "zoo-digits-cnn", "--image", str(tmp_path / "none.png"), "--json")
    assert code == 2 and "no image file" in err


def test_an_over_long_prompt_is_refused_with_its_limit():
    code, _, err = run_cli("attribute", "--prompt", "x = 1\n" * 5000, "--methods", "saliency", "--json")
    assert code == 2 and "30,000 characters; the limit is 20,000" in err, err
    code, _, err = run_cli("attribute", "--prompt", "x = 1\n" * 200, "--methods", "saliency", "--json")
    assert code == 2 and "801 tokens, longer than zoo-lm's context of 256 tokens" in err, err
