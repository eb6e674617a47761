"""The terms of one head's attention scores for one query, for the dashboard's neuron view
(Vig 2019, "A Multiscale Visualization of Attention in the Transformer Model", BertViz's neuron
view) and for notebooks, for every attention kind of the workbench.

Softmax kinds (softmax, clipped softmax, forgetting): the query vector as the dot product uses
it (after key shift, rotary or xPos rotation and momentum, read from the last of those hooks
the model has), each key vector (the key head that the query head reads, with grouped
queries), their elementwise product, the content score sum(q * k) / sqrt(d_head), and each
additive term as its own row: Shaw's relative scores (`hook_rel_scores`), the ALiBi bias, the
FIRE or T5 bias (`hook_rel_bias`) and the forget gate's log-decay sum D_ij = sum over l in
(j, i] of log f_l (Lin et al. 2025, from `hook_forget_gate`). Their sum is the row of
`hook_attn_scores` (-inf at masked keys); the pattern row is its softmax, stretched and
clipped for clipped softmax (Bondarenko et al. 2023). Collapsed and symmetric W_QK forms
(Bermeitinger et al. 2024) give d_model-wide vectors: x_i W_QK and x_j.

Kinds without a softmax give the factors of their effective mixing matrix (the pattern hook):
linear attention (Katharopoulos et al. 2020) the feature maps phi(q), phi(k), phi = elu + 1,
their kernel and the row normaliser; GLA (Yang et al. 2024) q, k and the per-dimension decay
products prod over l in (j, i] of alpha_l, whose weighted kernel is the pattern; DeltaNet
(Schlag et al. 2021) the unit q and k, M_ij = q_i . k_j (j <= i) and T = (I + diag(beta)
L)^-1 diag(beta), the pattern row being M_i T; pooling (Yu et al. 2022) the fixed row of
AvgPool - I, with no queries or keys.

The output gate (attn_gate), head mixing and the value and output projections act after the
pattern and do not enter the view; windows and causal masks mark keys as masked.

Every number is recomputed in float64 from the model's own hooks and checked against the
model's scores (and pattern) hook: a decomposition that does not reproduce them raises
`InputError` rather than show wrong numbers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import ActivationCache

from probes.mixing_terms import delta_terms, gla_terms, linear_terms, pooling_row
from workbench import names
from workbench.config import Mask, ModelConfig, QKForm
from workbench.errors import InputError
from workbench.functional import alibi_bias, alibi_slopes, attention_mask, sinkhorn
from workbench.model import Transformer
from workbench.options import (
    ALiBi,
    ClippedSoftmax,
    Delta,
    Fire,
    Forgetting,
    GatedLinear,
    Linear,
    Patches,
    Pooling,
    Series,
    Shaw,
    Sinkhorn,
    T5Buckets,
    Tokens,
    XPos,
)


@dataclass(frozen=True)
class ScoreTerms:
    """One head's scores for one query over every key (float64, on the CPU).

        `product[j]` sums (times `scale`) to the first term; `terms` are the additive rows in
        the order the model adds them (NaN at masked keys); `scores` is their sum as the scores
        hook holds it (-inf at masked keys for softmax kinds, 0 for the others; None for
        pooling); `pattern` is the row recomputed from them (it matches the pattern hook's
    row; pooling: the fixed row). `combine` says how scores become the
        pattern. Mixing kinds fill `decay` (GLA), `normaliser` (linear) or `transfer` (DeltaNet's
        T [key, key], pattern = scores @ T)."""

    kind: str
    layer: int
    head: int
    kv_head: int | None  # the key head the query head reads; None for pooling
    query: int
    space: str  # the vectors' width: "d_head", "d_model" (collapsed W_QK) or "" (pooling)
    vectors: str  # what the query and key vectors are
    combine: str
    query_vector: Float[Tensor, " dim"] | None
    key_vectors: Float[Tensor, "key_pos dim"] | None
    product: Float[Tensor, "key_pos dim"] | None
    scale: float
    terms: dict[str, Float[Tensor, " key_pos"]]
    masked: Bool[Tensor, " key_pos"]
    scores: Float[Tensor, " key_pos"] | None
    pattern: Float[Tensor, " key_pos"]
    decay: Float[Tensor, "key_pos dim"] | None = None
    normaliser: float | None = None
    transfer: Float[Tensor, "key_pos key_pos"] | None = None
    hooks: tuple[str, ...] = field(default=())  # the hook points the numbers come from

    @property
    def n_keys(self) -> int:
        return int(self.pattern.shape[0])

    def to_json(self) -> str:
        def values(t: Tensor | None) -> object:
            if t is None:
                return None
            return _finite_or_none(t.tolist())

        out = {
            k: getattr(self, k)
            for k in ("kind", "layer", "head", "kv_head", "query", "space", "vectors", "combine")
        }
        out |= {"scale": self.scale, "normaliser": self.normaliser, "hooks": list(self.hooks)}
        for name in ("query_vector", "key_vectors", "product", "decay", "transfer"):
            out[name] = values(getattr(self, name))
        out |= {"scores": values(self.scores), "pattern": values(self.pattern)}
        out["masked"] = self.masked.tolist()
        out["terms"] = {k: values(v) for k, v in self.terms.items()}
        return json.dumps(out, allow_nan=False)


def _finite_or_none(x: object) -> object:
    """Nested lists with NaN and infinities as None (JSON has neither)."""
    if isinstance(x, list):
        return [_finite_or_none(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def score_terms(
    model: Transformer, inputs: object, layer: int, head: int, query: int
) -> ScoreTerms:
    """The terms of head `head` of layer `layer` at position `query` for one example: token
    ids [pos] (a list or tensor) for token models, an image [channels, H, W] for vision
    models, a series [time, variate] for series models (each also with a batch of 1). Runs
    the model once; the caller serialises access to the model."""
    if not isinstance(model, Transformer):
        raise InputError(
            f"the neuron view reads a workbench model's config and hooks; got "
            f"{type(model).__name__} (load the model with workbench.load or build)"
        )
    cfg = model.config
    batch = example_batch(cfg, inputs, model)
    n = sequence_length(cfg, batch)
    if n == 0:
        raise InputError("the input has no positions: pass at least one token or variate")
    _check_index("layer", layer, cfg.n_layers, "n_layers")
    _check_index("head", head, cfg.n_heads, "n_heads")
    _check_index("query", query, n, "positions in this input")
    with torch.no_grad():
        _, cache = model.run_with_cache(batch, names_filter=score_hooks(cfg, layer))
    return terms_from_cache(cfg, cache, layer, head, query)


def _check_index(name: str, value: object, size: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise InputError(f"{name} must be an int in 0..{size - 1} ({size} {what}), got {value!r}")


def example_batch(cfg: ModelConfig, inputs: object, model: Transformer) -> Tensor:
    """One example as a batch of 1: what `forward` takes. Token ids may come as a list."""
    if isinstance(cfg.input, Tokens) and isinstance(inputs, list | tuple):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in inputs):
            raise InputError("token ids must be a list of ints or an integer tensor [pos]")
        inputs = torch.tensor(inputs, dtype=torch.long)
    if not isinstance(inputs, Tensor):
        raise InputError(
            f"inputs must be a tensor (or a list of token ids), got {type(inputs).__name__}"
        )
    one, shape = {
        Tokens: (1, "[pos]"),
        Patches: (3, "[channels, height, width]"),
        Series: (2, "[time, variate]"),
    }[type(cfg.input)]
    if inputs.ndim == one:
        inputs = inputs[None]
    elif inputs.ndim != one + 1 or inputs.shape[0] != 1:
        raise InputError(
            f"pass one example: {shape} or a batch of 1, got shape {tuple(inputs.shape)}"
        )
    device = next(model.parameters()).device
    return inputs.to(device)


def sequence_length(cfg: ModelConfig, batch: Tensor) -> int:
    """The positions attention sees: tokens, the class token plus patches, or variates."""
    match cfg.input:
        case Tokens():
            return int(batch.shape[1])
        case Patches():
            return cfg.n_patches + 1
        case Series():
            return int(batch.shape[2])
        case _:
            raise TypeError(f"no sequence length for the input {cfg.input!r}")


def vector_hooks(cfg: ModelConfig, layer: int) -> tuple[str, str]:
    """The hooks holding the query and key vectors as the dot product uses them: the last
    of q -> rot_q -> momentum_q and of k -> shifted_k -> rot_k -> momentum_k present."""
    cfg = cfg.layer(layer)
    q, k = "q", "k"
    if cfg.kv_shift:
        k = "shifted_k"
    if cfg.pos.rotates:
        q, k = "rot_q", "rot_k"
    if cfg.momentum is not None:
        q, k = "momentum_q", "momentum_k"
    return names.attn(layer, q), names.attn(layer, k)


def score_hooks(cfg: ModelConfig, layer: int) -> list[str]:
    """Every hook `terms_from_cache` reads at `layer`."""
    cfg = cfg.layer(layer)
    if isinstance(cfg.attention, Pooling):
        return [names.attn_pattern(layer)]
    hooks = [*vector_hooks(cfg, layer), names.attn_scores(layer), names.attn_pattern(layer)]
    extra = {
        "rel_scores": isinstance(cfg.pos, Shaw),
        "rel_bias": isinstance(cfg.pos, Fire | T5Buckets) and cfg.attention.softmax_scores,
        "forget_gate": isinstance(cfg.attention, Forgetting),
        "decay": isinstance(cfg.attention, GatedLinear),
        "beta": isinstance(cfg.attention, Delta),
    }
    return hooks + [names.attn(layer, site) for site, used in extra.items() if used]


def terms_from_cache(
    cfg: ModelConfig, cache: ActivationCache, layer: int, head: int, query: int
) -> ScoreTerms:
    """The terms from a run's cache of (at least) `score_hooks(cfg, layer)`, batch row 0."""
    cfg = cfg.layer(layer)
    pattern_hook = cache[names.attn_pattern(layer)][0, head, query]
    n = pattern_hook.shape[-1]
    if isinstance(cfg.attention, Pooling):
        row = pooling_row(cfg, n, query)
        _check(row, pattern_hook, 1.0, "pattern", layer, head)
        masked = row == 0
        return ScoreTerms(
            kind=cfg.attention.KIND,
            layer=layer,
            head=head,
            kv_head=None,
            query=query,
            space="",
            vectors="none: pooling mixes without queries or keys",
            combine="fixed: AvgPool - I over the neighbourhood",
            query_vector=None,
            key_vectors=None,
            product=None,
            scale=1.0,
            terms={},
            masked=masked,
            scores=None,
            pattern=row,
            hooks=(names.attn_pattern(layer),),
        )
    q_hook, k_hook = vector_hooks(cfg, layer)
    kv_head = head // (cfg.n_heads // cfg.kv_heads)
    q = cache[q_hook][0, query, head].detach().cpu().double()
    k = cache[k_hook][0, :, kv_head].detach().cpu().double()  # [key, dim]
    hidden = attention_mask(n, n, cfg.mask is Mask.CAUSAL, cfg.window, torch.device("cpu"))
    masked = torch.zeros(n, dtype=torch.bool) if hidden is None else hidden[query]
    common = dict(
        kind=cfg.attention.KIND,
        layer=layer,
        head=head,
        kv_head=kv_head,
        query=query,
        space="d_model" if cfg.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC) else "d_head",
        hooks=tuple(score_hooks(cfg, layer)),
    )
    build = {
        Linear: linear_terms,
        GatedLinear: gla_terms,
        Delta: delta_terms,
    }.get(type(cfg.attention), _softmax_terms)
    fields, mass = build(cfg, cache, layer, head, query, q, k, masked)
    if build is not _softmax_terms:  # the mixing kinds' own step after the projections
        fields["vectors"] = f"{_vector_story(cfg)}; {fields['vectors']}"
    out = ScoreTerms(**common, **fields)
    assert out.scores is not None  # only pooling has no scores
    scores_hook = cache[names.attn_scores(layer)][0, head, query]
    _check(out.scores, scores_hook, mass, "scores", layer, head)
    _check(out.pattern, pattern_hook, _pattern_mass(out, mass), "pattern", layer, head)
    return out


