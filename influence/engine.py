"""kronfluence, driven for the workbench: factors fitted once into an artifact folder, pairwise and self
scores computed into a scratch folder and read back as tensors.

kronfluence replaces each tracked nn.Linear / nn.Conv2d by a TrackedModule and turns off requires_grad on
every parameter (`prepare_model`). The registry keeps one copy of each model, so `tracked()` does that in place
under the model's device lock and undoes it on the way out (the originals are kept inside the wrappers).
Jobs run one spec per worker process, so nothing else runs on the copy while it is wrapped.
"""
from __future__ import annotations

import logging
import shutil
import threading
import uuid
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from compute.errors import BadInput

# kronfluence 1.0.1 builds torch.cuda.amp.GradScaler(enabled=False) on every pass, which torch 2.13 deprecates
warnings.filterwarnings("ignore", message=r"`torch.cuda.amp.GradScaler", category=FutureWarning)

STRATEGIES = ("ekfac", "kfac", "diagonal", "identity")
ANALYSIS = "influence"
Progress = Callable[[float, str], None]


@contextmanager
def tracked(model: nn.Module, task, lock: threading.RLock | None = None) -> Iterator[nn.Module]:
    from kronfluence.analyzer import prepare_model
    from kronfluence.module.tracked_module import TrackedModule

    supported = tuple(TrackedModule.SUPPORTED_MODULES)
    with lock or nullcontext():
        flags = {n: p.requires_grad for n, p in model.named_parameters()}
        was_training = model.training
        # kronfluence wraps leaf modules only; the zoo's image nets hang a weightless hook point under each
        # layer (layer.hook_out), so those are lifted off for the wrapping and hung under the wrapper
        lifted = {name: {c: m._modules.pop(c) for c in list(m._modules)}
                  for name, m in model.named_modules() if isinstance(m, supported) and m._modules}
        try:
            prepare_model(model.eval(), task)
            for name, children in lifted.items():
                wrapper = model.get_submodule(name)
                for c, child in children.items():
                    wrapper.add_module(c, child)
            yield model
        finally:
            for name, module in list(model.named_modules()):
                if isinstance(module, TrackedModule):
                    for c in lifted.get(name, {}):
                        module._modules.pop(c, None)
                    parent = model.get_submodule(".".join(name.split(".")[:-1])) if "." in name else model
                    setattr(parent, name.split(".")[-1], module.original_module)
            for name, children in lifted.items():
                original = model.get_submodule(name)
                for c, child in children.items():
                    if c not in original._modules:
                        original.add_module(c, child)
            for n, p in model.named_parameters():
                p.requires_grad_(flags.get(n, True))
            model.train(was_training)


@dataclass
class Engine:
    """One model + task, its factors in `folder` (an artifact folder of the result cache)."""
    model: nn.Module  # already inside tracked()
    task: object
    folder: Path
    train_batch: int = 32
    distributed: bool = False  # one of several torchrun processes (influence.distributed): the model is in DDP

    def _analyzer(self, output_dir: Path):
        from kronfluence.analyzer import Analyzer

        logging.getLogger("kronfluence").setLevel(logging.WARNING)
        cpu = not self.distributed and not _on_cuda(self.model)  # kronfluence refuses cpu=True with DDP
        return Analyzer(analysis_name=ANALYSIS, model=self.model, task=self.task, cpu=cpu,
                        disable_tqdm=True, output_dir=str(output_dir), log_level=logging.WARNING)

    def fit(self, dataset, strategy: str, progress: Progress) -> None:
        """Covariances (A, S), eigendecompositions and the eigenvalue correction Λ, as kronfluence does them."""
        from kronfluence.arguments import FactorArguments

        if strategy not in STRATEGIES:
            raise BadInput(f"unknown strategy '{strategy}'; one of {', '.join(STRATEGIES)}")
        args = FactorArguments(strategy=strategy)
        an = self._analyzer(self.folder)
        common = dict(factors_name=strategy, dataset=dataset, per_device_batch_size=self.train_batch,
                      factor_args=args, overwrite_output_dir=True)
        # every step is called, as kronfluence's fit_all_factors does: a step the strategy does not need only
        # records the factor arguments (the identity needs nothing else, but the scores look for those)
        progress(0.0, "covariances A = E[a aᵀ], S = E[Ds Dsᵀ]" if strategy in ("kfac", "ekfac") else "arguments")
        an.fit_covariance_matrices(**common)
        if strategy in ("kfac", "ekfac"):
            progress(0.45, "eigendecompositions of A and S")
        an.perform_eigendecomposition(factors_name=strategy, factor_args=args, overwrite_output_dir=True)
        if strategy in ("ekfac", "diagonal"):
            progress(0.55, "eigenvalue correction Λ (per-example gradients)" if strategy == "ekfac"
                     else "diagonal of the Fisher")
        an.fit_lambda_matrices(**common)
        progress(1.0, "factors fitted")

    def pairwise(self, query_dataset, train_dataset, strategy: str, damping: float | None = None,
                 rank: int | None = None, per_module: bool = False, per_token: bool = False,
                 query_batch: int = 8) -> dict[str, torch.Tensor]:
        """{"all_modules": [Q, N]} or {module: [Q, N]}; per token: [Q, N, T]."""
        from kronfluence.arguments import ScoreArguments

        args = ScoreArguments(damping_factor=damping, query_gradient_low_rank=rank or None,
                              compute_per_module_scores=per_module, compute_per_token_scores=per_token,
                              use_full_svd=True if rank else False)
        return self._scores("pairwise", strategy, args, query_dataset=query_dataset, train_dataset=train_dataset,
                            per_device_query_batch_size=query_batch)

    def self_scores(self, train_dataset, strategy: str, damping: float | None = None) -> torch.Tensor:
        from kronfluence.arguments import ScoreArguments

        out = self._scores("self", strategy, ScoreArguments(damping_factor=damping), train_dataset=train_dataset)
        return out["all_modules"]

    def _scores(self, which: str, strategy: str, args, **data) -> dict[str, torch.Tensor]:
        scratch = self.folder / "scores" / uuid.uuid4().hex
        scratch.mkdir(parents=True)
        try:
            (scratch / ANALYSIS).mkdir()
            # the factors live in the artifact folder; the scores go to scratch, read back, then removed
            (scratch / ANALYSIS / f"factors_{strategy}").symlink_to(self.folder / ANALYSIS / f"factors_{strategy}",
                                                                    target_is_directory=True)
            an = self._analyzer(scratch)
            if which == "pairwise":
                an.compute_pairwise_scores(scores_name="q", factors_name=strategy, score_args=args,
                                           per_device_train_batch_size=self.train_batch, overwrite_output_dir=True,
                                           **data)
                scores = an.load_pairwise_scores("q")
            else:
                an.compute_self_scores(scores_name="s", factors_name=strategy, score_args=args,
                                       per_device_train_batch_size=self.train_batch, overwrite_output_dir=True,
                                       **data)
                scores = an.load_self_scores("s")
            return {k: v.clone() for k, v in scores.items()}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _on_cuda(model: nn.Module) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.is_cuda
