"""Which chain of folded-bias steps (interaction/chain.py) a loaded workbench model has."""
from __future__ import annotations

from compute.errors import BadInput

from .chain import Chain


def chain_for(lm) -> Chain:
    """A TransformerLens HookedTransformer (TransformerLens-format folders), a Hugging Face GPT-NeoX model
    behind a TransformerBridge (the zoo's LMs), or a zoo MLP of Linear and ReLU layers."""
    from .mlp import mlp_chain
    from .transformer import transformer_chain, weights_of_gpt_neox, weights_of_hooked_transformer

    model = lm.model
    if lm.kind == "image":
        return mlp_chain(model)
    inner = getattr(model, "original_model", None)
    if inner is not None:
        if type(inner).__name__ != "GPTNeoXForCausalLM":
            raise BadInput(f"interaction bases read GPT-NeoX models among Hugging Face ones; {lm.id} is a "
                           f"{type(inner).__name__}")
        return transformer_chain(weights_of_gpt_neox(inner))
    if hasattr(model, "blocks") and hasattr(model, "cfg"):
        return transformer_chain(weights_of_hooked_transformer(model))
    raise BadInput(f"interaction bases cannot read {lm.id} ({type(model).__name__})")
