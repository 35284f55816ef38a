"""The image half of the attribution page: an image (a held-out digit or an upload) and a class, the
methods' maps over the image, RISE deletion / insertion, agreement and cost."""
from __future__ import annotations

import streamlit as st

from analyses.attribution_image import AttributionImageBatchSpec, AttributionImageSpec, store_upload
from app import urlstate, widgets
from attribution.registry import IMAGE_METHODS
from compute.errors import BadInput


def method_label(name: str) -> str:
    return IMAGE_METHODS[name].label if name in IMAGE_METHODS else name


def parse_images(text: str) -> tuple[str, ...]:
    """'digits:0-9, digits:20, upload:ab12' -> each image name (a digits range expands)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part.startswith("digits:") and "-" in part[7:]:
            lo, hi = part[7:].split("-", 1)
            if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
                raise BadInput(f"'{part}' is not a range digits:A-B")
            out.extend(f"digits:{i}" for i in range(int(lo), int(hi) + 1))
        elif part:
            out.append(part)
    return tuple(out)


def batch_panel(wb, lm) -> None:
    st.caption("The same comparison over many images, as a background job: RISE AUCs and cost averaged per method.")
    text = st.text_input("Images (comma-separated; digits:A-B for a range)", key="img_batch")
    methods = st.multiselect("Methods", list(IMAGE_METHODS), default=list(IMAGE_METHODS), key="img_batch_methods",
                             format_func=method_label)
    if not text.strip():
        return
    try:
        spec = urlstate.with_opened_settings(
            AttributionImageBatchSpec(model=lm.id, images=parse_images(text), methods=tuple(methods)),
            shown=("images", "methods"))
        spec.validate()
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    res = widgets.job_result(wb, spec, f"imgb-{spec.hash}", f"Compare on {len(spec.images)} images (background job)")
    if res is not None:
        widgets.show_result(res, spec.hash, f"imgb-{spec.hash}",
                            urlstate.share_link("attribution", a=spec.hash, model=lm.id),
                            first=("per_method",), last=("per_image",))


def robust_panel(wb, lm) -> None:
    """Every method on this model and on its robust twin over the same held-out digits (a job)."""
    from analyses.attribution_robust import RobustComparisonSpec
    from compute.models import list_models

    st.caption("The robust-CNN study in miniature: all methods on a vanilla and an adversarially trained CNN, each "
               "explaining the true class of the same held-out digits; deletion and insertion AUCs beside each "
               "model's confidence, which both metrics track.")
    others = [m.id for m in list_models(wb.settings) if m.kind == "image" and m.id != lm.id]
    if not others:
        st.info("No second image model to compare with.")
        return
    taken = urlstate.take_shared(wb, RobustComparisonSpec)
    if taken is not None:
        st.session_state.update(rob_model=taken.robust_model, rob_n=taken.n_images, rob_eps=taken.epsilon)
    st.session_state.setdefault("rob_model", "zoo-digits-cnn-robust" if "zoo-digits-cnn-robust" in others else others[0])
    st.session_state.setdefault("rob_n", 50)
    st.session_state.setdefault("rob_eps", 0.1)
    if st.session_state["rob_model"] not in others:
        others.append(st.session_state["rob_model"])
    c1, c2, c3 = st.columns([2, 1, 1])
    robust = c1.selectbox("Robust model", others, key="rob_model")
    n = c2.number_input("Held-out digits", 2, 450, key="rob_n")
    eps = c3.number_input("PGD ε (robust accuracy)", 0.0, 1.0, step=0.05, key="rob_eps")
    try:
        spec = urlstate.with_opened_settings(
            RobustComparisonSpec(model=lm.id, robust_model=robust, n_images=int(n), epsilon=float(eps)),
            shown=("robust_model", "n_images", "epsilon"))
        spec.validate()
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    res = widgets.job_result(wb, spec, f"rob-{spec.hash}", f"Compare both models on {spec.n_images} digits "
                                                            f"(background job)")
    if res is None:
        return
    s = res.summary
    acc = s["accuracy"]
    widgets.metric_row([("vanilla: clean / PGD", f"{acc['vanilla']['clean']:.1%} / {acc['vanilla']['pgd']:.1%}"),
                        ("robust: clean / PGD", f"{acc['robust']['clean']:.1%} / {acc['robust']['pgd']:.1%}"),
                        ("insertion favours robust", f"{s['insertion_favours_robust']} of {len(s['methods'])}"),
                        ("deletion favours robust", f"{s['deletion_favours_robust']} of {len(s['methods'])}")])
    st.caption(f"Attack: {s['attack']}. Confidence vs AUC (Pearson r over images): insertion "
               + ", ".join(f"{k} {v:.2f}" for k, v in s["insertion_tracks_confidence"].items()) + "; deletion "
               + ", ".join(f"{k} {v:.2f}" for k, v in s["deletion_tracks_confidence"].items()) + ".")
    widgets.show_result(res, spec.hash, f"rob-{spec.hash}", urlstate.share_link("attribution", a=spec.hash, model=lm.id),
                        first=("paper_table", "families", "models"), last=("per_method", "per_image"))


def image_page(wb, lm) -> None:
    one, batch, robust = st.tabs(["One image", "Batch of images", "Vanilla vs robust"])
    with batch:
        batch_panel(wb, lm)
    with robust:
        robust_panel(wb, lm)
    with one:
        single_panel(wb, lm)


def single_panel(wb, lm) -> None:
    taken = urlstate.take_shared(wb, AttributionImageSpec)
    if taken is not None:
        st.session_state.update(img_source=taken.image, img_target=taken.target, img_methods=list(taken.methods),
                                img_ran=True)
    classes = lm.image_config.get("classes") or []
    with st.form("img_form"):
        c1, c2 = st.columns(2)
        source = c1.text_input("Image (digits:N for a held-out digit, or upload one below)", "digits:0",
                               key="img_source")
        upload = c2.file_uploader("Upload an image (PNG/JPEG: converted; .npy: must have the model's shape)",
                                  type=["png", "jpg", "jpeg", "npy"], key="img_upload")
        d1, d2 = st.columns([1, 3])
        target = d1.number_input("Class (-1: the model's prediction)", -1, max(len(classes) - 1, 0), -1,
                                 key="img_target")
        methods = d2.multiselect("Methods", list(IMAGE_METHODS), default=list(IMAGE_METHODS), key="img_methods",
                                 format_func=method_label)
        go = st.form_submit_button("Compare", type="primary")
    if not (go or st.session_state.get("img_ran")):
        return
    st.session_state["img_ran"] = True
    try:
        image = source
        if go and upload is not None:
            image = store_upload(wb, upload.getvalue(), upload.name)
        out = wb.run(urlstate.with_opened_settings(
            AttributionImageSpec(model=lm.id, image=image, target=int(target), methods=tuple(methods)),
            shown=("image", "target", "methods")))
    except Exception as e:  # noqa: BLE001
        widgets.show_error(e)
        return
    res, h = out.result, out.spec_hash
    s = res.summary
    widgets.metric_row([("image", s["description"]), ("class explained", s["target_name"]),
                        ("p(class)", f"{s['p_target']:.3f}"), ("seconds (all methods)", f"{s['total_seconds']:.1f}")])
    widgets.show_result(res, h, f"img-{h}", urlstate.share_link("attribution", a=h, model=lm.id),
                        first=("methods",), last=("agreement",))
