"""Influential neuron paths ("Discovering Influential Neuron Path in Vision Transformers",
Wang et al. 2025).

A neuron is one MLP hidden unit of one layer, taken at every position: at `mlp_post` (the
activation fed to W_out, the default) or `mlp_pre` (before the nonlinearity; a gated MLP's
gate). The output F is the model's probability of `target` at the read
position (the class position of a vision model, the last token of a language model).

- The joint influence of a set of neurons N is the integrated gradient of F along the path
  that scales all of them together by alpha from 0 (the baseline) to 1: JAS(N) = integral
  over alpha of dF/dalpha, by the Riemann sum over alpha = k/m, k = 1..m. dF/dalpha is
  computed exactly in forward mode (`torch.autograd.forward_ad`), so every step is one
  forward pass with a tangent.
- The layer-progressive search goes from the first layer to the last and adds, at each
  layer, the neuron j that maximises JAS(path so far + j).
- Baselines from the paper: the highest-activation path (per layer, the neuron with the
  largest activation, averaged over positions) and per-neuron attribution (per layer, the
  neuron j with the largest JAS({j}): each neuron alone, not jointly), plus random paths.
- Evaluation as in the paper: the drop of F when the path's neurons are set to zero.

The search reuses work. For layer l, the m scaled runs up to and including block l are
computed once, with tangents; every candidate j then only adds its rank-one change
(alpha - 1) a_j W_out[j] to the residual stream after block l (exact for `mlp_post` where the
MLP output is added to the stream: pre-norm and parallel blocks) and runs the blocks after
l, for a chunk of candidates and all m steps in one batch. `mlp_pre` and other wirings
(post-norm, dual-stream, DenseFormer, conditional positions) re-run block l per candidate
instead. `joint_influence`
is the straightforward computation (every layer, every time), which the search is tested
and benchmarked against."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from workbench.config import NormPlacement, Wiring
from workbench.errors import InputError
from workbench.options import Peg, Series
from workbench.sites import Axis, Site, sites
from workbench.staged import Stream, staged_model

# an MLP's neurons, after (the default) or before the activation function
NEURON_SITES: tuple[Site, ...] = tuple(
    sorted(sites(axis=Axis.NEURON), key=lambda s: s != Site.MLP_POST)
)
Report = Callable[[int, int], None]  # on_progress(done, total)


def _neuron_hook(site: str | Site, layer: int) -> str:
    return Site.parse(site, among=NEURON_SITES, what="neuron site").hook(layer)


@dataclass(frozen=True)
class NeuronPath:
    """One neuron per layer (`neurons[l]` of layer l) and the method's score of each: the
    joint path's JAS up to that layer, the per-neuron JAS, or the mean activation."""

    method: str
    neurons: tuple[int, ...]
    scores: tuple[float, ...]

    def pairs(self) -> list[tuple[int, int]]:
        return list(enumerate(self.neurons))

    def to_json(self) -> str:
        return json.dumps(vars(self))


@dataclass(frozen=True)
class PathComparison:
    """The paper's evaluation: each path's joint influence and the drop of the output
    probability when its neurons are suppressed, against random paths."""

    target: int
    output: float  # F with nothing suppressed
    paths: tuple[NeuronPath, ...]  # joint, activation, individual
    influence: tuple[float, ...]  # JAS of each whole path
    drop: tuple[float, ...]  # F - F(path suppressed)
    random_influence: tuple[float, ...]
    random_drop: tuple[float, ...]

    def to_json(self) -> str:
        data = {**vars(self), "paths": [vars(p) for p in self.paths]}
        return json.dumps(data)


