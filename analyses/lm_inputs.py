"""Turning a researcher's prompt into tokens for a language model, with the checks that give clear messages."""
from __future__ import annotations

import torch

from compute.errors import BadInput
from compute.models import LoadedModel

MAX_PROMPT_CHARS = 20_000


def check_prompt_text(prompt: str) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInput("the prompt is empty: type some text to run the model on")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise BadInput(f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")


def prompt_tokens(lm: LoadedModel, prompt: str, prepend_bos: bool = True) -> torch.Tensor:
    """[1, n] token ids on the model's device; BOS first when the tokenizer has one and it is asked for."""
    if lm.kind != "lm":
        raise BadInput(f"{lm.id} is an image model; this analysis needs a language model")
    check_prompt_text(prompt)
    tok = lm.tokenizer
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    if prepend_bos and bos is not None:
        ids = [bos] + ids
    n_ctx = lm.n_ctx
    if n_ctx and len(ids) > n_ctx:
        raise BadInput(f"the prompt is {len(ids)} tokens, longer than {lm.id}'s context of {n_ctx} tokens; "
                       f"shorten it")
    if not ids:
        raise BadInput("the prompt produced no tokens")
    return torch.tensor([ids], dtype=torch.long, device=lm.device)


def token_strings(lm: LoadedModel, ids) -> list[str]:
    """Readable token strings (byte-level BPE's Ġ/Ċ markers turned into visible space/newline)."""
    out = []
    for i in ids:
        s = lm.tokenizer.decode([int(i)])
        vis = s.replace("\n", "⏎").replace("\t", "⇥")
        out.append(vis.replace(" ", "␣") if s and not s.strip() else vis)
    return out
