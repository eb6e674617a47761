"""Write docs/variants.md from the preset registry: each preset, its paper, what it changes,
its extra hook sites and what its tests check.

    .venv/bin/python scripts/variants_doc.py        # rewrite docs/variants.md
A test fails when the file is out of date.
"""

from __future__ import annotations

from pathlib import Path

from workbench.config import (
    HeadMixing,
    KVSharing,
    Mask,
    ModelConfig,
    Norm,
    NormPlacement,
    QKForm,
    Wiring,
)
from workbench.options import (
    Abacus,
    ALiBi,
    ClippedSoftmax,
    Delta,
    Fire,
    Forgetting,
    GatedLinear,
    Kan,
    Learned,
    Linear,
    NoPos,
    Patches,
    Peg,
    Pooling,
    Rotary,
    Series,
    Shaw,
    Sinkhorn,
    Sinusoidal,
    T5Buckets,
    TopK,
    XPos,
)
from workbench.presets import get_preset, list_presets
from workbench.schema import hook_schema

DOC = Path(__file__).parents[1] / "docs" / "variants.md"
CANONICAL = {
    "hook_embed",
    "hook_pos_embed",
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "hook_scale",
    "hook_normalized",
    "hook_q",
    "hook_k",
    "hook_v",
    "hook_attn_scores",
    "hook_pattern",
    "hook_z",
    "hook_result",
    "hook_pre",
    "hook_post",
    "hook_logits",
}
SHARED = "hooks = schema in forward order, golden schema, training lowers loss, round trip, TL patching, CUDA = CPU"


def extra_hooks(cfg: ModelConfig) -> list[str]:
    sites = {
        s.name.rsplit(".", 1)[-1] if "." in s.name else s.name: s.name for s in hook_schema(cfg)
    }
    extra = sorted(site for site in sites if site not in CANONICAL)
    prefix = {
        "hook_pre_linear": "mlp.",
        "hook_in_act": "mlp.",
        "hook_dwa": "",
        "hook_token_stream": "",
        "hook_context_stream": "",
        "hook_out": "peg.",
    }
    return [prefix.get(site, "attn.") + site for site in extra]


