"""Share links: the page and a spec hash (plus readable ids) in the URL, the spec itself in the store."""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from compute.tabular_data import is_tabular


def base_url() -> str:
    """scheme://host[:port][/baseUrlPath] of the running app, or '' when unknown (AppTest)."""
    try:
        url = st.context.url
    except Exception:  # noqa: BLE001 - outside a browser session
        url = None
    if not url:
        return ""
    parts = urlsplit(url)
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/{base_path}" if base_path else "", "", ""))


def share_link(url_path: str, **params) -> str:
    """A link to a page ("" for the default page) with its state.

    Links go through the root URL with `?page=` (app/main.py switches to that page): Streamlit shows a
    spurious "Page not found" dialog when a browser's first request is a page's own path."""
    named = {"page": url_path} if url_path else {}
    query = urlencode({k: v for k, v in {**named, **params}.items() if v not in (None, "")})
    return f"{base_url()}/?{query}"


def spec_link(wb, url_path: str, spec) -> str:
    """A link that opens `spec` on a page, filled in (stored first, so the link carries only its hash)."""
    return share_link(url_path, a=wb.share(spec), model=getattr(spec, "model", None))


def set_params(**params) -> None:
    """Mirror the current analysis into the address bar, so reloading or bookmarking restores it."""
    for k, v in params.items():
        if k == "a" and v:  # this page ran it: its widgets already hold it (see shared_spec)
            st.session_state.setdefault("_ran_here", set()).add(str(v))
        if v in (None, ""):
            st.query_params.pop(k, None)
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def init_from_url(key: str, param: str, default=None, cast=str, lo=None, hi=None):
    """Seed a widget's session-state value from the URL once per session (the URL wins on arrival). A value
    that does not parse, or lies outside [lo, hi], is not used, and the page says so and what it used instead."""
    seeded = st.session_state.setdefault("_seeded_from_url", set())
    if key not in seeded:
        seeded.add(key)
        raw = st.query_params.get(param)
        if raw is not None:
            try:
                value = cast(raw)
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    raise ValueError
                st.session_state[key] = value
                return
            except (TypeError, ValueError):
                bounds = f" (between {lo} and {hi})" if lo is not None and hi is not None else ""
                st.warning(f"The link's `{param}={raw[:40]}` is not a valid value{bounds}; "
                           f"{'using ' + str(default) if default is not None else 'it is ignored'}.")
        if default is not None and key not in st.session_state:
            st.session_state[key] = default


def shared_spec(wb):
    """The spec behind `?a=<hash>`, loaded once per hash; its model becomes the picked model.

    Returns (spec or None, error message or None).
    """
    h = st.query_params.get("a")
    if not h:
        return None, None
    cache = st.session_state.setdefault("_shared_specs", {})
    if h not in cache:
        try:
            spec = wb.load_shared(h)
            cache[h] = (spec, None)
            if not is_tabular(spec.model):  # a dataset is picked on its own page, not as the sidebar's model
                st.session_state["model"] = spec.model
                st.session_state["_seeded_from_url"] = st.session_state.get("_seeded_from_url", set()) | {"model"}
            if h not in st.session_state.get("_ran_here", ()):
                # the page fills its widgets from this spec once; not from one it ran itself, whose widgets
                # may have been edited since (applying it would undo those edits on the next submit)
                st.session_state["_apply_shared"] = h
        except Exception as e:  # noqa: BLE001 - shown on the page
            cache[h] = (None, str(e))
    return cache[h]


def take_shared(wb, *kinds: type):
    """The shared spec (?a=<hash>) when it is one of `kinds` and this page has not applied it yet: a page fills
    its widgets from it once, then the researcher's edits win. None otherwise."""
    spec, _ = shared_spec(wb)
    if isinstance(spec, kinds) and st.session_state.get("_apply_shared") == spec.hash:
        st.session_state["_apply_shared"] = None
        st.session_state.setdefault("_opened_specs", {})[spec.KIND] = spec
        return spec
    return None


def with_opened_settings(spec, shown: tuple[str, ...]):
    """The spec a page built from its widgets, with every field the page has no widget for (`shown` lists
    those it has) taken from the shared spec of this kind opened in this session, when it is about the
    same model and SAE: a link keeps the settings a page cannot show (ReAGent's probes, SHAP's samples,
    the SAE error's fit fraction, …) and restores exactly, and the researcher's edits still win."""
    import dataclasses

    opened = st.session_state.get("_opened_specs", {}).get(spec.KIND)
    if opened is None or type(opened) is not type(spec):
        return spec
    if opened.model != spec.model or getattr(opened, "sae", None) != getattr(spec, "sae", None):
        return spec
    hidden = {f.name: getattr(opened, f.name) for f in dataclasses.fields(spec)
              if f.name not in shown and f.name not in ("model", "sae")}
    return dataclasses.replace(spec, **hidden)
