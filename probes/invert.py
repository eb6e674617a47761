"""Exact input inversion and collision tests ("Language Models are Injective and Hence
Invertible", Nikolaou et al. 2025, SipIt).

In a causal model the hidden state at position t depends on tokens 0..t only, so the tokens
can be read back one position at a time: with the prefix 0..t-1 known, token t is the one
whose hidden state (at the given layer and site) lies within `tolerance` (L2) of the target.
Candidates are proposed by the paper's gradient-guided policy: a continuous input embedding
is moved towards the target state by gradient steps, and the untried tokens whose
embeddings lie nearest to it are verified: the nearest alone, then the next `batch` - 1
in one batch. If `rounds` rounds find none,
every remaining token is verified (the exhaustive fallback), so the search ends in at most
|V| verifications per position. Candidates are verified as one batch that reads the prefix's
keys and values from a `KVCache` (one position each); a model the cache cannot serve
(`cache_unsupported`) verifies them as batches of whole sequences, with the same answers.

`certify=True` verifies every token at every position: a position where several tokens are
accepted is "ambiguous" (two tokens give one hidden state, e.g. duplicated embedding rows),
not a wrong answer; otherwise it is "unique", and the distance from the target to the
nearest other token's state is the position's separation margin. Recovery is exact under
noise below half the margin with `tolerance` = half the margin.

`collisions` is the paper's injectivity test: the smallest pairwise distance between the
last-token states of many prompts, per layer. `invert_prompts` inverts several sequences and
runs the collision test: what `workbench invert` reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.sites import site_hooks
from workbench import names
from workbench.config import Mask
from workbench.errors import InputError
from workbench.sites import Site
from workbench.staged import KVCache, cache_unsupported, staged_model

INVERTIBLE_SITES: tuple[Site, ...] = tuple(s for s in Site if s.in_stream)  # the stream itself
COLLISION_BATCH = 64  # prompts per forward pass of the collision test


@dataclass(frozen=True)
class Inversion:
    """Per position: the recovered token (-1 where none is accepted), its status ("found",
    "unique", "ambiguous", "not found"), every accepted token (certified runs), the accepted
    state's distance to the target, the separation margin (certified), the number of tokens
    verified and of verifier calls (each verifies a batch of tokens in one forward pass)."""

    site: str
    layer: int
    tolerance: float
    tokens: tuple[int, ...]
    status: tuple[str, ...]
    accepted: tuple[tuple[int, ...], ...]
    distances: tuple[float, ...]
    margins: tuple[float | None, ...]
    verified: tuple[int, ...]
    calls: tuple[int, ...]
    cached: bool
    seconds: float

    def recovery(self, truth: Int[Tensor, " pos"] | Sequence[int]) -> float:
        """Fraction of positions recovered exactly (an ambiguous position counts when the
        true token is among those accepted)."""
        truth = [int(t) for t in truth]
        if len(truth) != len(self.tokens):
            raise InputError(f"truth has {len(truth)} tokens, the inversion {len(self.tokens)}")
        rows = zip(truth, self.tokens, self.status, self.accepted, strict=True)
        hits = [t in acc if status == "ambiguous" else t == got for t, got, status, acc in rows]
        return sum(hits) / len(hits)

    def to_json(self) -> str:
        per_token = {
            "verified_per_token": self.verified_per_token(),
            "calls_per_token": sum(self.calls) / len(self.calls),
            "seconds_per_token": self.seconds / len(self.tokens),
        }
        return json.dumps({**vars(self), **per_token})

    def verified_per_token(self) -> float:
        return sum(self.verified) / len(self.verified)


def hidden_states(
    model, tokens: Int[Tensor, " pos"], layer: int, site: str = "resid_post"
) -> Float[Tensor, "pos d_model"]:
    """The states of one token sequence at `site` of `layer`: what `invert` reads back."""
    hook = _hook(model, layer, site)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None], names_filter=[hook])
    return cache[hook][0]


class _Verifier:
    """The hidden state at the next position for candidate tokens (or input embeddings)
    after a growing prefix: through the prefix's cache, or by whole sequences. Holds what
    the proposals need of the embedding matrix, computed once."""

    def __init__(self, model, hook: str, layer: int, use_cache: bool) -> None:
        self.model, self.hook, self.layer = model, hook, layer
        cached = use_cache and cache_unsupported(model.config) is None
        self.cache = KVCache() if cached else None
        self.prefix: list[int] = []
        self.calls = 0
        self.last: tuple[Tensor, KVCache] | None = None  # the last batch verified, cached
        self.embed = model.W_E.detach()
        self.mean = self.embed.mean(dim=0, keepdim=True)
        self.square = self.embed.pow(2).sum(dim=-1)  # |E_v|^2
        self.step = float((self.embed - self.mean).norm(dim=-1).pow(2).mean().sqrt())

    def nearest(self, guess: Float[Tensor, "1 d_model"]) -> Float[Tensor, " vocab"]:
        """Squared distances from `guess` to every token's embedding."""
        return self.square - 2 * (self.embed @ guess[0]) + guess.pow(2).sum()

    def states(
        self, tokens: Int[Tensor, " n"], embeddings: Tensor | None = None
    ) -> Float[Tensor, "n d_model"]:
        """With `embeddings` [n, d_model], those replace the candidates' token embeddings."""
        n, device = len(tokens), tokens.device
        if self.cache is None:
            prefix = torch.tensor(self.prefix, dtype=torch.long, device=device)
            seqs, cache = torch.cat([prefix.expand(n, -1), tokens[:, None]], dim=1), None
        elif embeddings is None:  # keep the candidates' keys and values for `accept`
            seqs, cache = tokens[:, None], KVCache(dict(self.cache.keys), dict(self.cache.values))
            self.last = (tokens, cache)
        else:
            seqs, cache = tokens[:, None], self.cache.frozen()
        self.calls += embeddings is None
        grabbed: list[Tensor] = []

        def grab(x: Tensor, hook) -> None:
            grabbed.append(x[:, -1])

        hooks: list[tuple[str | Callable, Callable]] = [(self.hook, grab)]
        if embeddings is not None:
            replaced = embeddings[:, None]

            def embed(x: Tensor, hook) -> Tensor:
                return torch.cat([x[:, :-1], replaced.to(x.dtype)], dim=1)

            hooks.append((names.EMBED, embed))
        with self.model.hooks(fwd_hooks=hooks):
            stream = self.model.start(seqs, validate=False, cache=cache)
            self.model.advance(stream, self.layer + 1)
        return grabbed[0]

    def accept(self, token: int) -> None:
        """Extend the prefix by `token`: its cached keys and values come from the batch
        that verified it, or from one more run of one position."""
        self.prefix.append(token)
        if self.cache is None:
            return
        tokens, cache = self.last if self.last is not None else (None, None)
        self.last = None
        if tokens is not None and cache is not None and (tokens == token).any():
            row = int((tokens == token).nonzero()[0, 0])
            self.cache.keys = {layer: k[row : row + 1].clone() for layer, k in cache.keys.items()}
            self.cache.values = {
                layer: v[row : row + 1].clone() for layer, v in cache.values.items()
            }
            return
        with torch.no_grad():
            seq = torch.tensor([[token]], device=self.embed.device)
            self.model.advance(self.model.start(seq, cache=self.cache), self.layer + 1)