class _Problem:
    """One input, its target and read position, checked against the model."""

    def __init__(self, model, inputs: Tensor, target: int, position: int | None, site: str) -> None:
        config = staged_model(model, "an influential neuron path").config
        site = Site.parse(site, among=NEURON_SITES, what="neuron site")
        if isinstance(config.input, Series):
            raise InputError("neuron paths need class or token outputs, not forecasts")
        if not config.has_mlp:
            raise InputError("this model has no MLP, so no MLP neurons to trace")
        if not all(layer.has_mlp for layer in config.layer_configs):
            raise InputError("this model has layers without an MLP: neuron paths need one in each")
        if len(inputs) != 1:
            raise InputError(f"pass one input (batch 1), got a batch of {len(inputs)}")
        if not 0 <= target < config.vocab_out:
            raise InputError(f"target {target} is outside the outputs 0..{config.vocab_out - 1}")
        self.model, self.inputs, self.target = model, inputs, target
        self.position = (
            (0 if model.input_embed is not None else -1) if position is None else position
        )
        self.n_layers, self.d_mlp = config.n_layers, config.d_mlp
        self.device = model.unembed_matrix.device
        self.site = site
        self.additive = (
            site is Site.MLP_POST
            and config.wiring in (Wiring.SEQUENTIAL, Wiring.PARALLEL)
            and config.norm_placement is NormPlacement.PRE
            and not config.depth_weighted
            and not isinstance(config.pos, Peg)
        )

    def hook(self, layer: int) -> str:
        return _neuron_hook(self.site, layer)

    def output(self, logits: Tensor) -> Tensor:
        """F per row from logits [rows, 1, vocab] at the read position."""
        return logits[:, 0].softmax(dim=-1)[:, self.target]

    def start(self, rows: int) -> Stream:
        return self.model.start(self.inputs.expand(rows, *self.inputs.shape[1:]))

    def finish(self, stream: Stream) -> Tensor:
        return self.output(self.model.finish(stream, keep=self.position))


def _scaling(problem: _Problem, neurons: Sequence[tuple[int, int]], scale: Tensor):
    """Hooks that multiply each (layer, neuron)'s activation, at every position, by the
    per-row `scale` [rows] (alpha, possibly dual)."""
    by_layer: dict[int, list[int]] = {}
    for layer, neuron in neurons:
        by_layer.setdefault(layer, []).append(neuron)
    hooks = []
    for layer, units in by_layer.items():
        mask = torch.zeros(problem.d_mlp)
        mask[units] = 1.0

        def hook(act: Tensor, hook, mask=mask) -> Tensor:
            factor = 1 + (scale[:, None, None] - 1) * mask.to(act.device)  # [rows, 1, d_mlp]
            return act * factor

        hooks.append((problem.hook(layer), hook))
    return hooks


def _alphas(steps: int, device: torch.device) -> Tensor:
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    return torch.arange(1, steps + 1, dtype=torch.float32, device=device) / steps


def joint_influence(
    model,
    inputs: Tensor,
    target: int,
    neurons: Sequence[tuple[int, int]],
    *,
    steps: int = 20,
    position: int | None = None,
    site: str = "mlp_post",
) -> float:
    """JAS of `neurons` ((layer, unit) pairs), computed straightforwardly: m full forward
    passes (one batch), every layer recomputed."""
    problem = _Problem(model, inputs, target, position, site)
    _check_neurons(problem, neurons)
    alphas = _alphas(steps, problem.device)
    with torch.no_grad(), fwad.dual_level():
        alpha = fwad.make_dual(alphas, torch.ones_like(alphas))
        with model.hooks(fwd_hooks=_scaling(problem, neurons, alpha)):
            out = problem.finish(problem.start(steps))
        return float(_tangent(out).mean())


def _tangent(out: Tensor) -> Tensor:
    """The derivative that forward mode carried along with `out` (d out / d alpha)."""
    tangent = fwad.unpack_dual(out).tangent
    assert tangent is not None  # out was computed from the dual alpha
    return tangent


def _check_neurons(problem: _Problem, neurons: Sequence[tuple[int, int]]) -> None:
    for layer, unit in neurons:
        if not (0 <= layer < problem.n_layers and 0 <= unit < problem.d_mlp):
            raise InputError(
                f"neuron ({layer}, {unit}) does not exist: layers 0..{problem.n_layers - 1}, "
                f"units 0..{problem.d_mlp - 1}"
            )


