"""The trainable Transformer Program (Friedman, Wettig & Chen 2023, "Learning Transformer
Programs", section 3; the authors' `src/models/programs.py` at the setting of their RASP
scripts: one-hot token embedding, counting numerical embedding, categorical attention with
their fixed relative-position bias).

The residual stream is a list of named variables rather than a vector: categorical variables
are distributions over `d_var` values, numerical ones are numbers. Every module reads whole
variables through read gates and writes one new variable. While training, each discrete choice
(which variable a gate reads, which key value a query value matches, where a head attends, what
an MLP outputs, the token itself) is a Gumbel-softmax sample at temperature `tau`; with
`hard=True` every choice is its argmax and the model is a program (`to_program`).

Layout of layer `l`'s outputs, in the order they join the residual stream (as the authors'):
categorical heads, categorical MLPs, numerical MLPs (all categorical), then numerical heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True, kw_only=True)
class ProgramShape:
    """The architecture of a Transformer Program (the authors' run.py arguments)."""

    d_vocab: int  # input token ids
    d_out: int  # output ids
    n_ctx: int  # longest input (their max_ctx: the relative-position bias depends on it)
    d_var: int  # values of a categorical variable (their --d_var = max_length)
    n_layers: int = 3
    cat_heads: int = 4
    num_heads: int = 4
    cat_mlps: int = 2
    num_mlps: int = 2
    d_mlp: int = 64
    autoregressive: bool = False  # causal attention (Dyck)
    masked_outputs: tuple[int, ...] = (0,)  # output ids never predicted (<pad>)

    def __post_init__(self) -> None:
        counts = {k: getattr(self, k) for k in ("n_layers", "d_mlp", "d_var", "n_ctx", "d_out")}
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("cat_heads", "num_heads", "cat_mlps", "num_mlps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.d_var < max(self.d_vocab, self.n_ctx):
            raise ValueError(
                f"d_var={self.d_var} is too small: tokens ({self.d_vocab} ids) and positions "
                f"({self.n_ctx}) are one-hot categorical variables; pass d_var >= "
                f"{max(self.d_vocab, self.n_ctx)}"
            )

    def cat_vars(self, layer: int) -> int:
        """Categorical variables in the residual stream before `layer` (tokens, positions,
        then each earlier layer's heads and MLPs)."""
        return 2 + layer * (self.cat_heads + self.cat_mlps + self.num_mlps)

    def num_vars(self, layer: int) -> int:
        """Numerical variables before `layer` (`ones`, then each earlier layer's heads)."""
        return 1 + layer * self.num_heads


def position_bias(n_ctx: int) -> Tensor:
    """(query, key) bias the authors add to categorical attention's log-scores: the nearest
    key wins, a key to the left before a key as far to the right, the query's own position
    last (-2, below every other); `FixedRelPosBias` in closed form."""
    d = torch.arange(n_ctx)[None, :] - torch.arange(n_ctx)[:, None]  # key - query
    left = (d + 1) / max(n_ctx - 1, 1)
    right = -(d - 1) / max(n_ctx - 2, 1)
    return torch.where(d == 0, -2.0, torch.where(d < 0, left, right)).float()


class Sampler:
    """Discrete choices: a Gumbel-softmax sample at temperature `tau`, its noise made from
    `uniform`, a flat tensor of uniform draws that the calls consume in order (`noise_size`
    says how many one forward pass takes); without `uniform`, a plain softmax at `tau`; with
    `hard`, the one-hot argmax (first of equals, as torch's argmax). `tau` may be a 0-d
    tensor (a compiled step then serves every temperature)."""

    def __init__(self, tau: float | Tensor, uniform: Tensor | None, hard: bool) -> None:
        self.tau, self.uniform, self.hard = tau, uniform, hard
        self.used = 0  # draws consumed (or, without `uniform`, that would have been)

    def __call__(self, logits: Tensor, dim: int = -1) -> Tensor:
        if self.hard:
            index = logits.argmax(dim, keepdim=True)
            return torch.zeros_like(logits).scatter_(dim, index, 1.0)
        start, self.used = self.used, self.used + logits.numel()
        if self.uniform is None:
            return (logits / self.tau).softmax(dim)
        u = self.uniform[start : self.used].view(logits.shape)
        # Gumbel(0, 1) noise as -log(-log(u)) (3x faster than -log of exponential_)
        noise = -(-u.clamp_min(1e-20).log()).log()
        return ((logits + noise) / self.tau).softmax(dim)


def _gates(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(shape[-1]))


def _read(gates: Tensor, x: Tensor) -> Tensor:
    """Variables chosen by one-hot (or soft) gates (..., vars) from x (vars, b, p[, k]):
    one matrix product, no copy (variables are the leading dimension of the stream)."""
    out = gates.reshape(-1, x.shape[0]) @ x.reshape(x.shape[0], -1)
    return out.reshape(*gates.shape[:-1], *x.shape[1:])


class ProgramLayer(nn.Module):
    """One layer: categorical and numerical attention, then categorical and numerical MLPs."""

    def __init__(self, shape: ProgramShape, layer: int) -> None:
        super().__init__()
        s, k = shape, shape.d_var
        n_cat, n_num = s.cat_vars(layer), s.num_vars(layer)
        self.shape = s
        self.cat_read = _gates(3, s.cat_heads, n_cat)  # query, key, value
        self.cat_pred = _gates(s.cat_heads, k, k)  # query value -> key value
        self.num_read = _gates(2, s.num_heads, n_cat)  # query, key
        self.num_value = _gates(s.num_heads, n_num)
        self.num_pred = _gates(s.num_heads, k, k)
        self.cat_mlp = MLPs(s.cat_mlps, n_cat + s.cat_heads, k, k, s.d_mlp)
        self.num_mlp = MLPs(s.num_mlps, n_num + s.num_heads, 1, k, s.d_mlp)

    def forward(
        self, x_cat: Tensor, x_num: Tensor, mask: Tensor, bias: Tensor, sample: Sampler
    ) -> tuple[Tensor, Tensor]:
        """x_cat (vars, b, p, k), x_num (vars, b, p), mask (b, query, key) -> with this
        layer's variables appended."""
        if self.shape.cat_heads:
            x_cat = torch.cat([x_cat, self.cat_attention(x_cat, mask, bias, sample)])
        if self.shape.num_heads:
            x_num = torch.cat([x_num, self.num_attention(x_cat, x_num, mask, sample)])
        outs = [x_cat]
        if self.shape.cat_mlps:
            outs.append(self.cat_mlp(x_cat, sample))
        if self.shape.num_mlps:
            outs.append(self.num_mlp(x_num.unsqueeze(-1), sample))
        return torch.cat(outs), x_num

    def match(self, gates: Tensor, pred: Tensor, x_cat: Tensor, sample: Sampler) -> Tensor:
        """(head, b, query, key) predicate values: query value i matches key value pred[i]."""
        q, k = _read(sample(gates[0]), x_cat), _read(sample(gates[1]), x_cat)  # (h, b, p, k)
        h, b, p, d = q.shape
        wanted = torch.bmm(q.reshape(h, b * p, d), sample(pred)).reshape(h * b, p, d)
        return torch.bmm(wanted, k.reshape(h * b, p, d).transpose(1, 2)).reshape(h, b, p, p)

    def cat_attention(self, x_cat: Tensor, mask: Tensor, bias: Tensor, sample: Sampler) -> Tensor:
        # categorical heads read only categorical variables from before this layer's heads
        scores = self.match(self.cat_read, self.cat_pred, x_cat, sample)
        matched = scores.masked_fill(~mask, 0).sum(-1)
        default = F.relu(1.0 - matched / (matched + 1e-10))  # nothing matches: position 0
        scores = torch.cat([scores[..., :1] + default.unsqueeze(-1), scores[..., 1:]], -1)
        logits = (scores + 1e-20).log() + bias[: scores.shape[-2], : scores.shape[-1]]
        logits = logits.masked_fill(~mask, -1e30) / math.sqrt(self.shape.d_var)
        pattern = sample(logits, -1)
        values = _read(sample(self.cat_read[2]), x_cat)  # (h, b, p, k)
        return pattern @ values

    def num_attention(self, x_cat: Tensor, x_num: Tensor, mask: Tensor, sample: Sampler) -> Tensor:
        """Sums (not averages) a numerical variable over the matching keys."""
        heads = self.shape.cat_heads  # the query and key read what was there before the layer
        scores = self.match(self.num_read, self.num_pred, x_cat[: len(x_cat) - heads], sample)
        values = _read(sample(self.num_value), x_num)  # (h, b, p)
        return (scores.masked_fill(~mask, 0) @ values.unsqueeze(-1)).squeeze(-1)


class MLPs(nn.Module):
    """`n` MLPs, each reading two variables of width `d_in` and writing a categorical one."""

    def __init__(self, n: int, n_vars: int, d_in: int, k: int, d_mlp: int) -> None:
        super().__init__()
        self.read = _gates(n, 2, n_vars)
        self.W_in = nn.Parameter(torch.randn(n, 2 * d_in, d_mlp) / math.sqrt(d_mlp))
        self.b_in = nn.Parameter(torch.zeros(n, 1, d_mlp))
        self.W_out = nn.Parameter(torch.randn(n, d_mlp, k) / math.sqrt(k))
        self.b_out = nn.Parameter(torch.zeros(n, 1, k))

    def forward(self, x: Tensor, sample: Sampler) -> Tensor:
        """x (vars, b, p, d_in) -> (n, b, p, k)."""
        n, (_, b, p, d) = self.read.shape[0], x.shape
        inputs = _read(sample(self.read), x)  # (n, 2, b, p, d_in)
        inputs = inputs.permute(0, 2, 3, 1, 4).reshape(n, b * p, 2 * d)
        return sample(self.table(inputs).log_softmax(-1)).reshape(n, b, p, -1)

    def table(self, inputs: Tensor) -> Tensor:
        """The MLPs' logits (n, N, k) for inputs (n, N, 2 d_in)."""
        return torch.baddbmm(
            self.b_out, F.relu(torch.baddbmm(self.b_in, inputs, self.W_in)), self.W_out
        )


class ProgramModel(nn.Module):
    """A Transformer Program in training form; `forward(tokens, sampler)` gives logits."""

    bias: Tensor
    out_mask: Tensor

    def __init__(self, shape: ProgramShape) -> None:
        super().__init__()
        self.shape = s = shape
        self.layers = nn.ModuleList(ProgramLayer(s, layer) for layer in range(s.n_layers))
        d_final = s.cat_vars(s.n_layers) * s.d_var + s.num_vars(s.n_layers)
        self.W_U = nn.Parameter(torch.randn(d_final, s.d_out) / math.sqrt(s.d_out))
        self.register_buffer("bias", position_bias(s.n_ctx), persistent=False)
        out_mask = torch.zeros(s.d_out, dtype=torch.bool)
        out_mask[list(s.masked_outputs)] = True
        self.register_buffer("out_mask", out_mask, persistent=False)

    @property
    def blocks(self) -> list[ProgramLayer]:
        return [cast(ProgramLayer, layer) for layer in self.layers]

    def attention_mask(self, tokens: Tensor) -> Tensor:
        """(b, query, key): both positions hold a token (id 0 is padding); causal for Dyck."""
        real = tokens != 0
        mask = real.unsqueeze(-1) & real.unsqueeze(-2)
        return mask.tril() if self.shape.autoregressive else mask

    def residual(self, tokens: Tensor, sample: Sampler) -> tuple[Tensor, Tensor]:
        """The final residual stream: categorical (vars, b, p, k) and numerical (vars, b, p)."""
        b, p = tokens.shape
        k = self.shape.d_var
        # the authors' one-hot embedding is sampled too: logits +10 at the token, -10
        # elsewhere, one sample per token id and forward pass (each position reads its row)
        eye = torch.eye(k, device=tokens.device)
        embedding = sample(eye * 20 - 10)  # (token id, k)
        x_cat = torch.stack([embedding[tokens], eye[:p].expand(b, p, k)])  # (vars, b, p, k)
        x_num = torch.ones(1, b, p, device=tokens.device)
        mask = self.attention_mask(tokens)
        for layer in self.layers:
            x_cat, x_num = layer(x_cat, x_num, mask, self.bias, sample)
        return x_cat, x_num

    def forward(self, tokens: Tensor, sample: Sampler) -> Tensor:
        x_cat, x_num = self.residual(tokens, sample)
        (v, b, p, k), n_num = x_cat.shape, x_num.shape[0]
        # W_U's rows: each categorical variable's k values in turn, then the numerical ones
        w_cat, w_num = self.W_U[: v * k].view(v, k, -1), self.W_U[v * k :]
        logits = torch.bmm(x_cat.view(v, b * p, k), w_cat).sum(0).view(b, p, -1)
        logits = logits + (w_num.T @ x_num.view(n_num, b * p)).T.view(b, p, -1)
        return logits.masked_fill(self.out_mask, -1e30)

    @torch.no_grad()
    def noise_size(self, tokens: Tensor) -> int:
        """How many uniform draws a Gumbel-softmax forward pass on `tokens` takes."""
        sampler = Sampler(1.0, None, hard=False)
        self(tokens, sampler)
        return sampler.used

    @torch.no_grad()
    def predict(self, tokens: Tensor) -> Tensor:
        """The argmax model's outputs (b, p)."""
        return self(tokens, Sampler(1.0, None, hard=True)).argmax(-1)
