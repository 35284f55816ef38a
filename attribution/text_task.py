"""One text attribution problem: a prompt, a target continuation, and the model's score of it.

The score every method explains is the log-probability of the target continuation given the prompt
(teacher-forced: log p(t1 | prompt) + log p(t2 | prompt, t1) + ...). The features are the prompt's
tokens after BOS (BOS is never replaced or attributed: every model sees it at position 0).

Works on any TransformerLens-style model (HookedTransformer or TransformerBridge): gradients are
taken at `hook_embed`, whose output the methods replace with their own (interpolated, masked)
embeddings. Every call is counted (forward and backward passes, rows), for the cost column.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Cost:
    forwards: int = 0  # batched forward passes
    backwards: int = 0
    rows: int = 0  # sequences evaluated


@dataclass
class TextTask:
    model: object  # TransformerLens model (bridge or hooked)
    prompt_ids: torch.Tensor  # [n_prompt], BOS first when the model has one
    target_ids: torch.Tensor  # [n_target] >= 1
    first: int = 1  # first attributable position (after BOS)
    cost: Cost = field(default_factory=Cost)
    batch_size: int = 32

    @property
    def n_prompt(self) -> int:
        return len(self.prompt_ids)

    @property
    def n_features(self) -> int:
        return self.n_prompt - self.first

    @property
    def device(self):
        return self.prompt_ids.device

    def full_ids(self, prompts: torch.Tensor) -> torch.Tensor:
        """[b, n_prompt] -> [b, n_prompt + n_target - 1]: the prompt and all target tokens but the last."""
        tail = self.target_ids[:-1].to(prompts.device).expand(len(prompts), -1)
        return torch.cat([prompts, tail], dim=1)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.W_E[ids]

    def _logits(self, ids: torch.Tensor, embeds: torch.Tensor | None) -> torch.Tensor:
        self.cost.forwards += 1
        self.cost.rows += len(ids)
        if embeds is None:
            return self.model(ids)
        return self.model.run_with_hooks(ids, fwd_hooks=[("hook_embed", lambda act, hook=None: embeds)])

    def _target_logprob(self, logits: torch.Tensor) -> torch.Tensor:
        n = len(self.target_ids)
        logp = torch.log_softmax(logits[:, self.n_prompt - 1 : self.n_prompt - 1 + n].float(), dim=-1)
        tgt = self.target_ids.to(logits.device)
        return logp.gather(-1, tgt.view(1, n, 1).expand(len(logits), n, 1)).squeeze(-1).sum(-1)

    def logprob_ids(self, prompts: torch.Tensor) -> torch.Tensor:
        """[b, n_prompt] token ids -> [b] log p(target | prompt); no gradients, batched."""
        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                out.append(self._target_logprob(self._logits(self.full_ids(prompts[i : i + self.batch_size]), None)))
        return torch.cat(out)

    def logprob_embeds(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """[b, n_prompt, d] prompt embeddings -> [b] log p(target | prompt); differentiable."""
        b = len(prompt_embeds)
        ids = self.full_ids(self.prompt_ids.expand(b, -1))
        tail = self.embed(ids[:, self.n_prompt :])
        embeds = torch.cat([prompt_embeds.to(tail.dtype), tail], dim=1)
        return self._target_logprob(self._logits(ids, embeds))

    def next_distribution_embeds(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """[b, n_prompt, d] -> [b, vocab]: the next-token distribution at the first target position."""
        b = len(prompt_embeds)
        with torch.no_grad():
            logits = self._logits(self.prompt_ids.expand(b, -1), prompt_embeds)
        return torch.softmax(logits[:, -1].float(), dim=-1)

    def targets_in_topk(self, prompts: torch.Tensor, k: int) -> torch.Tensor:
        """[b] bool: every target token is among the top-k predictions at its position."""
        out = []
        n = len(self.target_ids)
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                logits = self._logits(self.full_ids(prompts[i : i + self.batch_size]), None)
                top = logits[:, self.n_prompt - 1 : self.n_prompt - 1 + n].topk(k, dim=-1).indices
                hit = (top == self.target_ids.to(top.device).view(1, n, 1)).any(-1).all(-1)
                out.append(hit)
        return torch.cat(out)
