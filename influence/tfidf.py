"""TF-IDF pre-filtering (Grosse et al. §3.2): score only the k training sequences lexically closest to the
query. Cheap, and biased toward lexical overlap by construction: the recall of the unfiltered top sequences
is shown beside it so that bias is visible."""
from __future__ import annotations

import numpy as np

TOKEN_PATTERN = r"(?u)[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]{1,3}"  # identifiers, numbers, operators (code)


def closest(texts: list[str], query: str, k: int) -> np.ndarray:
    """Indices of the k texts most similar to the query (cosine of TF-IDF vectors), best first."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(token_pattern=TOKEN_PATTERN, lowercase=False, sublinear_tf=True)
    m = vec.fit_transform(texts + [query])
    sims = (m[:-1] @ m[-1].T).toarray().ravel()
    k = min(k, len(texts))
    top = np.argpartition(-sims, k - 1)[:k]
    return top[np.argsort(-sims[top], kind="stable")]


def recall(candidates: np.ndarray, reference_top: np.ndarray) -> float:
    return float(np.isin(reference_top, candidates).mean()) if len(reference_top) else float("nan")