def specific_checks(cfg: ModelConfig) -> list[str]:
    checks = []
    match cfg.pos:
        case Sinusoidal():
            checks.append("sinusoidal table = paper formula")
        case XPos():  # before Rotary, its base class
            checks.append("scores = rotary pair products x zeta_j^((n - m) / B)")
        case Rotary():
            checks.append("rotary = complex multiplication = HF LLaMA")
        case Abacus():
            checks.append("digit positions = place within each number; addition learnable (slow)")
            if cfg.pos.max_offset:
                checks.append("random place offset per sequence, in training only")
        case Peg():
            checks.append("PEG = torch depthwise Conv2d over the patch grid; class token unchanged")
        case Fire():
            checks.append("bias = MLP(psi(i - j) / psi(max(L, i))), elementwise reference")
        case Shaw():
            checks.append("z = the paper's equations (relative keys and values), slow loop")
        case ALiBi():
            checks.append("ALiBi slopes (8, 12 heads) = paper = HF BLOOM; scores carry the bias")
        case T5Buckets():
            checks.append("buckets = HF T5; scores = qk + bias table")
        case Learned() | NoPos():
            pass
    if cfg.mlm_head:
        checks.append("MLM head = dense, GELU, LayerNorm, tied unembedding")
    if isinstance(cfg.input, Series):
        checks.append(
            "a token per variate window; permuting variates permutes forecasts; learns forecast (slow)"
        )
    if isinstance(cfg.input, Patches):
        checks.append("patch embedding = strided Conv2d (HF ViT); learns the bars task (slow)")
    if cfg.norm is Norm.RMSNORM:
        checks.append("RMSNorm = definition = HF LLaMA")
    if cfg.mask is Mask.BIDIRECTIONAL:
        checks.append("bidirectional attention sees later tokens")
    if cfg.kv_sharing is KVSharing.GROUPED_QUERY:
        checks.append("GQA = MHA with repeated K/V")
    if cfg.kv_sharing is KVSharing.MULTI_QUERY:
        checks.append("one K/V head")
    if cfg.mlp.gated:
        checks.append(f"{cfg.mlp.KIND} = Shazeer formula")
    if isinstance(cfg.mlp, Kan):
        checks.append("group rational = P(x) / (1 + |Q(x)|) per group; identity init = linear MLP")
    if isinstance(cfg.mlp, TopK):
        checks.append("exactly the k largest ReLU activations kept")
    if cfg.window is not None:
        checks.append("keys outside the window get zero attention")
    if cfg.layers:
        checks.append("each layer built from its own config (kind, window, positions per layer)")
    kind_checks = {
        ClippedSoftmax: "pattern = clip((zeta - gamma) softmax + gamma, 0, 1)",
        Forgetting: "pattern = explicit products of forget gates; open gates = softmax",
        Linear: "parallel form = recurrent (RNN) form",
        GatedLinear: "parallel form = gated recurrence",
        Delta: "parallel form (triangular solve) = delta-rule recurrence",
        Pooling: "mixer = AvgPool (no padding counted) - x; patch grid = avg_pool2d",
        Sinkhorn: "rows sum to 1, columns converge to 1; one iteration = softmax",
    }
    if type(cfg.attention) in kind_checks:
        checks.append(kind_checks[type(cfg.attention)])
    if cfg.kv_shift:
        checks.append("shifted k, v = w0 x_t + w1 x_(t-1); paper claim: one layer learns induction")
    if cfg.momentum is not None:
        checks.append(
            "q, k sheared by gamma (x_t - x_(t-1)); paper claim: one layer learns induction"
        )
    match cfg.qk_form:
        case QKForm.SHARED:
            checks.append("q = k, scores symmetric")
        case QKForm.COLLAPSED:
            checks.append("scores = x W_QK x^T; W_QK = W_Q W_K^T gives the separate model")
        case QKForm.SYMMETRIC:
            checks.append("W_QK symmetric from d(d+1)/2 parameters; scores symmetric")
        case QKForm.SEPARATE:
            pass
    if not cfg.value_output:
        checks.append("no W_V, W_O: each head reads and writes its own d_head slice")
    if cfg.head_mixing is not HeadMixing.DENSE:
        checks.append(f"W_O = {cfg.head_mixing.value} structure; attn_out = z W_O")
    if cfg.depth_weighted:
        checks.append(
            "each block input = weighted sum of all earlier outputs; one-hot init = plain"
        )
    if cfg.weight_ties:
        checks.append("tied layers share parameters, equal an untied copy, round-trip, resume")
    if cfg.attn_gate:
        checks.append("z = gate x ungated z; a closed gate silences the head")
    if cfg.norm_placement is NormPlacement.POST and cfg.has_norm:
        checks.append("post-norm wiring (hook order)")
    if cfg.wiring is Wiring.PARALLEL:
        checks.append("parallel wiring (hook order)")
    if cfg.wiring is Wiring.DUAL_STREAM:
        checks.append(
            "attention writes only the token stream, the MLP only the context stream; dense "
            "sum = pre-norm stream; resid patching = plain model"
        )
    return checks


def render() -> str:
    rows = [
        "# Variants",
        "",
        "Generated by `scripts/variants_doc.py` from the preset registry; do not edit by hand.",
        f"Every preset's tiny twin (`<name>-tiny`) passes the shared suite: {SHARED}.",
        "The last column lists the checks specific to what the preset changes.",
        "",
        "| preset | paper | what it changes | extra hook sites | specific checks |",
        "|---|---|---|---|---|",
    ]
    for preset in list_presets(include_tiny=False):
        cfg = get_preset(preset.name).config
        hooks = ", ".join(f"`{h}`" for h in extra_hooks(cfg)) or "-"
        checks = "; ".join(specific_checks(cfg)) or "-"
        rows.append(
            f"| `{preset.name}` | {preset.paper} | {preset.description} | {hooks} | {checks} |"
        )
    return "\n".join([*rows, "", *NOTES]) + "\n"


