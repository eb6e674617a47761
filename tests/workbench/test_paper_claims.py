"""Slow: papers' claims reproduced on a case where the answer is known.

KV shifting attention (Xu et al. 2024) and momentum attention (Maitra 2026) both claim that a
single attention layer can learn induction, which a standard transformer needs two layers for
(Olsson et al. 2022). On the induction task (random period, so no positional shortcut), a
one-layer attention-only model learns it only with either change.
"""

from __future__ import annotations

import pytest

from workbench.training import TrainSettings, train

pytestmark = pytest.mark.slow


def accuracy(steps: int, **overrides: object) -> float:
    settings = TrainSettings(steps=steps, lr=3e-3, eval_every=steps, eval_size=512)
    result = train("attn-only-1l", "induction", settings, overrides=overrides, progress=False)
    return result.metrics["accuracy"]


def test_one_standard_layer_cannot_do_induction() -> None:
    assert accuracy(800) < 0.5


def test_one_kv_shifting_layer_learns_induction() -> None:
    assert accuracy(800, kv_shift=True) > 0.95


def test_one_momentum_layer_learns_induction() -> None:
    assert accuracy(1200, momentum=0.5) > 0.75


def test_vision_transformer_learns_bar_orientation() -> None:
    settings = TrainSettings(steps=600, lr=3e-3, eval_every=600, eval_size=512)
    result = train("vit-tiny-patch4", "bars", settings, progress=False)
    assert result.metrics["accuracy"] > 0.85  # chance is 0.25


def test_masked_lm_needs_bidirectional_attention() -> None:
    # Devlin et al. 2019: a masked token is predicted from both sides. On palindromes a masked
    # symbol in the first half is only known from its mirror in the second half.
    encoder = dict(mlm_head=True, tied_embeddings=True)
    settings = TrainSettings(steps=400, lr=1e-3, eval_every=400, eval_size=512)
    both = train(
        "gelu-2l", "mlm", settings, overrides={**encoder, "mask": "bidirectional"}, progress=False
    )
    causal = train(
        "gelu-2l", "mlm", settings, overrides={**encoder, "mask": "causal"}, progress=False
    )
    assert both.metrics["accuracy"] > 0.95
    assert 0.3 < causal.metrics["accuracy"] < 0.65  # the second-half masks only


def test_itransformer_forecasts_the_synthetic_series() -> None:
    settings = TrainSettings(steps=300, lr=3e-3, eval_every=300, eval_size=256)
    result = train("itransformer-tiny", "forecast", settings, progress=False)
    assert result.metrics["accuracy"] > 0.9  # R^2 of the forecast


def test_abacus_positions_make_addition_learnable() -> None:
    # McLeish et al. 2024: digit-place embeddings fix the digit alignment that absolute
    # positions leave to be learned; at equal steps the abacus model adds, the other does not
    settings = TrainSettings(steps=800, lr=1e-3, eval_every=800, eval_size=512)
    abacus = train("gelu-2l", "addition", settings, overrides={"pos": "abacus"}, progress=False)
    learned = train("gelu-2l", "addition", settings, progress=False)
    assert abacus.metrics["accuracy"] > 0.9
    assert learned.metrics["accuracy"] < 0.7


@pytest.mark.parametrize("preset", ["minimal-vit-patch4", "poolformer-patch4"])
def test_reduced_vision_transformers_still_learn_bar_orientation(preset: str) -> None:
    # Bermeitinger et al. 2024: without MLPs, with a symmetric W_QK and without W_V and W_O,
    # a vision transformer still classifies; Yu et al. 2022: average pooling as the token mixer
    # is enough (MetaFormer). Same budget as the full ViT above.
    settings = TrainSettings(steps=600, lr=3e-3, eval_every=600, eval_size=512)
    result = train(preset, "bars", settings, progress=False)
    assert result.metrics["accuracy"] > 0.85  # chance is 0.25


@pytest.mark.parametrize("mixing", ["kronecker", "independent"])
def test_dual_stream_models_learn_induction(mixing: str) -> None:
    # Kerce & Fox 2026: splitting the stream keeps the model functional, with heads that
    # exchange only scalars (Kronecker) or nothing (independent); induction needs two layers
    # to compose, through the token stream here (plain 2-layer model: 0.999 at this budget)
    settings = TrainSettings(steps=600, lr=3e-3, eval_every=600, eval_size=512)
    overrides = {"wiring": "dual_stream", "head_mixing": mixing}
    dual = train("gelu-2l", "induction", settings, overrides=overrides, progress=False)
    assert dual.metrics["accuracy"] > 0.85
