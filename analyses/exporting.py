"""Batch export: share links or spec hashes -> every figure and table of each analysis, on disk."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from compute.errors import BadInput
from compute.export import checked_formats, write_bundle

HASH_RE = re.compile(r"^[0-9a-f]{16}$")


def hash_of(link_or_hash: str) -> str:
    s = link_or_hash.strip()
    if HASH_RE.match(s):
        return s
    q = parse_qs(urlsplit(s).query)
    if "a" in q and HASH_RE.match(q["a"][0]):
        return q["a"][0]
    raise BadInput(f"'{s}' is neither a share link with ?a=<hash> nor a 16-character analysis hash")


def export_analyses(wb, links: list[str], out_dir: Path, formats: list[str]) -> dict:
    if not links:
        raise BadInput("nothing to export: give at least one share link or hash")
    formats = checked_formats(formats)  # before any analysis runs or any folder is made
    hashes = [hash_of(x) for x in links]
    out_dir = Path(out_dir)
    report = {"analyses": [], "files": 0, "problems": []}
    for h in dict.fromkeys(hashes):
        spec = wb.load_shared(h)
        outcome = wb.run(spec)
        folder = out_dir / f"{spec.KIND}-{h}"
        written, problems = write_bundle(folder, "", outcome.result.figures, outcome.result.tables,
                                         {"spec": spec.to_dict(), "hash": h, **outcome.result.summary}, formats)
        report["analyses"].append({"hash": h, "kind": spec.KIND, "folder": str(folder), "cached": outcome.cached,
                                   "files": [p.name for p in written]})
        report["files"] += len(written)
        report["problems"] += problems
    return report
