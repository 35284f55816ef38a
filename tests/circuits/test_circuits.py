"""Circuit heads on the zoo LM: patching puts the induction circuit (L0H1 previous-token, L1H1 induction) first
and finds nothing in the heads the model does not use; the codes method puts L1H1 in its top two and says why
it ranks L0H1 lower; attribution patching tracks patching; the Python tasks are ones the model can do; bad
task files get clear messages; the CLI prints the issue's JSON."""
import json

import pytest


@pytest.fixture(scope="module")
def induction(wb):
    from analyses.circuits import CircuitsSpec

    return wb.run(CircuitsSpec(model="zoo-lm", task="induction")).result


def test_patching_finds_the_induction_circuit(induction):
    heads = induction.tables["heads"].set_index("head")
    top_two = heads.patching.sort_values(ascending=False).index[:2]
    assert set(top_two) == {"L0H1", "L1H1"}
    assert induction.summary["ground_truth_heads"] == ["L0H1", "L1H1"]
    assert heads.loc[["L0H1", "L1H1"], "patching"].min() > 0.8
    # the heads the circuit does not use: patching them changes (almost) nothing
    assert heads.drop(["L0H1", "L1H1"]).patching.abs().max() < 0.05
    assert induction.summary["positive_accuracy"] > 0.9 and induction.summary["negative_accuracy"] < 0.1


def test_codes_and_attribution_patching_against_patching(induction):
    heads = induction.tables["heads"].set_index("head")
    assert heads.loc["L1H1", "codes_rank"] <= 2
    methods = induction.tables["methods"].set_index("method")
    assert 0.5 <= methods.loc["codes", "roc_auc"] <= 1.0
    assert methods.loc["attribution_patching", "pearson_with_patching"] > 0.5
    assert heads.loc["L1H1", "attribution_patching_rank"] <= 2
    assert methods.loc["attribution_patching", "forward_passes"] < methods.loc["patching", "forward_passes"]
    # a circuit head the codes method ranks low is explained from its codes and writes
    for head, why in induction.summary.get("codes_missed", {}).items():
        assert head in ("L0H1", "L1H1") and "never seen on negatives" in why
    assert set(induction.tables["edges"].columns) >= {"from", "to", "score", "in_circuit"}


@pytest.mark.parametrize("task", ["init_assign", "close_bracket"])
def test_the_python_tasks_are_ones_the_model_can_do(wb, task):
    from analyses.circuits import CircuitsSpec

    s = wb.run(CircuitsSpec(model="zoo-lm", task=task, methods=("patching",))).result.summary
    assert s["positive_accuracy"] >= 0.5 and s["positive_accuracy"] > s["negative_accuracy"] + 0.2, s
    assert s["logit_diff_positive"] > s["logit_diff_negative"] + 2
    assert s["ground_truth_heads"]


def test_user_tasks_and_bad_task_files(wb):
    from analyses.circuits import CircuitsSpec
    from compute.errors import BadInput

    csv = ("positive,negative,answer,wrong\n"
           '"    def __init__(self, name):\n        self.name =","    def __init__(self, path):\n        self.name ="'
           ', name, path\n'
           '"    def __init__(self, data):\n        self.data =","    def __init__(self, key):\n        self.data ="'
           ', data, key\n')
    res = wb.run(CircuitsSpec(model="zoo-lm", task_text=csv, methods=("patching",))).result
    assert res.summary["pairs"] == 2 and res.summary["task_description"].startswith("user task")
    with pytest.raises(BadInput, match="does not parse as JSON"):
        CircuitsSpec(model="zoo-lm", task_text='{"pairs": [').validate()
    with pytest.raises(BadInput, match="needs non-empty text fields"):
        CircuitsSpec(model="zoo-lm", task_text='{"pairs": [{"positive": "a"}]}').validate()
    unequal = json.dumps({"pairs": [{"positive": "x = f(a", "negative": "x = f(a, b, c", "answer": ")"}]})
    with pytest.raises(BadInput, match="needs equal lengths"):
        wb.run(CircuitsSpec(model="zoo-lm", task_text=unequal, methods=("patching",)))
    wrong = json.dumps({"pairs": [{"positive": "x = 1\ny =", "negative": "x = 2\ny =", "answer": " parent"}] * 2})
    res = wb.run(CircuitsSpec(model="zoo-lm", task_text=wrong, methods=("patching",))).result
    assert any("positive prompts" in w for w in res.summary["warnings"])
    with pytest.raises(BadInput, match="unknown method"):
        CircuitsSpec(model="zoo-lm", methods=("acdc",)).validate()


def test_cli_prints_scores_roc_auc_and_seconds_per_method(induction, capsys):
    from cli.main import main

    assert main(["circuits", "--model", "zoo-lm", "--task", "induction", "--method", "codes,patching", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"codes", "patching"}
    for m in out.values():
        assert set(m) >= {"heads", "roc_auc", "seconds"} and len(m["heads"]) == 12
    assert max(out["patching"]["heads"], key=out["patching"]["heads"].get) in ("L0H1", "L1H1")
    assert main(["circuits", "--task", "/nonexistent/task.json"]) == 2