def _softmax_terms(
    cfg: ModelConfig,
    cache: ActivationCache,
    layer: int,
    head: int,
    query: int,
    q: Float[Tensor, " dim"],
    k: Float[Tensor, "key_pos dim"],
    masked: Bool[Tensor, " key_pos"],
) -> tuple[dict, Float[Tensor, " key_pos"]]:
    """The fields of a softmax kind, and the size of what its scores sum (rounding)."""
    n = k.shape[0]
    scale = 1 / math.sqrt(cfg.d_head)  # the collapsed forms scale by d_head too
    product = q[None, :] * k
    terms = {"content": product.sum(-1) * scale}
    mass = product.abs().sum(-1) * scale
    if isinstance(cfg.pos, Shaw):
        terms["shaw"] = _row(cache[names.attn(layer, "rel_scores")][0, head, query])
    if isinstance(cfg.pos, ALiBi):
        bias = alibi_bias(alibi_slopes(cfg.n_heads).double(), n, n, cfg.mask is Mask.CAUSAL)
        terms["alibi"] = bias[head, query]
    if isinstance(cfg.pos, Fire | T5Buckets):
        terms[cfg.pos.KIND] = _row(cache[names.attn(layer, "rel_bias")][head, query])
    if isinstance(cfg.attention, Forgetting):
        gate = _row(cache[names.attn(layer, "forget_gate")][0, :, head])  # [pos]
        cum = gate.log().cumsum(0)
        terms["forget"] = cum[query] - cum  # D_ij = sum over l in (j, i] of log f_l
        mass = mass + cum[query].abs() + cum.abs()  # the model subtracts the two sums
    mass = mass + sum(t.abs() for t in list(terms.values())[1:])
    scores = torch.stack(list(terms.values())).sum(0).masked_fill(masked, -math.inf)
    pattern = scores.softmax(-1)
    combine = "softmax"
    if isinstance(cfg.attention, Sinkhorn):  # columns normalise over every query's row
        rows = _row(cache[names.attn_scores(layer)][0, head])
        pattern = sinkhorn(rows.softmax(-1), cfg.attention.iterations)[query]
        combine = (
            f"Sinkhorn: softmax, then columns and rows normalised in turn, "
            f"{cfg.attention.iterations} normalisations in all (columns read every query's scores)"
        )
    if isinstance(cfg.attention, ClippedSoftmax):
        gamma, zeta = cfg.attention.gamma, cfg.attention.zeta
        pattern = ((zeta - gamma) * pattern + gamma).clamp(0.0, 1.0)
        combine = f"clip((zeta - gamma) softmax + gamma, 0, 1), gamma={gamma}, zeta={zeta}"
    fields = dict(
        vectors=_vector_story(cfg),
        combine=combine,
        query_vector=q,
        key_vectors=k,
        product=product,
        scale=scale,
        terms={t: v.masked_fill(masked, math.nan) for t, v in terms.items()},
        masked=masked,
        scores=scores,
        pattern=pattern,
    )
    return fields, mass