def _layer_scores(
    problem: _Problem, path: Sequence[tuple[int, int]], layer: int, steps: int, chunk: int
) -> Tensor:
    """JAS(path + (layer, j)) for every unit j of `layer` ([d_mlp]); `path` lies in earlier
    layers."""
    model, d_mlp = problem.model, problem.d_mlp
    alphas = _alphas(steps, problem.device)
    scores = torch.empty(d_mlp, device=problem.device)
    with torch.no_grad(), fwad.dual_level():
        alpha = fwad.make_dual(alphas, torch.ones_like(alphas))
        with model.hooks(fwd_hooks=_scaling(problem, path, alpha)):
            stream = model.advance(problem.start(steps), layer)  # shared by every candidate
            rank_one = None  # additive: the layer's activations, W_out and the stream after it
            if problem.additive:
                acts: list[Tensor] = []
                grab = (problem.hook(layer), lambda act, hook: acts.append(act))
                with model.hooks(fwd_hooks=[grab]):
                    after = model.advance(stream, layer + 1)
                rank_one = acts[0], model.blocks[layer].mlp.W_out, after
        for lo in range(0, d_mlp, chunk):
            units = torch.arange(lo, min(lo + chunk, d_mlp))
            n = len(units)
            row_alpha = alpha.repeat(n)  # row = candidate * steps + step
            if rank_one is not None:  # the candidate's rank-one change to the stream
                act, w_out, after = rank_one
                a = act[..., units].permute(2, 0, 1)  # [n, steps, pos]
                delta = ((alpha - 1)[None, :, None] * a)[..., None] * w_out[units][:, None, None]
                tiled = after.tile(n)
                state = tiled.state + delta.flatten(0, 1)
                out = problem.finish(Stream(layer + 1, state, tiled.seqs))
            else:  # run block `layer` again with the candidate scaled
                hooks = [(problem.hook(layer), _unit_hook(units, row_alpha, steps))]
                with model.hooks(fwd_hooks=hooks):
                    out = problem.finish(stream.tile(n))
            scores[units] = _tangent(out).view(n, steps).mean(dim=1)
    return scores.cpu()


def _unit_hook(units: Tensor, row_alpha: Tensor, steps: int):
    """Scale unit units[c] by the row's alpha in the rows of candidate c."""

    def hook(act: Tensor, hook) -> Tensor:
        mask = torch.zeros(len(units), act.shape[-1], device=act.device)
        mask[torch.arange(len(units)), units] = 1.0
        mask = mask.repeat_interleave(steps, dim=0)  # [rows, d_mlp]
        return act * (1 + (row_alpha[:, None] - 1) * mask)[:, None, :]

    return hook


def neuron_path(
    model,
    inputs: Tensor,
    target: int,
    *,
    steps: int = 20,
    position: int | None = None,
    chunk: int = 64,
    site: str = "mlp_post",
    on_progress: Report | None = None,
) -> NeuronPath:
    """The layer-progressive search: at each layer, the unit that maximises the joint
    influence of the path so far plus itself. `on_progress(done, total)` after each layer,
    with no hook on the model."""
    problem = _Problem(model, inputs, target, position, site)
    path: list[tuple[int, int]] = []
    scores = []
    for layer in range(problem.n_layers):
        jas = _layer_scores(problem, path, layer, steps, chunk)
        best = int(jas.argmax())
        path.append((layer, best))
        scores.append(float(jas[best]))
        if on_progress is not None:
            on_progress(layer + 1, problem.n_layers)
    return NeuronPath("joint", tuple(n for _, n in path), tuple(scores))


def individual_path(
    model, inputs: Tensor, target: int, *, steps: int = 20, position: int | None = None,
    chunk: int = 64, site: str = "mlp_post", on_progress: Report | None = None,
) -> NeuronPath:  # fmt: skip
    """Per-neuron attribution: at each layer, the unit with the largest JAS on its own.
    `on_progress(done, total)` after each layer, with no hook on the model."""
    problem = _Problem(model, inputs, target, position, site)
    best = []
    for layer in range(problem.n_layers):
        best.append(_layer_scores(problem, [], layer, steps, chunk))
        if on_progress is not None:
            on_progress(layer + 1, problem.n_layers)
    units = tuple(int(s.argmax()) for s in best)
    return NeuronPath("individual", units, tuple(float(s.max()) for s in best))


def activation_path(model, inputs: Tensor, site: str = "mlp_post") -> NeuronPath:
    """At each layer, the unit with the largest activation (mean over positions)."""
    hooks = [_neuron_hook(site, layer) for layer in range(model.config.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=hooks)
    means = [cache[hook][0].mean(dim=0) for hook in hooks]
    return NeuronPath(
        "activation", tuple(int(m.argmax()) for m in means), tuple(float(m.max()) for m in means)
    )


def random_path(model, generator: torch.Generator) -> NeuronPath:
    c = model.config
    units = torch.randint(0, c.d_mlp, (c.n_layers,), generator=generator)
    return NeuronPath("random", tuple(units.tolist()), (0.0,) * c.n_layers)


def suppressed_output(
    model, inputs: Tensor, target: int, neurons: Sequence[tuple[int, int]],
    position: int | None = None, site: str = "mlp_post",
) -> float:  # fmt: skip
    """F with `neurons` set to zero at every position."""
    problem = _Problem(model, inputs, target, position, site)
    _check_neurons(problem, neurons)
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=_scaling(problem, neurons, torch.zeros(1, device=problem.device))),
    ):
        return float(problem.finish(problem.start(1))[0])


