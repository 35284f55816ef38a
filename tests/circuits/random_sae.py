"""A SAELens standard SAE with every weight drawn at random: DFA's identities hold for any weights."""
import torch


def random_sae(d_in: int, d_sae: int, seed: int = 0, std: float = 1.0):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            p.normal_(0, std)
    return sae
