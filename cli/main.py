"""`workbench`: serve the app, list models, check the zoo, run and export analyses headless.

Every subcommand prints a clear one-line message and exits with status 2 on bad input (unknown
model, malformed spec, unknown hash, ...), never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=1, default=str))
    else:
        for k, v in (obj.items() if isinstance(obj, dict) else enumerate(obj)):
            print(f"{k}: {v}")


def cmd_serve(args) -> int:
    from streamlit.web import cli as stcli

    app = Path(__file__).resolve().parents[1] / "app" / "main.py"
    sys.argv = ["streamlit", "run", str(app), "--server.headless", "true", "--server.port", str(args.port),
                "--server.address", args.address, "--browser.gatherUsageStats", "false"]
    os.chdir(Path(__file__).resolve().parents[1])  # .streamlit/config.toml lives at the repo root
    return stcli.main()


def cmd_models(args) -> int:
    from compute.models import list_models
    from compute.settings import load_settings

    models = [m.to_dict() for m in list_models(load_settings())]
    if args.json:
        _print(models, True)
    else:
        for m in models:
            print(f"{m['id']:<18} {m['kind']:<6} {m['source']:<6} {m['description']}")
        print("also: any TransformerLens model name (e.g. gpt2, pythia-70m) when its weights can be fetched or are "
              "cached, and any local Hugging Face model folder")
    return 0


def cmd_zoo_check(args) -> int:
    from analyses.model_check import ModelCheckSpec
    from analyses.workbench import Workbench, configure_threads
    from compute.models import ZOO

    configure_threads()
    wb = Workbench()
    out = {}
    for model_id in args.models or list(ZOO):
        spec = ModelCheckSpec(model=model_id)
        outcome = wb.run(spec)
        res = outcome.result
        entry = dict(res.summary)
        if "induction_heads" in res.tables:
            heads = list(res.tables["induction_heads"].itertuples())
            entry["induction_scores"] = {r.head_name: round(float(r.induction_score), 4) for r in heads}
            entry["previous_token_scores"] = {r.head_name: round(float(r.previous_token_score), 4) for r in heads}
        entry["analysis"] = outcome.spec_hash
        out[model_id] = entry
    _print(out, args.json)
    return 0


def cmd_run(args) -> int:
    from analyses.registry import spec_from_dict
    from analyses.workbench import Workbench, configure_threads

    spec = spec_from_dict(read_spec_file(args.spec))
    configure_threads()
    outcome = Workbench().run(spec, force=args.force)
    _print({"hash": outcome.spec_hash, "kind": spec.KIND, "cached": outcome.cached,
            "seconds": round(outcome.seconds, 3), "summary": outcome.result.summary,
            "figures": list(outcome.result.figures), "tables": list(outcome.result.tables)}, args.json)
    return 0


MAX_SPEC_BYTES = 10 * 2**20


def read_spec_file(name: str) -> dict:
    """A spec file's JSON object, or BadInput saying why not (missing, a folder, binary, huge, nested deeper
    than JSON parsers recurse, not an object)."""
    from compute.errors import BadInput

    path = Path(name)
    if path.is_dir():
        raise BadInput(f"{name} is a folder, not a spec file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"no spec file at {name}") from None
    except OSError as e:
        raise BadInput(f"cannot read {name}: {e.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise BadInput(f"{name} is {len(raw) / 2**20:.0f} MB; a spec is a small JSON object")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{name} is not a UTF-8 text file") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{name} is not valid JSON: {e}") from None
    except RecursionError:
        raise BadInput(f"{name} is nested too deeply to be a spec") from None
    if not isinstance(data, dict):
        raise BadInput(f"{name} holds a JSON {type(data).__name__}; a spec is an object with a \"kind\"")
    return data


def cmd_export(args) -> int:
    from analyses.exporting import export_analyses
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    report = export_analyses(Workbench(), args.links, Path(args.out), formats)
    _print(report, args.json)
    for p in report["problems"]:
        print(f"warning: {p}", file=sys.stderr)
    return 0


def cmd_sae_train(args) -> int:
    import shutil

    from analyses.sae_runs import SAETrainSpec
    from analyses.workbench import Workbench, configure_threads
    from compute.errors import BadInput

    configure_threads()
    spec = SAETrainSpec(model=args.model, hook=args.hook, arch=args.arch, k=args.k, d_sae=args.d_sae,
                        n_tokens=args.tokens, batch_size=min(args.batch_size, args.tokens), lr=args.lr,
                        aux_loss=args.aux_loss, capacity=args.capacity, zipf_exponent=args.zipf_exponent,
                        seed=args.seed, processes=args.processes)
    spec.validate()
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise BadInput(f"--out {args.out} is {what}: give a new or empty folder (nothing was touched)")
    last = [-1]

    def report(fraction: float, message: str = "") -> None:
        pct = int(fraction * 100)
        if pct >= last[0] + 10 and not args.json:
            last[0] = pct
            print(f"{pct:3d}% {message}", file=sys.stderr)

    outcome = Workbench().run(spec, progress=report)
    s = outcome.result.summary
    if out is not None:
        tmp = out.with_name(f".{out.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(s["sae_path"], tmp)
        if out.exists():
            out.rmdir()  # empty, checked before training
        tmp.replace(out)  # the SAE appears whole or not at all
        s = {**s, "sae_path": str(out.resolve())}
    _print({"hash": outcome.spec_hash, "cached": outcome.cached, **s}, args.json)
    return 0


def cmd_attribute(args) -> int:
    from analyses.attribution_text import (AttributionBatchSpec, AttributionTextSpec, default_replacement,
                                           parse_prompt_lines)
    from analyses.workbench import Workbench, configure_threads
    from compute.errors import BadInput

    from attribution.registry import TEXT_METHODS, canonical

    configure_threads()
    names = [m.strip() for m in (args.methods or "").split(",") if m.strip()]
    if args.image:
        return _attribute_image(args, names)
    methods = canonical(names, TEXT_METHODS) if names else tuple(TEXT_METHODS)
    wb = Workbench()
    replacement = args.replacement
    if replacement is None:  # the model's own default: the zoo masked LM for the zoo LMs
        replacement = default_replacement(wb.models.get(args.model))
    common = dict(model=args.model, methods=methods, replacement=replacement, seed=args.seed,
                  faithfulness=args.faithfulness)
    if args.prompts_file:
        try:
            text = Path(args.prompts_file).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError) as e:
            raise BadInput(f"cannot read prompts from {args.prompts_file}: {type(e).__name__}") from None
        prompts, targets = parse_prompt_lines(text)
        spec = AttributionBatchSpec(prompts=prompts, targets=targets, **common)
    else:
        spec = AttributionTextSpec(prompt=args.prompt or "", target=args.target or "", **common)
    outcome = wb.run(spec)
    res = outcome.result
    table = res.tables["methods" if "methods" in res.tables else "per_method"]
    out = {"hash": outcome.spec_hash, "cached": outcome.cached, "summary": res.summary,
           "methods": table.drop(columns=[c for c in ("notes",) if c in table]).to_dict(orient="records")}
    if "scores" in res.tables:
        sc = res.tables["scores"]
        out["scores"] = {m: dict(zip(df.token, df.score.round(6))) if df.token.is_unique else df.score.round(6).tolist()
                         for m, df in sc.groupby("method", sort=False)}
        ag = res.tables["agreement"]
        out["agreement"] = ag[ag.method_a < ag.method_b].to_dict(orient="records")
    _print(out, args.json)
    return 0


def _attribute_image(args, names: list[str]) -> int:
    from analyses.attribution_image import AttributionImageSpec
    from analyses.workbench import Workbench
    from attribution.registry import IMAGE_METHODS, canonical

    wb = Workbench()
    image = _image_name(wb, args.image)
    methods = canonical(names, IMAGE_METHODS) if names else tuple(IMAGE_METHODS)
    outcome = wb.run(AttributionImageSpec(model=args.model, image=image, target=args.target_class, methods=methods))
    res = outcome.result
    ag = res.tables["agreement"]
    _print({"hash": outcome.spec_hash, "cached": outcome.cached, "summary": res.summary,
            "methods": res.tables["methods"].drop(columns=["notes"]).to_dict(orient="records"),
            "agreement": ag[ag.method_a < ag.method_b].to_dict(orient="records")}, args.json)
    return 0


def cmd_lib(args) -> int:
    from analyses.interaction_bases import InteractionBasesSpec, lib_report
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    wb = Workbench()
    if None in (args.node_layers, args.last_pos_from, args.position_sources, args.edge_sources):
        # the model's own defaults, as the page's
        from analyses.interaction_bases import default_settings
        from interaction.models import chain_for

        lm = wb.models.get(args.model)
        defaults = default_settings(lm, chain_for(lm))
    layers = (tuple(x.strip() for x in args.node_layers.split(",") if x.strip()) if args.node_layers is not None
              else defaults["node_layers"])
    last_pos = args.last_pos_from if args.last_pos_from is not None else defaults["last_pos_from"]
    position_sources = args.position_sources if args.position_sources is not None else defaults["position_sources"]
    edge_sources = args.edge_sources if args.edge_sources is not None else defaults["edge_sources"]
    bases = tuple(x.strip() for x in args.basis.split(",") if x.strip())
    spec = InteractionBasesSpec(model=args.model, node_layers=layers, bases=bases,
                                last_pos_from=last_pos, edges=not args.no_edges,
                                node_ablation=not args.no_node_ablation, edge_ablation=args.edge_ablation,
                                edge_intervals=args.edge_intervals, position_sources=position_sources,
                                hidden_sources=args.hidden_sources, edge_sources=edge_sources,
                                sequences=args.sequences, seq_len=args.seq_len, seed=args.seed)
    outcome = wb.run(spec)
    _print({"hash": outcome.spec_hash, **lib_report(outcome.result)} if not args.json else lib_report(outcome.result),
           args.json)
    return 0


def cmd_circuits(args) -> int:
    from analyses.circuits import CircuitsSpec, circuits_report
    from analyses.workbench import Workbench, configure_threads
    from circuits.tasks import BUILT_IN
    from compute.errors import BadInput

    task, text = args.task, ""
    if task not in BUILT_IN:  # a task file (JSON or CSV)
        path = Path(task).expanduser()
        if not path.is_file():
            raise BadInput(f"'{task}' is neither a built-in task ({', '.join(BUILT_IN)}) nor a task file")
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as e:
            raise BadInput(f"cannot read the task file {path}: {type(e).__name__}") from None
        task = path.stem
    configure_threads()
    wb = Workbench()
    methods = tuple(x.strip() for x in args.method.split(",") if x.strip())
    spec = CircuitsSpec(model=args.model, task=task, task_text=text, methods=methods, n_pairs=args.pairs,
                        seed=args.seed, ground_truth=args.ground_truth)
    outcome = wb.run(spec)
    report = circuits_report(outcome.result)
    for warning in outcome.result.summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    _print(report if args.json else {"hash": outcome.spec_hash, **report}, args.json)
    return 0


def cmd_tabular(args) -> int:
    from analyses.tabular import TabularExplainSpec, TabularSelectionSpec, tabular_report
    from analyses.workbench import Workbench, configure_threads
    from compute.errors import BadInput
    from compute.tabular_data import BUILT_IN, PREFIX, store_csv

    configure_threads()
    wb = Workbench()
    data = args.data
    if data.removeprefix(PREFIX) in BUILT_IN:
        model = PREFIX + data.removeprefix(PREFIX)
    else:
        path = Path(data).expanduser()
        if not path.is_file():
            raise BadInput(f"'{data}' is neither a built-in dataset ({', '.join(BUILT_IN)}) nor a CSV file")
        try:
            model = store_csv(wb.settings.uploads_dir, path.read_bytes())
        except OSError as e:
            raise BadInput(f"cannot read {path}: {type(e).__name__}") from None
    models = tuple(x.strip() for x in args.models.split(",") if x.strip())
    data_fields = dict(model=model, target=args.target, positive_class=args.positive, drop_missing=args.drop_missing,
                       models=models, test_share=args.test_share, shift_feature=args.shift_feature,
                       shift_quantile=args.shift_quantile, shift_value=args.shift_value, seed=args.seed)
    explain = TabularExplainSpec(**data_fields, max_rows=args.rows, min_abs_corr=args.min_abs_corr,
                                 groups=tuple(g for g in args.group or ()))
    explained = wb.run(explain, progress=_stderr_progress if not args.json else None).result
    fit = wb.run(explain.fit_spec()).result
    selection = None
    if args.select:
        selection = wb.run(TabularSelectionSpec(**data_fields, selection_model=args.select)).result
    report = tabular_report(fit, explained, selection)
    _print(report if args.json else {"hash": wb.store.put_spec(explain.to_dict()), **report}, args.json)
    return 0


def cmd_influence(args) -> int:
    from analyses.influence_image import InfluenceImageSpec
    from analyses.influence_lm import InfluenceLMSpec
    from analyses.workbench import Workbench, configure_threads
    from compute.errors import BadInput

    configure_threads()
    wb = Workbench()
    common = dict(model=args.model, strategy=args.strategy, damping=args.damping, top=args.top,
                  divide_by_n=args.divide_by_n, processes=args.processes)
    if args.image:
        spec = InfluenceImageSpec(**common, image=_image_name(wb, args.image), label=args.label)
    else:
        if args.prompt is None or (args.completion is None and not args.sae):
            raise BadInput("give --prompt and --completion, or --prompt with --sae S --feature F [--position P] "
                           "(or --image digits:N --label L)")
        train = "corpus"
        if args.train:
            path = Path(args.train).expanduser()
            if not path.is_file():
                raise BadInput(f"training file not found: {path}")
            train = f"text:{path.resolve()}"
        spec = InfluenceLMSpec(**common, train=train, modules=args.modules, max_sequences=args.max_sequences,
                               prompt=args.prompt, completion=args.completion or "", tfidf_k=args.tfidf_k,
                               rank=args.rank, **({"measure": "feature", "sae": args.sae, "feature": args.feature,
                                                   "position": args.position} if args.sae else {}))
    result = wb.run(spec, progress=None if args.json else _stderr_progress).result
    keep = ["text", "score", "tokens", "token_scores", "row"] if not args.image else ["index", "label", "score"]

    def items(name):
        df = result.tables[name]
        return [{k: (list(r[k]) if k in ("tokens", "token_scores") else r[k]) for k in keep if k in r}
                for r in df.to_dict("records")]

    report = {"helpful": items("helpful"), "harmful": items("harmful"), "timing": result.summary.get("timing", {}),
              **{k: v for k, v in result.summary.items() if k != "timing"},
              "hash": wb.store.put_spec(spec.to_dict())}
    if "modules" in result.tables:
        report["modules"] = result.tables["modules"][["module", "layer", "block", "total"]].to_dict("records")
    _print(report, args.json)
    return 0


def _image_name(wb, image: str) -> str:
    """digits:N and upload:SHA as given; a file is stored on the server first (PNG/JPEG, or .npy)."""
    from analyses.attribution_image import store_upload
    from compute.errors import BadInput

    if image.startswith(("digits:", "upload:")):
        return image
    try:
        data = Path(image).read_bytes()
    except OSError:
        raise BadInput(f"no image file at {image}") from None
    return store_upload(wb, data, image)


def _stderr_progress(fraction: float, message: str = "") -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr)


def _short_names(methods) -> str:
    return ", ".join(m.aliases[0] if m.aliases else m.name for m in methods.values())


class _RegistryChoices:
    """argparse choices read from a registry only when a command uses them (importing SAELens takes seconds,
    which `workbench models` should not pay)."""

    def __init__(self, load):
        self._load = load

    def __contains__(self, value) -> bool:
        return value in self._load()

    def __iter__(self):
        return iter(self._load())


def _sae_choices(option: str | None = None) -> _RegistryChoices:
    def load():
        from sae.registry import ARCHITECTURES, OPTION_CHOICES

        return list(ARCHITECTURES) if option is None else list(OPTION_CHOICES[option])
    return _RegistryChoices(load)


def build_parser() -> argparse.ArgumentParser:
    from attribution.faithfulness import DEFINITIONS as FAITHFULNESS_DEFINITIONS
    from attribution.registry import IMAGE_METHODS, REPLACEMENTS, TEXT_METHODS

    ap = argparse.ArgumentParser(prog="workbench", description="Interpretability workbench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="serve the web app")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="0.0.0.0")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("models", help="the models this workbench can load")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("zoo-check", help="quality figures of the zoo models (induction, held-out loss, accuracy)")
    p.add_argument("models", nargs="*", help="default: every zoo model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_zoo_check)
    p = sub.add_parser("run", help="run one analysis spec (JSON file) and print its hash and summary")
    p.add_argument("spec")
    p.add_argument("--force", action="store_true", help="recompute even if cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("export", help="export every figure and table of analyses given by share link or hash")
    p.add_argument("links", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="html,png,svg")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("sae", help="sparse autoencoders")
    sae_sub = p.add_subparsers(dest="sae_cmd", required=True)
    t = sae_sub.add_parser("train", help="train an SAE on one hook (TopK, Feature Choice or Mutual Choice)")
    t.add_argument("--model", default="zoo-lm")
    t.add_argument("--hook", required=True, help="e.g. blocks.0.hook_resid_post, blocks.1.attn.hook_z")
    t.add_argument("--arch", choices=_sae_choices(), default="topk", metavar="ARCH",
                   help="%(choices)s (default %(default)s)")
    t.add_argument("--k", type=float, default=16)
    t.add_argument("--d-sae", type=int, default=1536)
    t.add_argument("--tokens", type=int, default=1_000_000)
    t.add_argument("--batch-size", type=int, default=4096)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--aux-loss", choices=_sae_choices("aux_loss"), default="aux_k", metavar="AUX",
                   help="Feature/Mutual Choice: %(choices)s (default %(default)s)")
    t.add_argument("--capacity", choices=_sae_choices("capacity"), default="uniform",
                   metavar="CAPACITY", help="Feature Choice: %(choices)s (default %(default)s)")
    t.add_argument("--zipf-exponent", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--processes", type=int, default=1,
                   help="data-parallel over this many processes under torchrun (gloo on CPUs, NCCL on GPUs): each "
                        "takes batch-size / processes tokens of every batch; the SAE equals the one-process run's")
    t.add_argument("--out", help="copy the trained SAE (SAELens format) here")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_sae_train)
    q = sub.add_parser("lib", help="interaction bases (LIB, IB, PCA) of a model's node layers, with edges and ablations")
    q.add_argument("--model", required=True, help="a TransformerLens model or folder, a zoo GPT-NeoX LM, or zoo-digits-mlp")
    q.add_argument("--node-layers", default=None,
                   help="hook names in forward order, the last `logits` (rib's ln1.L, ln2.L, unembed, output also work); "
                        "default: the model's (rib's mod-add layers on a 1-layer task model, every residual stream of an LM)")
    q.add_argument("--basis", default="lib,pca", help="comma-separated: lib, ib, pca")
    q.add_argument("--last-pos-from", default=None,
                   help="from this node layer on only the last position is kept ('' for every position; default: "
                        "blocks.0.hook_resid_mid on a mod-add model, none otherwise)")
    q.add_argument("--no-edges", action="store_true", help="skip the edges between consecutive node layers")
    q.add_argument("--no-node-ablation", action="store_true")
    q.add_argument("--edge-ablation", action="store_true",
                   help="bisect the fewest strongest edges per pair of layers within 0.001 of the unablated measurement")
    q.add_argument("--edge-intervals", type=int, default=0, help="integrated gradients over n intervals (0: alpha = 1)")
    q.add_argument("--position-sources", type=int, default=None,
                   help="stochastic sources over positions for M (0: exact; default: 1 for an LM, else 0)")
    q.add_argument("--hidden-sources", type=int, default=0, help="stochastic sources over directions for M (0: exact)")
    q.add_argument("--edge-sources", type=int, default=None,
                   help="stochastic sources over positions for edges (0: exact; default: 1 for an LM, else 0)")
    q.add_argument("--sequences", type=int, default=16, help="language models: corpus rows per split")
    q.add_argument("--seq-len", type=int, default=64, help="language models: tokens per row")
    q.add_argument("--seed", type=int, default=0, help="the stochastic sources' draws")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_lib)
    p = sub.add_parser("circuits", help="which attention heads matter for a task: patching, attribution patching, "
                                        "discrete SAE codes, scored against patching")
    p.add_argument("--model", default="zoo-lm")
    p.add_argument("--task", default="induction",
                   help="a built-in task (induction, init_assign, close_bracket, ioi, greater_than, docstring) or a "
                        "JSON/CSV file of positive,negative,answer[,wrong] pairs")
    p.add_argument("--method", default="codes,patching,attribution_patching",
                   help="comma-separated: codes, patching, attribution_patching (patching always runs: it is the "
                        "ground truth)")
    p.add_argument("--pairs", type=int, default=32, help="pairs drawn from a built-in task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ground-truth", type=float, default=0.1,
                   help="a head is in the circuit when patching it removes this share of the logit difference")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_circuits)
    p = sub.add_parser("tabular", help="the Shapley-value workflow on a tabular classifier: XGBoost, random forest, "
                                       "SVM beside a decision tree and logistic regression")
    p.add_argument("--data", default="breast-cancer", help="a built-in dataset (breast-cancer) or a CSV file")
    p.add_argument("--target", default="", help="the target column (default: the dataset's; a CSV's last column)")
    p.add_argument("--positive", default="", help="the positive class (default: 1 for 0/1 targets, else the rarer)")
    p.add_argument("--models", default="xgboost,random_forest,svm,decision_tree,logistic_regression")
    p.add_argument("--test-share", type=float, default=0.25)
    p.add_argument("--shift-feature", default="", help="hold out rows shifted on this column (the transfer check)")
    p.add_argument("--shift-quantile", type=float, default=0.8, help="rows above this quantile are the shifted split")
    p.add_argument("--shift-value", default="", help="hold out this value of --shift-feature instead (a group)")
    p.add_argument("--drop-missing", action="store_true", help="drop rows with missing values instead of refusing")
    p.add_argument("--rows", type=int, default=200, help="test rows explained")
    p.add_argument("--min-abs-corr", type=float, default=0.7, help="consolidation: group features correlated this much")
    p.add_argument("--group", action="append", help="a hand-made group a|b|c (repeatable) instead of the clustering")
    p.add_argument("--select", default="", help="also run forward selection for this model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tabular)
    p = sub.add_parser("influence", help="which training examples made the model do this: EK-FAC influence "
                                         "(kronfluence) of training sequences on a completion, or of training "
                                         "digits on an image's label")
    p.add_argument("--model", default="zoo-lm")
    p.add_argument("--prompt")
    p.add_argument("--completion")
    p.add_argument("--train", default="", help="a UTF-8 text file of documents separated by lines holding only "
                                               "<|endoftext|> (default: the zoo LM's training corpus)")
    p.add_argument("--tfidf-k", type=int, default=0, help="score only the K sequences closest by TF-IDF (0: all)")
    p.add_argument("--rank", type=int, default=0, help="low-rank query gradients of rank R (0: full rank)")
    p.add_argument("--modules", default="mlp", choices=("mlp", "mlp+attn"))
    p.add_argument("--strategy", default="ekfac", choices=("ekfac", "kfac", "diagonal", "identity"))
    p.add_argument("--damping", default="auto", help="auto (0.1 x mean eigenvalue per layer) or a positive number")
    p.add_argument("--max-sequences", type=int, default=1000, help="training sequences, taken evenly across the set")
    p.add_argument("--processes", type=int, default=1,
                   help="fit the factors data-parallel over this many processes under torchrun (kronfluence's own "
                        "distributed fit; gloo on CPUs): the factors equal the one-process fit's")
    p.add_argument("--divide-by-n", action="store_true", help="divide scores by the training-set size")
    p.add_argument("--image", help="image models: digits:N, or an image file (PNG/JPEG, or .npy of the input shape)")
    p.add_argument("--label", type=int, default=-1, help="the query image's label (default: its true label)")
    p.add_argument("--sae", help="measure an SAE feature's activation instead of a completion: the SAE (a workbench "
                                 "SAE run hash or a SAELens folder)")
    p.add_argument("--feature", type=int, default=0, help="with --sae: the feature")
    p.add_argument("--position", type=int, default=-1, help="with --sae: the prompt token (0 = BOS; -1 the last)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_influence)
    p = sub.add_parser("attribute", help="compare attribution methods on a prompt (or a file of prompts)")
    p.add_argument("--model", default="zoo-lm")
    p.add_argument("--prompt")
    p.add_argument("--target", default="", help="the continuation to explain (default: the greedy next token)")
    p.add_argument("--prompts-file", help="one prompt per line (\\n for newlines), optionally TAB target")
    p.add_argument("--image", help="image models: digits:N, or an image file (PNG/JPEG, or .npy of the input shape)")
    p.add_argument("--class", dest="target_class", type=int, default=-1,
                   help="image models: the class to explain (default: the prediction)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated (default: all): {_short_names(TEXT_METHODS)}; "
                        f"for images: {_short_names(IMAGE_METHODS)}")
    p.add_argument("--replacement", default=None,
                   help=f"ReAGent's replacement model: {', '.join(REPLACEMENTS)} (default: zoo-mlm for the zoo "
                        f"LMs, frequency for other models)")
    p.add_argument("--faithfulness", default="reagent_code", choices=tuple(FAITHFULNESS_DEFINITIONS),
                   help="how Soft-NS/NC, the curves and agreement are computed: as ReAGent's evaluation code "
                        "(default) or this tool's earlier definition")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_attribute)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from compute.errors import WorkbenchError

    try:
        _check_text_arguments(args)
        return int(args.fn(args) or 0)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _check_text_arguments(args) -> None:
    """Arguments that are not valid UTF-8 (Python keeps their bytes as lone surrogates, which cannot be
    tokenised, stored or printed) are refused up front, by name."""
    from compute.errors import BadInput

    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput(f"--{name.replace('_', '-')} is not valid UTF-8 text") from None


if __name__ == "__main__":
    sys.exit(main())
