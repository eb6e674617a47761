"""What the patching page computes (`app.pages.patching` draws it): the page's settings,
checked (they come from the browser); the sweep, run by `circuits.tasks` (the engine
`workbench patch` runs) in a background thread under the model's lock, which it lets go between
batched passes; and a clicked cell's patched run, with its top tokens next to the clean and
corrupted runs'."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from torch import Tensor

from app.background import Run
from app.checks import choice, integer, whole
from app.figures.patching import TopTokens, cells, top_tokens_figure
from app.models import ModelRegistry
from app.prompts import checked_text, encode, token_id, token_names
from circuits import tasks
from circuits.ablation import Ablation
from circuits.metrics import METRICS
from circuits.nodes import NodePatch, patched_run
from circuits.result import PatchResult
from circuits.sites import SITES, site_axes
from workbench.checkpoint import Checkpoint
from workbench.cli_options import SEED_RANGE
from workbench.errors import InputError
from workbench.options import Tokens

SOURCES = {
    "task": "prompt pairs of the model's task",
    "typed": "a typed clean and corrupted prompt",
}
EACH = {"each": "each", "all": "all at once"}
MAX_PROMPTS = 256
TOP_K = 8
ABLATIONS = {
    "patch": "patch: the corrupted run with clean activations",
    "zero": "zero ablation of the clean run",
    "mean": "mean ablation (over the task's prompts)",
    "resample": "resample ablation (from the task's prompts)",
}


@dataclass(frozen=True)
class Settings:
    """A sweep the page asks for, every value checked (they come from the browser)."""

    model: str
    source: str
    n_prompts: int
    seed: int
    clean: str
    corrupted: str
    answer: str
    wrong: str
    site: str
    positions: str
    heads: str
    ablation: str
    metric: str

    @classmethod
    def of(cls, registry: ModelRegistry, *values: object) -> Settings:
        model, source, n, seed, clean, corrupted, answer_, wrong, site, *rest = values
        positions, heads, ablation, metric = rest
        registry.get(model)  # one of the offered models, or a message listing them
        typed = choice(source, SOURCES, "prompt source") == "typed"
        return cls(
            str(model),
            str(source),
            1 if typed else whole(n, 1, MAX_PROMPTS, "number of prompt pairs"),
            0 if typed else whole(seed, SEED_RANGE["min"], SEED_RANGE["max"], "seed"),
            checked_text(clean) if typed else "",
            checked_text(corrupted) if typed else "",
            _optional_text(answer_, "answer") if typed else "",
            _optional_text(wrong, "wrong token") if typed else "",
            choice(site, SITES, "site"),
            choice(positions, EACH, "positions setting"),
            choice(heads, EACH, "heads setting"),
            choice(ablation, [a.value for a in Ablation], "ablation"),
            choice(metric, METRICS, "metric"),
        )


@dataclass(frozen=True)
class Finished:
    """A finished sweep: its settings, what it ran, its result, the positions' labels (typed
    prompts) and each pair's clean prompt as the page's input box takes it (empty where it
    cannot: images, series, a tokenizer's pieces)."""

    settings: Settings
    setup: tasks.PatchSetup
    result: PatchResult
    labels: list[str] | None
    prompts: list[str]


def sweep(registry: ModelRegistry, settings: Settings, run: Run) -> Finished:
    """The run's work (in its background thread): the model's runs hold its lock, which
    the sweep lets go between its batched passes."""
    run.stage("loading the model")
    registry.checkpoint(settings.model)
    with registry.running(settings.model) as ckpt:
        run.stage("preparing the prompts")
        setup, labels = _setup(ckpt, settings)
        run.stage("patching")

        def on_progress(done: int, total: int) -> None:
            run.progress(done, total)  # stops a cancelled run here
            registry.pause(settings.model)

        result = tasks.sweep_site(
            ckpt.model,
            setup,
            settings.site,
            positions=settings.positions,  # type: ignore[arg-type]  # checked: each or all
            heads=settings.heads,  # type: ignore[arg-type]
            on_progress=on_progress,
        )
    return Finished(settings, setup, result, labels, _prompt_texts(ckpt, settings, setup))


def _setup(ckpt: Checkpoint, settings: Settings) -> tuple[tasks.PatchSetup, list[str] | None]:
    options = {"ablation": settings.ablation, "metric": settings.metric}
    if settings.source == "typed":
        if not isinstance(ckpt.model.config.input, Tokens):
            raise InputError(
                f"this model reads {ckpt.model.config.input.KIND}, not typed prompts: patch "
                "its task's prompt pairs"
            )
        clean, clean_labels = encode(ckpt, settings.clean)
        corrupted, corrupted_labels = encode(ckpt, settings.corrupted)
        setup = tasks.typed_setup(
            ckpt.model,
            clean,
            corrupted,
            answer=token_id(ckpt, settings.answer, "answer"),
            wrong=token_id(ckpt, settings.wrong, "wrong token"),
            **options,
        )
        pairs = zip(clean_labels, corrupted_labels, strict=True)  # one length: checked
        return setup, [c if c == r else f"{c}/{r}" for c, r in pairs]
    task = ckpt.task()
    if task is None:
        raise InputError(
            "this model was not trained on a built-in task: type a clean and a corrupted prompt"
        )
    setup = tasks.task_setup(
        ckpt.model, task, n_prompts=settings.n_prompts, seed=settings.seed, **options
    )
    return setup, None


def _prompt_texts(ckpt: Checkpoint, settings: Settings, setup: tasks.PatchSetup) -> list[str]:
    if not isinstance(ckpt.model.config.input, Tokens):
        return []
    if settings.source == "typed":
        return [settings.clean]
    if ckpt.has_tokenizer:
        return []  # a tokenizer's pieces joined need not read back as the same tokens
    name = token_names(ckpt)
    return [" ".join(name(i) for i in row) for row in setup.pairs.clean.tolist()]


def cell_tokens(
    registry: ModelRegistry, finished: Finished, click: object, prompt: object
) -> tuple[go.Figure, dict | None]:
    """The clicked cell's patched run: its top tokens for one prompt next to the clean and
    the corrupted (or unablated) run's; and the head to open, for a head's cell."""
    laid = cells(finished.result, finished.labels)
    row, column = clicked_cell(click, laid.rows, laid.columns)
    config = finished.result.configs[int(laid.index[row, column])]
    patch = NodePatch(**config)  # type: ignore[arg-type]  # the sweep's own configuration
    setup, settings = finished.setup, finished.settings
    pairs = setup.pairs
    i = 0 if prompt is None else whole(prompt, 0, len(pairs.clean) - 1, "prompt number")
    with registry.running(settings.model) as ckpt:
        model = ckpt.model
        patched = patched_run(model, setup.target, patch, setup.replacement)
        with torch.inference_mode():
            clean = model(pairs.clean[i : i + 1].to(model.cfg.device))
            corrupted = model(pairs.corrupted[i : i + 1].to(model.cfg.device))
        head_ok = "head" in config and _query_heads(ckpt, patch)
    value = float(setup.metric(patched[None])[0])  # the cell's number, from this run
    name = token_names(ckpt)
    at = pairs.read_at
    at_position = "pos" in finished.result.dims
    where = f"{laid.rows[row]}{' at ' if at_position else ' '}{laid.columns[column]}"
    if settings.ablation == Ablation.PATCH.value:
        runs = [("clean", clean[0]), ("corrupted", corrupted[0]), (f"patched {where}", patched[i])]
    else:
        runs = [("clean (unablated)", clean[0]), (f"{settings.ablation} {where}", patched[i])]
    shown = [_top(label, logits[at], name) for label, logits in runs]
    title = (
        f"prompt {i}: answer {name(int(pairs.answer[i]))!r}, wrong {name(int(pairs.wrong[i]))!r}"
        f"<br>{settings.metric} of this patched run over all prompts: {value:.4g}"
    )
    head = None
    if head_ok:
        text = finished.prompts[i] if i < len(finished.prompts) else None
        head = {"model": settings.model, "layer": patch.layer, "head": patch.head, "prompt": text}
    return top_tokens_figure(shown, title), head


def _top(label: str, logits: Tensor, name) -> TopTokens:
    probs = torch.softmax(logits.float().cpu(), -1)
    top = probs.topk(min(TOP_K, probs.shape[-1]))
    return TopTokens(label, [name(i) for i in top.indices.tolist()], top.values.tolist())


def _query_heads(ckpt: Checkpoint, patch: NodePatch) -> bool:
    """Whether the site's heads are the attention view's (query) heads, not key/value
    groups."""
    axes = site_axes(ckpt.model, patch.site, patch.layer)
    return axes.head is not None and axes.sizes[axes.head] == ckpt.model.config.n_heads


def clicked_cell(click: object, rows: list[str], columns: list[str]) -> tuple[int, int]:
    """The (row, column) of a heatmap click (browser data: checked): the cell's labels."""
    try:
        point = click["points"][0]  # type: ignore[index]
        y, x = point["y"], point["x"]
    except (TypeError, KeyError, IndexError):
        raise InputError("could not read the clicked cell; click a cell of the heatmap") from None
    if y not in rows or x not in columns:  # unhashable values compare unequal: not in
        raise InputError("no such cell in this heatmap; click a cell of the heatmap")
    return rows.index(y), columns.index(x)


def _optional_text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise InputError(f"the {what} must be one token (or empty: the default)")
    return value


def checked_head(registry: ModelRegistry, head: object) -> tuple[int, int, str, str | None]:
    """The head to open (a store the browser sends back: checked against the model)."""
    try:
        model, layer, index = head["model"], integer(head["layer"]), integer(head["head"])  # type: ignore[index]
        prompt = head.get("prompt")  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise InputError("click a head's cell first") from None
    config = registry.checkpoint(model).model.config
    if not (0 <= layer < config.n_layers and 0 <= index < config.n_heads):
        raise InputError(f"no head L{layer}H{index} in this model; click a head's cell")
    return layer, index, str(model), None if prompt is None else checked_text(prompt)
