"""The linear algebra of one basis, as ApolloResearch/rib computes it (rib/linalg.py and
rib/interaction_algos.py at 7a6199f), in float64. Row vectors: activations f [.., d + 1] carry a constant
1 in their last slot (the folded bias); a basis C [d + 1, kept] maps them to f̂ = f C.

One layer, given its Gram matrix G (centred except the bias slot) and, for LIB, M′ = E[JᵀJ] in the
neuron basis:
  G = U′D′U′ᵀ, eigenvalues |·| in descending order, the constant direction (the one with a bias
  component and a non-zero eigenvalue) moved first; keep D′ > τ;  Y: x·Y = x − μ (bias slot untouched);
  W = Y U,  R = W D^-1/2,  R⁺ = D^1/2 Uᵀ Y⁻¹.     PCA ("svd" with centring): C = W.
  M = R⁺ M′ R⁺ᵀ = V Λ Vᵀ with the first n_masked directions (the constant one) kept out of the rotation;
  the rest sorted by |Λ| descending, those below τ dropped:  C = R V Λ^1/2,  C⁺ = Λ^-1/2 Vᵀ R⁺.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

CONST_DIRECTION_THRESHOLD = 1e-6  # rib's move_const_dir_first


@dataclass
class Basis:
    """One node layer's basis: C [orig, kept], its pseudo-inverse, and what led to it."""
    C: torch.Tensor | None  # None: the layer stays in its neuron basis (rib's unrotated output layer)
    C_pinv: torch.Tensor | None
    orig_dim: int
    W: torch.Tensor | None = None  # the centred PCA rotation Y U (before whitening)
    Lambda: torch.Tensor | None = None  # LIB's eigenvalues of M, before the second truncation (rib's stored order)
    gram_eigenvalues: torch.Tensor | None = None  # D′ (descending, constant direction first when centred)

    @property
    def kept_dim(self) -> int:
        return self.orig_dim if self.C is None else int(self.C.shape[1])


def eigendecompose(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (absolute values, descending) and eigenvectors (columns) of a symmetric matrix."""
    values, vectors = torch.linalg.eigh(x.double())
    values = values.abs()
    order = torch.argsort(values, descending=True)
    return values[order], vectors[:, order]


def masked_eigendecompose(x: torch.Tensor, n_masked: int) -> tuple[torch.Tensor, torch.Tensor]:
    """As eigendecompose, with the first n_masked rows and columns kept apart (not rotated)."""
    values, vectors = eigendecompose(x[n_masked:, n_masked:])
    return (torch.cat([x.diag()[:n_masked], values]),
            torch.block_diag(torch.eye(n_masked, dtype=vectors.dtype), vectors))


def move_constant_direction_first(values: torch.Tensor, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unique direction with a bias component and a non-zero eigenvalue (it encodes the mean), first."""
    is_constant = (vectors[-1, :].abs() > CONST_DIRECTION_THRESHOLD) & (values.abs() > CONST_DIRECTION_THRESHOLD)
    if int(is_constant.sum()) != 1:
        raise ValueError(f"expected one constant direction in the Gram matrix, found {int(is_constant.sum())}")
    i = int(is_constant.nonzero()[0, 0])
    order = torch.tensor([i] + [j for j in range(len(values)) if j != i])
    return values[order], vectors[:, order]


def centering_matrix(mean: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """S with x·S = x − mean everywhere but the bias slot (inverse: adds the mean back)."""
    if abs(abs(float(mean[-1])) - 1) > 1e-6:
        raise ValueError("the last element of the mean must be the bias slot's 1")
    S = torch.eye(len(mean), dtype=mean.dtype)
    S[-1, :-1] = (mean if inverse else -mean)[:-1]
    return S


@dataclass
class Whitening:
    """The PCA step of one layer: W = Y U, R = W D^-1/2 and R⁺ = D^1/2 Uᵀ Y⁻¹ (and W⁺ = Uᵀ Y⁻¹)."""
    W: torch.Tensor
    W_pinv: torch.Tensor
    R: torch.Tensor
    R_pinv: torch.Tensor
    gram_eigenvalues: torch.Tensor


def whitening(gram: torch.Tensor, mean: torch.Tensor | None, threshold: float,
              eig: tuple[torch.Tensor, torch.Tensor] | None = None, n_fixed: int = 0) -> Whitening:
    """G's eigenbasis (the constant direction first when centred, then the first `n_fixed` eigenpairs as
    given: a LayerNorm variance), truncated at `threshold`, centred and whitened. `mean` None: no centring.
    `eig`: G's eigenpairs when computed more accurately elsewhere."""
    values, vectors = eig if eig is not None else masked_eigendecompose(gram, n_fixed)
    order = torch.cat([torch.arange(n_fixed), torch.argsort(values[n_fixed:].abs(), descending=True) + n_fixed])
    values, vectors = values.abs()[order], vectors[:, order]
    if mean is not None:
        values, vectors = move_constant_direction_first(values, vectors)
    keep = values > threshold
    D, U = values[keep], vectors[:, keep]
    if mean is not None:
        Y, Y_inv = centering_matrix(mean.double()), centering_matrix(mean.double(), inverse=True)
    else:
        Y = Y_inv = torch.eye(len(gram), dtype=torch.float64)
    W, W_pinv = Y @ U, U.T @ Y_inv
    return Whitening(W, W_pinv, W @ torch.diag(D.sqrt().reciprocal()), torch.diag(D.sqrt()) @ W_pinv, values)


def sorted_lambda_matrices(Lambda: torch.Tensor, threshold: float, ignore_first_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Λ^1/2 [orig_trunc, kept] and its pseudo-inverse: the first `ignore_first_n` in place, the rest by
    descending Λ, the n smallest (below `threshold`) dropped from the end (rib's build_sorted_lambda_matrices)."""
    rest = torch.argsort(Lambda[ignore_first_n:], descending=True) + ignore_first_n
    order = torch.cat([torch.arange(ignore_first_n), rest])
    n_small = int((Lambda < threshold).sum())
    kept = order[:-n_small] if n_small > 0 else order
    root = Lambda.sqrt()
    return torch.diag(root)[:, kept], torch.diag(root.reciprocal())[kept, :]
