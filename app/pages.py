"""The app's pages, in navigation sections, and which page shows a spec (its `PAGE`), so a share link
`?a=<hash>` opens on the right page by itself.

A new page is one row here and its file under views/ (helpers it alone uses sit beside it there)."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

SECTIONS = ("Model", "SAEs", "Attribution", "Circuits", "Interaction bases", "Influence", "Jobs")


@dataclass(frozen=True)
class PageEntry:
    name: str  # the ?page= name, and the url path (the default page is served at "/")
    file: str
    title: str
    icon: str
    section: str
    default: bool = False


PAGE_ENTRIES = (
    PageEntry("models", "views/models.py", "Models", ":material/memory:", "Model", default=True),
    PageEntry("sae_training", "views/sae_training.py", "SAE training", ":material/model_training:", "SAEs"),
    PageEntry("sae_browser", "views/sae_browser.py", "SAE browser", ":material/travel_explore:", "SAEs"),
    PageEntry("attribution", "views/attribution.py", "Attribution", ":material/highlight:", "Attribution"),
    PageEntry("tabular", "views/tabular.py", "Tabular models", ":material/table_chart:", "Attribution"),
    PageEntry("attention_features", "views/attention_features.py", "Attention features", ":material/visibility:",
              "Circuits"),
    PageEntry("circuits", "views/circuits.py", "Circuit heads", ":material/account_tree:", "Circuits"),
    PageEntry("interaction_bases", "views/interaction_bases.py", "Interaction bases", ":material/hub:",
              "Interaction bases"),
    PageEntry("influence", "views/influence.py", "Influence", ":material/history_edu:", "Influence"),
    PageEntry("jobs", "views/jobs.py", "Jobs & exports", ":material/pending_actions:", "Jobs"),
)
JOBS_PAGE = "jobs"  # where a spec without a page of its own is shown


def st_pages() -> dict[str, st.Page]:
    return {e.name: st.Page(e.file, title=e.title, icon=e.icon, default=e.default,
                            **({} if e.default else {"url_path": e.name})) for e in PAGE_ENTRIES}


def navigation(pages: dict[str, st.Page]) -> dict[str, list[st.Page]]:
    """{section: pages} in SECTIONS order; sections without pages yet are left out."""
    by_section = {s: [pages[e.name] for e in PAGE_ENTRIES if e.section == s] for s in SECTIONS}
    return {s: ps for s, ps in by_section.items() if ps}


def page_of(spec) -> str:
    """The page that shows a spec's results."""
    names = {e.name for e in PAGE_ENTRIES}
    return spec.PAGE if spec.PAGE in names else JOBS_PAGE


def url_path(name: str) -> str:
    """The path a page's share link names ("" for the default page)."""
    entry = next(e for e in PAGE_ENTRIES if e.name == name)
    return "" if entry.default else entry.name
