"""Labels for the directions of a modular-addition model: each basis function f̂_k(a, b), read on all p²
inputs at the answer position, by its dominant frequency of the 2-d Fourier transform over (a, b)
(rib's run_generate_labels_mod_add: the mod-add algorithm lives in a few frequencies)."""
from __future__ import annotations

import numpy as np


def _signed(k: int, p: int) -> int:
    return k - p if k > p // 2 else k


def dominant_frequencies(values: np.ndarray, p: int) -> list[dict]:
    """values [p², P, k] (P positions; [p², k] for one), rows a-major over (a, b) -> per direction: the
    frequency pair (k_a, k_b) with the most power summed over the positions (the constant term left out),
    its share of that power, and a label ("a+b: 14", "a: 3", …)."""
    if values.ndim == 2:
        values = values[:, None, :]
    grid = values.reshape(p, p, values.shape[1], values.shape[2])
    power = (np.abs(np.fft.fft2(grid, axes=(0, 1))) ** 2).sum(2)
    dc = power[0, 0].copy()
    power[0, 0] = 0.0
    out = []
    for k in range(grid.shape[-1]):
        pk = power[..., k]
        total = float(pk.sum())
        if total <= 1e-20 * (total + float(dc[k])):  # a constant over (a, b), up to rounding
            total = 0.0
        ia, ib = np.unravel_index(int(np.argmax(pk)), pk.shape)
        ka, kb = _signed(int(ia), p), _signed(int(ib), p)
        if ka < 0 or (ka == 0 and kb < 0):  # (k_a, k_b) and (−k_a, −k_b) carry the same power
            ka, kb = -ka, -kb
        # the pair and its mirror hold the same power: their share together
        share = 2 * float(pk[ia, ib]) / total if total > 0 and (ka, kb) != (0, 0) else 0.0
        if kb == 0:
            label = f"a: {ka}"
        elif ka == 0:
            label = f"b: {abs(kb)}"
        elif ka == kb:
            label = f"a+b: {ka}"
        elif ka == -kb:
            label = f"a−b: {ka}"
        else:
            label = f"({ka}, {kb})"
        out.append({"k_a": ka, "k_b": kb, "power_share": min(share, 1.0) if total > 0 else None,
                    "label": label if total > 0 else "constant"})
    return out
