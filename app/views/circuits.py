"""Circuit heads page: which attention heads matter for a task. Exact per-head activation patching (negative
→ positive run) is the ground truth; beside it mean ablation, attribution patching and the discrete-SAE-code
method of O'Neill & Bui (2024), each scored against it (ROC-AUC, precision, recall, ranks) and timed."""
from __future__ import annotations

import streamlit as st

from analyses.circuits import METHODS, CircuitsSpec
from app import urlstate, widgets
from app.services import workbench
from circuits.tasks import BUILT_IN

CUSTOM = "custom (type or upload)"
SHOWN = ("task", "task_text", "methods", "n_pairs", "seed", "ground_truth")
EXAMPLE = ('{"name": "init_assign_mini", "pairs": [\n'
           ' {"positive": "    def __init__(self, name):\\n        self.name =", '
           '"negative": "    def __init__(self, path):\\n        self.name =", "answer": " name", "wrong": " path"},\n'
           ' {"positive": "    def __init__(self, data):\\n        self.data =", '
           '"negative": "    def __init__(self, key):\\n        self.data =", "answer": " data", "wrong": " key"}]}')

wb = workbench()
st.title("Circuit heads")
st.caption("A task is pairs of a positive prompt (the model predicts the answer) and a corrupted negative one (it "
           "cannot); the metric is the logit difference answer − wrong at the last token. Patching one head's "
           "output from the negative run into the positive run measures what it carries; the other methods are "
           "scored against that.")
lm = widgets.require_lm(wb, "The Circuit heads page")

shared = urlstate.take_shared(wb, CircuitsSpec)
if shared is not None:
    st.session_state.update(ci_task=CUSTOM if shared.task_text.strip() else shared.task,
                            ci_task_text=shared.task_text, ci_methods=list(shared.methods), ci_n_pairs=shared.n_pairs,
                            ci_seed=shared.seed, ci_ground_truth=shared.ground_truth)
for key, value in (("ci_task", "induction"), ("ci_task_text", EXAMPLE), ("ci_methods", list(METHODS)),
                   ("ci_n_pairs", 32), ("ci_seed", 0), ("ci_ground_truth", 0.1)):
    st.session_state.setdefault(key, value)

tasks = list(BUILT_IN) + [CUSTOM]
task = st.selectbox("Task", tasks, key="ci_task", format_func=lambda t: f"{t}: {BUILT_IN[t]}" if t in BUILT_IN else t)
text = ""
if task == CUSTOM:
    upload = st.file_uploader("Task file (JSON or CSV: positive, negative, answer[, wrong])", type=["json", "csv"],
                              key="ci_upload")
    if upload is not None:
        try:
            st.session_state["ci_task_text"] = upload.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            st.error("The task file is not UTF-8 text.")
    text = st.text_area("Pairs", key="ci_task_text", height=180)
c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
methods = c1.multiselect("Methods (patching always runs: it is the ground truth)", list(METHODS), key="ci_methods")
n_pairs = c2.number_input("Pairs (built-in tasks)", 2, 2048, key="ci_n_pairs")
seed = c3.number_input("Seed", 0, None, key="ci_seed")
truth = c4.number_input("Ground truth: patching removes ≥", 0.0, 10.0, step=0.05, key="ci_ground_truth",
                        help="the share of the logit difference a head must carry to count as in the circuit")
try:
    spec = urlstate.with_opened_settings(
        CircuitsSpec(model=lm.id, task="custom" if task == CUSTOM else task, task_text=text,
                     methods=tuple(m for m in METHODS if m in methods) or ("patching",), n_pairs=int(n_pairs),
                     seed=int(seed), ground_truth=float(truth)), shown=SHOWN)
    spec.validate()
except Exception as e:  # noqa: BLE001
    widgets.show_error(e)
    st.stop()

res = widgets.job_result(wb, spec, f"ci-{spec.hash}", "Find the circuit heads (background job)")
if res is None:
    st.stop()
s = res.summary
for warning in s["warnings"]:
    st.warning(warning)
widgets.metric_row([("pairs", f"{s['pairs']}"), ("positives right", f"{s['positive_accuracy']:.0%}"),
                    ("negatives right", f"{s['negative_accuracy']:.0%}"),
                    ("logit diff (pos / neg)", f"{s['logit_diff_positive']:.2f} / {s['logit_diff_negative']:.2f}"),
                    ("circuit (patching)", ", ".join(s["ground_truth_heads"]) or "none")])
st.caption(f"Ground truth: {s['ground_truth_rule']}; {s['selection_rule']}. Seconds: "
           + ", ".join(f"{m} {v:.2f}" for m, v in s["seconds"].items()))
for head, why in s.get("codes_missed", {}).items():
    st.info(f"The codes method misses {head}: {why}.")
widgets.show_result(res, spec.hash, f"ci-{spec.hash}", urlstate.share_link("circuits", a=spec.hash, model=lm.id),
                    first=("methods",), last=tuple(n for n in ("heads", "edges") if n in res.tables))