def invert(
    model,
    states: Float[Tensor, "pos d_model"],
    *,
    layer: int,
    site: str = "resid_post",
    tolerance: float = 1e-3,
    batch: int = 32,
    rounds: int = 4,
    steps: int = 1,
    certify: bool = False,
    use_cache: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> Inversion:
    """Recover the token sequence whose hidden states at `site` of `layer` are `states`.
    `use_cache=False` verifies whole sequences even where the cache serves the model (the
    reference the cached path is tested against). `on_progress(done, total)` is called after
    each position, with no hook on the model."""
    model = staged_model(model, "exact inversion")
    hook = _hook(model, layer, site)
    reason = None if model.config.mask is Mask.CAUSAL else "it is not causal"
    if model.input_embed is not None:
        reason = f"its input is {model.config.input.KIND}, not tokens"
    if reason is not None:
        raise InputError(f"cannot invert this model's hidden states: {reason}")
    d = model.config.d_model
    if states.ndim != 2 or states.shape[1] != d or len(states) == 0:
        raise InputError(f"states must be [pos >= 1, d_model={d}], got {list(states.shape)}")
    if len(states) > model.config.n_ctx:
        raise InputError(f"{len(states)} states: more positions than n_ctx={model.config.n_ctx}")
    if not tolerance > 0 or batch < 1 or rounds < 0 or steps < 0:
        raise InputError("tolerance must be > 0, batch >= 1, rounds and steps >= 0")
    verifier = _Verifier(model, hook, layer, use_cache)
    rows = []
    began = time.perf_counter()
    for target in states.detach():
        calls = verifier.calls
        row = _position(verifier, target, tolerance, batch, rounds, steps, certify)
        rows.append((*row, verifier.calls - calls))
        if row[0] >= 0:
            verifier.accept(row[0])
        else:  # nothing is accepted: the rest of the sequence cannot be read
            rows += [(-1, "not found", (), float("nan"), None, 0, 0)] * (len(states) - len(rows))
        if on_progress is not None:
            on_progress(len(rows), len(states))
        if row[0] < 0:
            break
    seconds = time.perf_counter() - began
    token, status, accepted, distance, margin, verified, calls = zip(*rows, strict=True)
    return Inversion(
        site, layer, tolerance, token, status, accepted, distance, margin, verified, calls,
        verifier.cache is not None, seconds,
    )  # fmt: skip


def _position(
    verifier: _Verifier,
    target: Tensor,
    tolerance: float,
    batch: int,
    rounds: int,
    steps: int,
    certify: bool,
) -> tuple[int, str, tuple[int, ...], float, float | None, int]:
    """One position: (token, status, accepted tokens, distance, margin, tokens verified)."""
    vocab, device = len(verifier.embed), verifier.embed.device
    distance = torch.full((vocab,), float("inf"), device=device)
    tried = torch.zeros(vocab, dtype=torch.bool, device=device)
    guess = verifier.mean
    for _ in range(rounds):
        guess = _descend(verifier, target, guess, steps)
        near = verifier.nearest(guess).masked_fill(tried, float("inf"))
        order = near.argsort()[: min(batch, int((~tried).sum()))]
        # the nearest token alone first: the policy's first proposal is usually right
        for part in (order[:1], order[1:]):
            _verify(verifier, target, part, distance, tried)
            if (distance[part] <= tolerance).any() and not certify:
                break
        if (distance[order] <= tolerance).any() and not certify:
            break
    else:  # exhaustive fallback (and every token, when certifying)
        rest = (~tried).nonzero()[:, 0]
        for lo in range(0, len(rest), batch):
            chunk = rest[lo : lo + batch]
            _verify(verifier, target, chunk, distance, tried)
            if (distance[chunk] <= tolerance).any() and not certify:
                break
    hits = (distance <= tolerance).nonzero()[:, 0]
    verified = int(tried.sum())
    if len(hits) == 0:
        return -1, "not found", (), float(distance.min()), None, verified
    best = int(hits[distance[hits].argmin()])
    accepted = tuple(int(t) for t in hits[distance[hits].argsort()])
    if not certify:
        return best, "found", accepted, float(distance[best]), None, verified
    others = distance.clone()
    others[best] = float("inf")
    status = "ambiguous" if len(hits) > 1 else "unique"
    return best, status, accepted, float(distance[best]), float(others.min()), verified


def _verify(
    verifier: _Verifier,
    target: Tensor,
    candidates: Tensor,
    distance: Tensor,
    tried: Tensor,
) -> None:
    """Record the distance of each candidate's state to the target, in one batch."""
    if len(candidates) == 0:
        return
    with torch.no_grad():
        states = verifier.states(candidates)
    distance[candidates] = (states - target).norm(dim=-1).to(distance.dtype)
    tried[candidates] = True


def _descend(verifier: _Verifier, target: Tensor, guess: Tensor, steps: int) -> Tensor:
    """`steps` normalised gradient steps on ||state(e) - target||^2 from the embedding `guess`
    (step size: the embedding rows' RMS distance to their mean, halved each step)."""
    size = verifier.step
    dummy = torch.zeros(1, dtype=torch.long, device=guess.device)
    for step in range(steps):
        e = guess.clone().requires_grad_(True)
        loss = (verifier.states(dummy, e) - target).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, e)
        norm = grad.norm()
        if not torch.isfinite(norm) or norm == 0:
            break
        guess = (e - size * 0.5**step * grad / norm).detach()
    return guess


