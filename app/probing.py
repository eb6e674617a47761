"""What the probes page computes (`app.pages.probes` draws it): the settings of each of its
four analyses, checked (they come from the browser), and the run of one, by the public
functions the probe commands call (`workbench probe`, `decompose`, `neuron-path`, `invert`),
on test sequences of the model's task drawn as the commands draw them (or, for inversion, on
the page's prompt). A run happens in a background thread (`app.background`) under the
model's lock, which it lets go between its steps, and reports its progress there."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from app.background import Run
from app.checks import choice, number, ticked, whole
from app.figures.probes import (
    decompose_figure,
    inversion_figure,
    neuron_path_figure,
    probe_figure,
)
from app.models import ModelRegistry
from app.prompts import encode, token_names
from probes.decompose import Decomposition, decompose
from probes.invert import INVERTIBLE_SITES, InversionReport, invert_prompts
from probes.linear import KINDS, ProbeResult, task_probe
from probes.neuron_path import NEURON_SITES, PathReport, compare_examples, task_examples
from probes.sites import SITES
from probes.tasks import task_batch
from workbench.checkpoint import Checkpoint
from workbench.cli_options import SEED_RANGE
from workbench.errors import InputError
from workbench.options import Tokens
from workbench.tasks.base import Batch

ANALYSES = {
    "probe": "linear probes",
    "decompose": "position/context decomposition",
    "neuron-path": "neuron paths",
    "invert": "inversion",
}
MAX_PROMPTS = {"probe": 1024, "decompose": 2048, "neuron-path": 16, "invert": 32}
MIN_PROMPTS = {"probe": 2, "decompose": 2, "neuron-path": 1, "invert": 1}
MAX_COLLISION = 2048
MAX_STEPS = 200
MAX_RANDOM = 100
SOURCES = {"task": "sequences of the model's task", "prompt": "the prompt above"}
# forward-mode AD has one dual level for the whole process: one neuron-path search at a time
_DUAL_LEVEL = threading.Lock()


@dataclass(frozen=True)
class Settings:
    """One analysis the page asks for, every value checked; the settings another analysis
    has are left at their defaults."""

    analysis: str
    model: str
    site: str
    n_prompts: int
    seed: int
    kind: str = "logistic"  # probe
    steps: int = 20  # neuron-path
    n_random: int = 10  # neuron-path
    layer: int = 0  # invert
    source: str = "task"  # invert
    prompt: str = ""  # invert, from the page's prompt
    n_collision: int = 0  # invert
    tolerance: float = 1e-3  # invert
    certify: bool = False  # invert

    @classmethod
    def of(
        cls, registry: ModelRegistry, analysis: object, model: object, values: dict, prompt: object
    ) -> Settings:
        """`values`: the page's settings of `analysis` by name (browser values: any type)."""
        analysis = choice(analysis, ANALYSES, "analysis")
        registry.get(model)  # one of the offered models, or a message listing them
        get = values.get
        seed = whole(get("seed"), SEED_RANGE["min"], SEED_RANGE["max"], "seed")
        low, high = MIN_PROMPTS[analysis], MAX_PROMPTS[analysis]
        what = "number of sequences" if analysis != "neuron-path" else "number of examples"
        common = {"analysis": analysis, "model": str(model), "seed": seed}
        if analysis == "invert" and choice(get("source"), SOURCES, "source") == "prompt":
            n = 1
            if not isinstance(prompt, str) or not prompt.strip():
                raise InputError("type a prompt above to invert it, or invert task sequences")
        else:
            n = whole(get("n_prompts"), low, high, what)
        match analysis:
            case "probe":
                site, kind = choice(get("site"), SITES, "site"), choice(get("kind"), KINDS, "kind")
                return cls(**common, site=site, n_prompts=n, kind=kind)
            case "decompose":
                return cls(**common, site=choice(get("site"), SITES, "site"), n_prompts=n)
            case "neuron-path":
                return cls(
                    **common,
                    site=choice(get("site"), NEURON_SITES, "neuron site"),
                    n_prompts=n,
                    steps=whole(get("steps"), 1, MAX_STEPS, "number of integration steps"),
                    n_random=whole(get("n_random"), 0, MAX_RANDOM, "number of random paths"),
                )
        source = str(get("source"))
        return cls(
            **common,
            site=choice(get("site"), INVERTIBLE_SITES, "site"),
            n_prompts=n,
            layer=whole(get("layer"), 0, 10_000, "layer"),
            source=source,
            prompt=str(prompt) if source == "prompt" else "",
            n_collision=0 if source == "prompt" else whole(
                get("n_collision"), 0, MAX_COLLISION, "number of sequences for the collision test"
            ),
            tolerance=number(get("tolerance"), 0.0, 1e3, "tolerance", above=True),
            certify=ticked(get("certify"), "certify", "certify"),
        )  # fmt: skip


