"""The model's math for analyses that recompute a piece of a forward pass.

Analyses (`circuits/`, `probes/`, the app) import the core's public modules only (an
import-linter contract: not `workbench.components`). What they recompute comes from here, and
the components compute with the very same functions, so a recomputation equals the model's:

- `softmax`, `log_softmax`: over the last axis, fast on CPU for short rows (metrics, patterns);
- `attention_mask`: which keys a query may not see (causal, sliding window);
- `sinkhorn`: Sinkhorn attention's normalisation of a row-normalised pattern;
- `alibi_slopes`, `alibi_bias`: ALiBi's per-head slopes and score bias;
- `pooling_matrix`: PoolFormer's token-mixing matrix;
- `LayerNorm`, `RMSNorm`: the norm modules a model holds (`model.block(l).ln1`, `ln_final`);
  `norm.unhooked(x)` applies one as a function, and its `w` (and `b`) and `hook_scale`
  linearise it with a run's own scale (direct logit attribution, post-norm replays).
"""

from __future__ import annotations

from workbench.components.attention import attention_mask
from workbench.components.mixers.sinkhorn import sinkhorn
from workbench.components.norm import LayerNorm, RMSNorm
from workbench.components.pooling import pooling_matrix
from workbench.components.positional import alibi_bias, alibi_slopes
from workbench.components.softmax import log_softmax, softmax

__all__ = [
    "LayerNorm",
    "RMSNorm",
    "alibi_bias",
    "alibi_slopes",
    "attention_mask",
    "log_softmax",
    "pooling_matrix",
    "sinkhorn",
    "softmax",
]