NOTES = [
    "## How some papers are read",
    "",
    "- Dual-Stream Transformer (Kerce & Fox 2026): both sublayers read the normalised sum of "
    "the token and context streams; attention adds to the token stream, the MLP to the "
    "context stream; the unembedding reads the sum. Head mixing structures the attention "
    "output projection W_O: dense, Kronecker (W_heads kron I, a head-by-head matrix starting "
    "at the identity) or independent (block-diagonal). With dense mixing the sum equals a "
    "pre-norm stream (tested); the value of the split is attribution by construction. "
    "Channel-aware LayerNorm and the frozen-token-stream ablation are not built.",
    "- Reducing the Transformer Architecture to a Minimum (Bermeitinger et al. 2024): "
    "`qk_form='collapsed'` keeps one d_model x d_model W_QK per head, `'symmetric'` stores its "
    "upper triangle, and `value_output=False` drops W_V and W_O so that head h reads and "
    "writes the h-th d_head slice of the stream. Scores keep the 1/sqrt(d_head) scale.",
    "- PoolFormer (Yu et al. 2022) has no class token; here the class token averages all "
    "patches (the global pooling its classifier reads) and patches do not read it.",
    "- Sinkformers (Sander et al. 2022): `attention={'kind': 'sinkhorn', 'iterations': n}` "
    "normalises rows and columns in turn, rows first, n normalisations in all, counted as "
    "the authors' code counts `max_iter` (3 in their attention layer), in the log domain; "
    "one iteration is softmax attention (tested equal), an odd n ends with rows summing to "
    "1, and the columns' error shrinks with n (tested). Bidirectional only: a causal doubly "
    "stochastic matrix is the identity.",
    "- Transformer Programs (Friedman, Wettig & Chen 2023): two kinds that hold a learned "
    "program frozen (`rasp.learned.freeze`; no preset: their weights are a program, not an "
    "initialisation). `attention={'kind': 'closest_match', 'counting_heads': n}`: a key "
    "matches where q.k > 1/2 (one-hot values; the query's through the head's predicate); all "
    "heads but the last n attend, hard, to the closest matching key (nearest, left before "
    "right at equal distance, the query's own position only when nothing else matches, "
    "position 0 when nothing matches: the authors' fixed relative-position bias at its "
    "argmax); the last n have a pattern of 1 at every matching key, so their output is a sum "
    "(a count when the value is 1). `mlp={'kind': 'lookup', 'sizes': [...], 'values': k}` "
    "with `d_mlp = len(sizes) * k`: table t's entry index is W_in's first column of group t "
    "(a linear function of the stream, seen by `hook_pre`), `W_table` holds every table's "
    "entries, and `hook_post` is the entry's value one-hot over the group's k units, which "
    "W_out writes. A frozen program equals the numpy program and the argmax training model "
    "on every real token (tested on random programs of every configuration).",
    "- Hybrids (MASFormer, the DeltaNet paper's hybrids) are per-layer overrides of one block "
    "spec (`layers=[{'at': [...], 'attention': ..., 'window': ..., 'pos': ...}]`); each layer "
    "is built, hooked and analysed from its own config (`config.layer(l)`). Their tiny twins "
    "keep four layers and the overrides among them.",
    "- Abacus offsets (McLeish et al. 2024): in training, each sequence's digit places shift "
    "by one random offset in 0..`pos.max_offset`, drawn from a generator the model owns "
    "(seeded by `init_weights`, saved with resumable training state); evaluation uses no offset. "
    "The paper's length-generalisation claim is not reproduced at CPU scale: a 2-layer gelu "
    "model trained on 1-5 digit operands (3,000 steps) scores, per answer token, 0.55 on "
    "6-7 digit operands without offsets and 0.66 with offsets up to 10, but 0.42 and 0.37 on "
    "8-10 digits; the paper trains much deeper (looped) models for a GPU-day.",
]


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