def _row(t: Tensor) -> Tensor:
    return t.detach().cpu().double()


def _vector_story(cfg: ModelConfig) -> str:
    if cfg.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC):
        return "query x_i W_QK, keys x_j (the attention input), d_model wide"
    steps = ["projected"]
    if cfg.qk_form is QKForm.SHARED:
        steps = ["projected by W_K (queries are keys)"]
    if cfg.kv_shift:
        steps.append("keys shifted")
    if isinstance(cfg.pos, XPos):
        steps.append("rotated and xPos-scaled")
    elif cfg.pos.rotates:
        steps.append("rotated")
    if cfg.momentum is not None:
        steps.append(f"momentum {cfg.momentum}")
    return ", ".join(steps)


def _pattern_mass(out: ScoreTerms, mass: Tensor) -> Tensor | float:
    """The size of what the pattern row is computed from, for its rounding."""
    if out.transfer is not None:  # pattern = M_i T: the solve's rounding grows with its size
        assert out.scores is not None  # DeltaNet's
        return (out.scores.abs() @ out.transfer.abs()) * out.n_keys
    if out.normaliser is not None:
        return out.pattern.abs() + 1.0
    if out.decay is not None:
        return mass
    visible = mass[~out.masked]
    return 1.0 + float(visible.max()) if visible.numel() else 1.0


def _check(
    mine: Tensor, theirs: Tensor, mass: Tensor | float, what: str, layer: int, head: int
) -> None:
    """Refuse a decomposition that does not reproduce the model's own `what` row: the same
    masked (infinite) entries, and the finite ones within rounding of the model's dtype."""
    ref = theirs.detach().cpu().double()
    tol = 64 * torch.finfo(theirs.dtype).eps * (1 + torch.as_tensor(mass, dtype=torch.float64))
    same_inf = torch.equal(torch.isinf(mine), torch.isinf(ref))
    finite = ~torch.isinf(ref)
    close = bool(((mine - ref).abs()[finite] <= tol.expand_as(ref)[finite]).all())
    if not (same_inf and close):
        gap = float((mine - ref)[finite].abs().max()) if finite.any() else math.inf
        raise InputError(
            f"cannot decompose layer {layer} head {head}: the terms do not reproduce the "
            f"model's {what} hook (largest difference {gap:.3g}); this model computes its "
            "attention in a way the neuron view does not know (or another hook changed it)"
        )
