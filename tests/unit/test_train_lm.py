"""The zoo LM's training pieces: the repeated-sequence rows and the training-only previous-token read-out."""
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "assets" / "scripts"))
from train_lm import PreviousTokenProbe, repeated_random_batch, varied_repeat_batch  # noqa: E402

V, EOT = 16, 0


def test_repeated_rows_copy_random_tokens_and_never_emit_the_document_break():
    x = repeated_random_batch(torch.Generator().manual_seed(0), 8, 2 * 20 + 1, V, EOT)
    assert (x[:, 0] == EOT).all() and (x[:, 1:] != EOT).all()
    assert torch.equal(x[:, 1:21], x[:, 21:41])
    y = varied_repeat_batch(torch.Generator().manual_seed(0), 8, 64, V, EOT, min_len=4, max_len=8)
    assert y.shape == (8, 64) and (y[:, 1:] != EOT).all()


def _probe_loss(stream_holds: str) -> float:
    """The read-out on a residual stream that holds one token's one-hot embedding per position: the
    previous token's, or the current token's."""
    torch.manual_seed(0)
    tokens = torch.randint(1, V, (4, 12))
    embed = torch.eye(V)  # one-hot embeddings, d_model = V
    held = torch.roll(tokens, 1, dims=1) if stream_holds == "previous" else tokens
    probe = PreviousTokenProbe(V)
    with torch.no_grad():
        probe.proj.weight.copy_(torch.eye(V))
        return probe.loss(embed[held], tokens, embed).item()


def test_previous_token_probe_rewards_a_stream_that_holds_the_previous_token():
    # position t must name token t-1 (position 0, whose previous token does not exist, is left out)
    assert _probe_loss("previous") < 0.5
    assert _probe_loss("current") > math.log(V)  # worse than a uniform guess