def comparison_steps(model, n_random: int) -> int:
    """The steps `compare_paths` reports: two searches of a step per layer, then one per
    path evaluated (the joint, activation and individual paths and the random ones)."""
    return 2 * model.config.n_layers + 3 + n_random


def compare_paths(
    model, inputs: Tensor, target: int, *, steps: int = 20, n_random: int = 10, seed: int = 0,
    position: int | None = None, site: str = "mlp_post", on_progress: Report | None = None,
) -> PathComparison:  # fmt: skip
    """The joint path against the activation and per-neuron paths and `n_random` random
    paths: joint influence and suppression drop of each. `on_progress(done, total)` counts
    the `comparison_steps`, with no hook on the model."""
    if n_random < 0:
        raise InputError(f"n_random must be >= 0 (0: no random paths), got {n_random}")
    problem = _Problem(model, inputs, target, position, site)
    n_layers, total = problem.n_layers, comparison_steps(model, n_random)

    def report(base: int) -> Report:  # a part's steps, counted after `base` steps
        def part(done: int, _of: int) -> None:
            if on_progress is not None:
                on_progress(base + done, total)

        return part

    with torch.no_grad():
        output = float(problem.finish(problem.start(1))[0])
    options = {"steps": steps, "position": position, "site": site}
    joint = neuron_path(model, inputs, target, **options, on_progress=report(0))
    individual = individual_path(model, inputs, target, **options, on_progress=report(n_layers))
    paths = (joint, activation_path(model, inputs, site), individual)
    generator = torch.Generator().manual_seed(seed)
    randoms = [random_path(model, generator) for _ in range(n_random)]
    evaluated = report(2 * n_layers)
    influence, drop = [], []
    for i, p in enumerate((*paths, *randoms), 1):
        influence.append(
            joint_influence(model, inputs, target, p.pairs(), steps=steps, position=position,
                            site=site)
        )  # fmt: skip
        drop.append(output - suppressed_output(model, inputs, target, p.pairs(), position, site))
        evaluated(i, 0)
    return PathComparison(
        target, output, paths, tuple(influence[:3]), tuple(drop[:3]), tuple(influence[3:]),
        tuple(drop[3:]),
    )  # fmt: skip


@dataclass(frozen=True)
class PathReport:
    """`workbench neuron-path`'s report: the comparison of each example, in order."""

    comparisons: tuple[PathComparison, ...]

    def to_json(self) -> str:
        return json.dumps([json.loads(c.to_json()) for c in self.comparisons])


def compare_examples(
    model, examples: Sequence[tuple[Tensor, int, int]], *, steps: int = 20, n_random: int = 10,
    seed: int = 0, site: str = "mlp_post", on_progress: Report | None = None,
) -> PathReport:  # fmt: skip
    """`compare_paths` for each (input, target, read position) of `examples` (as
    `task_examples` gives them), every one with the same `seed`; `on_progress(done, total)`
    counts every example's `comparison_steps`."""
    each = comparison_steps(model, n_random)
    results = []
    for i, (inputs, target, position) in enumerate(examples):

        def report(done: int, _of: int, base: int = i * each) -> None:
            if on_progress is not None:
                on_progress(base + done, each * len(examples))

        results.append(
            compare_paths(model, inputs, target, steps=steps, n_random=n_random, seed=seed,
                          position=position, site=site, on_progress=report)
        )  # fmt: skip
    return PathReport(tuple(results))


def task_examples(model, batch) -> list[tuple[Tensor, int, int]]:
    """(input [1, ...], target, read position) per example of a task batch: a vision task's
    class at the class position; a token task's last labelled position (the sequence cut
    after it)."""
    from workbench.tasks.base import IGNORE

    if batch.targets.ndim == 1:  # one class per image
        return [(x[None], int(t), 0) for x, t in zip(batch.tokens, batch.targets, strict=True)]
    examples = []
    for tokens, targets in zip(batch.tokens, batch.targets, strict=True):
        labelled = (targets != IGNORE).nonzero()[:, 0]
        if len(labelled) == 0:
            continue
        last = int(labelled[-1])
        examples.append((tokens[None, : last + 1], int(targets[last]), -1))
    if not examples:
        raise InputError("the task's examples have no labelled position")
    return examples