@dataclass(frozen=True)
class Collisions:
    """Per layer, the smallest L2 distance between the last-token states of two different
    prompts, the pair that attains it, and how many pairs lie closer than `threshold`."""

    site: str
    layers: tuple[int, ...]
    min_distance: tuple[float, ...]
    closest: tuple[tuple[int, int], ...]
    below: tuple[int, ...]
    n_prompts: int
    n_pairs: int
    threshold: float

    def to_json(self) -> str:
        return json.dumps(vars(self))


def collisions(
    model,
    prompts: Int[Tensor, "prompt pos"],
    *,
    site: str = "resid_post",
    layers: list[int] | None = None,
    threshold: float = 1e-6,
    batch_size: int = COLLISION_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> Collisions:
    """The paper's collision test over `prompts` [N, T] (duplicate prompts are dropped);
    `on_progress(done, total)` after each batch of prompts, with no hook on the model."""
    model = staged_model(model, "a collision test")
    site = Site.parse(site, among=INVERTIBLE_SITES)
    if prompts.ndim != 2:
        raise InputError(f"prompts must be [n_prompts, pos] token ids, got {list(prompts.shape)}")
    prompts = torch.unique(prompts, dim=0)
    if len(prompts) < 2:
        raise InputError("the collision test needs at least 2 different prompts")
    layers, hooks = site_hooks(model, site, layers)
    last: dict[str, list[Tensor]] = {hook: [] for hook in hooks}
    starts = range(0, len(prompts), batch_size)
    for done, lo in enumerate(starts, 1):
        with torch.no_grad():
            _, cache = model.run_with_cache(prompts[lo : lo + batch_size], names_filter=hooks)
        for hook in hooks:
            last[hook].append(cache[hook][:, -1].double())
        if on_progress is not None:
            on_progress(done, len(starts))
    n = len(prompts)
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    mins, pairs, below = [], [], []
    for hook in hooks:
        dist = torch.cdist(torch.cat(last[hook]), torch.cat(last[hook]))[upper]
        at = int(dist.argmin())
        i, j = upper.nonzero()[at].tolist()
        mins.append(float(dist[at]))
        pairs.append((i, j))
        below.append(int((dist < threshold).sum()))
    return Collisions(
        site, tuple(layers), tuple(mins), tuple(pairs), tuple(below), n, n * (n - 1) // 2,
        threshold,
    )  # fmt: skip


def _hook(model, layer: int, site: str | Site) -> str:
    return site_hooks(model, Site.parse(site, among=INVERTIBLE_SITES), [layer])[1][0]


@dataclass(frozen=True)
class InversionReport:
    """`workbench invert`'s report: each sequence's inversion and its true tokens, the
    collision test (None when skipped), and the names of the tokens involved (for figures;
    empty where the model has none)."""

    inversions: tuple[Inversion, ...]
    truth: tuple[tuple[int, ...], ...]
    collisions: Collisions | None
    names: dict[int, str] = field(default_factory=dict)

    @property
    def recoveries(self) -> tuple[float, ...]:
        return tuple(f.recovery(t) for f, t in zip(self.inversions, self.truth, strict=True))

    @property
    def recovery(self) -> float:
        """The mean exact-recovery rate over the sequences."""
        return sum(self.recoveries) / len(self.recoveries)

    def to_json(self) -> str:
        return json.dumps(
            {
                "recovery": self.recovery,
                "inversions": [json.loads(f.to_json()) for f in self.inversions],
                "collisions": None
                if self.collisions is None
                else json.loads(self.collisions.to_json()),
            }
        )


def invert_prompts(
    model,
    prompts: Sequence[Int[Tensor, " pos"]],
    *,
    layer: int,
    site: str = "resid_post",
    tolerance: float = 1e-3,
    certify: bool = False,
    collision_prompts: Int[Tensor, "prompt pos"] | None = None,
    name: Callable[[int], str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> InversionReport:
    """Invert each of `prompts` from its own hidden states at `site` of `layer`, and run the
    collision test over `collision_prompts` (None: skip it). `name` gives the report's token
    names; `on_progress(done, total)` counts positions inverted, then the collision test's
    batches, with no hook on the model."""
    if len(prompts) == 0:
        raise InputError("give at least one sequence to invert")
    total = sum(len(p) for p in prompts)
    if collision_prompts is not None and collision_prompts.ndim == 2:
        total += -(-len(torch.unique(collision_prompts, dim=0)) // COLLISION_BATCH)
    done = 0

    def step(base: int):
        def report(n: int, _of: int) -> None:
            if on_progress is not None:
                on_progress(base + n, total)

        return report

    found = []
    for tokens in prompts:
        states = hidden_states(model, tokens, layer, site)
        found.append(
            invert(model, states, layer=layer, site=site, tolerance=tolerance, certify=certify,
                   on_progress=step(done))
        )  # fmt: skip
        done += len(tokens)
    clash = None
    if collision_prompts is not None:
        clash = collisions(model, collision_prompts, site=site, on_progress=step(done))
    truth = tuple(tuple(int(t) for t in p) for p in prompts)
    names = {}
    if name is not None:
        seen = {t for row in truth for t in row}
        seen |= {t for f in found for row in f.accepted for t in row} | {
            t for f in found for t in f.tokens if t >= 0
        }
        names = {t: name(t) for t in sorted(seen)}
    return InversionReport(tuple(found), truth, clash, names)