Result = ProbeResult | Decomposition | PathReport | InversionReport


@dataclass(frozen=True)
class Finished:
    """A finished run: its settings and its result (what the probe command prints as JSON)."""

    settings: Settings
    result: Result


def run(registry: ModelRegistry, settings: Settings, current: Run) -> Finished:
    """The run's work (in its background thread): the model's runs hold its lock, which the
    analysis lets go between its steps (`on_progress`, called with no hook on the model)."""
    current.stage("loading the model")
    registry.checkpoint(settings.model)
    if settings.analysis == "neuron-path":
        if not _DUAL_LEVEL.acquire(blocking=False):
            current.stage("waiting for another neuron-path run to finish")
            while not _DUAL_LEVEL.acquire(timeout=0.1):
                current.check()  # a cancelled run stops waiting
        try:
            return _run(registry, settings, current)
        finally:
            _DUAL_LEVEL.release()
    return _run(registry, settings, current)


def _run(registry: ModelRegistry, settings: Settings, current: Run) -> Finished:
    with registry.running(settings.model) as ckpt:

        def on_progress(done: int, total: int) -> None:
            current.progress(done, total)  # stops a cancelled run here
            registry.pause(settings.model)

        current.stage(ANALYSES[settings.analysis])  # the progress line's words
        result = COMPUTE[settings.analysis](ckpt, settings, on_progress)
    return Finished(settings, result)


Report = Callable[[int, int], None]


def _batch(ckpt: Checkpoint, n_prompts: int, seed: int) -> Batch:
    task = ckpt.task()
    if task is None:
        raise InputError(
            "this model was not trained on a built-in task, whose sequences the probes page "
            "reads: choose a model trained on one (e.g. induction-2l), or invert the prompt above"
        )
    return task_batch(task, n_prompts, seed)


def _probe(ckpt: Checkpoint, s: Settings, on_progress: Report) -> ProbeResult:
    batch = _batch(ckpt, s.n_prompts, s.seed)
    return task_probe(
        ckpt.model, batch, site=s.site, kind=s.kind, seed=s.seed, on_progress=on_progress
    )


def _decompose(ckpt: Checkpoint, s: Settings, on_progress: Report) -> Decomposition:
    batch = _batch(ckpt, s.n_prompts, s.seed)
    return decompose(ckpt.model, batch.tokens, site=s.site, on_progress=on_progress)


def _neuron_path(ckpt: Checkpoint, s: Settings, on_progress: Report) -> PathReport:
    examples = task_examples(ckpt.model, _batch(ckpt, s.n_prompts, s.seed))
    return compare_examples(
        ckpt.model, examples, steps=s.steps, n_random=s.n_random, seed=s.seed, site=s.site,
        on_progress=on_progress,
    )  # fmt: skip


def _invert(ckpt: Checkpoint, s: Settings, on_progress: Report) -> InversionReport:
    collision = None
    if s.source == "prompt":
        if not isinstance(ckpt.model.config.input, Tokens):
            raise InputError(f"this model reads {ckpt.model.config.input.KIND}, not tokens")
        prompts = [torch.tensor(encode(ckpt, s.prompt)[0])]
    else:  # as `workbench invert` draws them
        batch = _batch(ckpt, max(s.n_prompts, s.n_collision), s.seed)
        prompts = list(batch.tokens[: s.n_prompts])
        collision = batch.tokens[: s.n_collision] if s.n_collision else None
    return invert_prompts(
        ckpt.model, prompts, layer=s.layer, site=s.site, tolerance=s.tolerance,
        certify=s.certify, collision_prompts=collision, name=token_names(ckpt),
        on_progress=on_progress,
    )  # fmt: skip


COMPUTE: dict[str, Callable[[Checkpoint, Settings, Report], Result]] = {
    "probe": _probe,
    "decompose": _decompose,
    "neuron-path": _neuron_path,
    "invert": _invert,
}


def figure(finished: Finished, layer: object = None, dims: object = 3) -> go.Figure:
    """The run's figure; a decomposition's spiral and contexts of `layer` (None: the last)
    in `dims` dimensions (browser values: checked)."""
    result = finished.result
    if isinstance(result, ProbeResult):
        return probe_figure(result)
    if isinstance(result, Decomposition):
        n_layers = max(g.layer for g in result.layers)
        shown = None if layer is None else whole(layer, 0, n_layers, "layer shown")
        return decompose_figure(result, shown, whole(dims, 2, 3, "number of dimensions"))
    if isinstance(result, PathReport):
        return neuron_path_figure(result)
    return inversion_figure(result)
