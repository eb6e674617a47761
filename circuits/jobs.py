"""Circuit discovery as a resumable job: what `workbench discover` runs. Settings, progress,
edge scores, the metric's trajectory, the faithfulness curve and versions go into the job
store (`workbench.store`) as they are produced; ACDC saves its state after every batch, so a
killed job resumes where it stopped (`workbench discover --resume ID`).

Prompts come from the model's built-in task (clean/corrupted pairs: removed edges carry the
corrupted run's activations by default), or, for a compiled RASP program, every length up
to its max_seq_len with zero ablation (the ACDC paper's setting for tracr programs)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.discovery import ACDC_BATCH, Circuit, acdc, eap, eap_ig
from circuits.evaluation import faithfulness
from circuits.graph import build_graph
from circuits.metrics import KLToClean, LogitDiff, Metric, OutputDistance, PerConfig
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.store import JobStore

METHODS = ("acdc", "eap", "eap-ig")
KIND = "discover"


@dataclass(frozen=True)
class Settings:
    model: str
    method: str
    task: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    ablation: str | None = None  # default: patch (task), zero (compiled RASP)
    metric: str = "kl"  # ACDC's distance: kl, or logit_diff (the drop from the full model)
    n_prompts: int = 16
    seed: int = 0
    batch_size: int = ACDC_BATCH
    steps: int = 5  # EAP-IG
    ig_over: str = "inputs"  # EAP-IG: inputs or activations

    def check(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.method == "acdc" and self.threshold is None:
            raise InputError("acdc needs --threshold (the largest metric cost of removing an edge)")
        if self.method != "acdc" and self.top_k is None and self.threshold is None:
            raise InputError(f"{self.method} needs --top-k or --threshold to choose the circuit")
        if self.n_prompts < 1:
            raise InputError(f"n_prompts must be at least 1, got {self.n_prompts}")
        if self.ig_over not in ("inputs", "activations"):
            raise InputError(f"ig_over must be inputs or activations, got {self.ig_over!r}")
        if self.metric not in ("kl", "logit_diff"):
            raise InputError(f"metric must be kl or logit_diff, got {self.metric!r}")


@dataclass(frozen=True)
class Problem:
    """What a discovery method runs on."""

    model: Transformer
    target: Tensor
    replacement: Replacement
    distance: Metric  # ACDC: 0 for the full model
    score: Metric  # EAP and faithfulness: the task metric
    attention_mask: Tensor | None


class Drop:
    """metric(full model) - metric(patched): how much of a task metric is lost."""

    def __init__(self, metric: Metric, full: float) -> None:
        self.metric, self.full, self.name = metric, full, f"{metric.name}_drop"

    def __call__(self, logits: Tensor) -> Tensor:
        return self.full - self.metric(logits)


def problem(settings: Settings, device: str = "cpu") -> Problem:
    from workbench.api import open_checkpoint

    ckpt = open_checkpoint(settings.model, device=device)
    if ckpt.meta.get("task") == "rasp":
        return _rasp_problem(ckpt.model, ckpt.meta["rasp"], settings)
    return _task_problem(ckpt.model, ckpt.meta.get("task"), settings)


def _task_problem(model: Transformer, spec: Any, settings: Settings) -> Problem:
    from workbench.tasks import make_task

    if settings.task is None and not isinstance(spec, dict):
        raise InputError(f"{settings.model} was not trained on a built-in task: pass --task")
    task = make_task(settings.task) if settings.task else make_task(spec["name"], **spec["params"])
    gen = torch.Generator().manual_seed(settings.seed)
    pairs = task.pairs(settings.n_prompts, gen)
    device = model.cfg.device
    clean = pairs.clean.to(device)
    with torch.inference_mode():
        clean_logits = model(clean)
    task_metric = LogitDiff(pairs.answer, pairs.wrong, pairs.read_at)
    ablation = settings.ablation or "patch"
    if ablation == "patch":
        replacement = Replacement.of("patch", source=pairs.corrupted)
    else:
        reference = task.pairs(settings.n_prompts, gen).clean
        replacement = Replacement.of(ablation, reference=reference, seed=settings.seed)
    if settings.metric == "kl":
        distance: Metric = KLToClean(clean_logits, pairs.read_at)
    else:
        full = float(task_metric(clean_logits[None])[0])
        distance = Drop(task_metric, full)
    return Problem(model, clean, replacement, distance, task_metric, None)


def _rasp_problem(model: Transformer, meta: dict, settings: Settings) -> Problem:
    """Every length 1..max_seq_len (n_prompts inputs each), right-padded, BOS first."""
    rng = random.Random(settings.seed)
    vocab, max_len = meta["vocab"], meta["max_seq_len"]
    rows, masks = [], []
    for n in range(1, max_len + 1):
        for _ in range(settings.n_prompts):
            ids = [0] + [1 + rng.randrange(len(vocab)) for _ in range(n)]
            rows.append(ids + [0] * (max_len - n))
            masks.append([1] * (n + 1) + [0] * (max_len - n))
    device = model.cfg.device
    tokens, mask = torch.tensor(rows, device=device), torch.tensor(masks, device=device)
    with torch.inference_mode():
        reference = model(tokens, attention_mask=mask)
    kind = "mse" if meta["numerical"] else "kl"
    distance = OutputDistance(reference, kind, start=1, valid=mask)
    answer = reference.argmax(-1)

    def answer_logit(logits: Tensor) -> Tensor:  # EAP: the logit of the full model's answer
        picked = logits.gather(-1, answer[..., None].to(logits.device))[..., 0]
        return (picked[:, 1:] * mask[:, 1:]).sum() / mask[:, 1:].sum()

    ablation = settings.ablation or "zero"
    if ablation != "zero":
        raise InputError("a compiled RASP program is ablated with zeros (--ablation zero)")
    return Problem(
        model, tokens, Replacement.of("zero"), distance, PerConfig(answer_logit, "answer"), mask
    )


def run(
    store: JobStore,
    job_id: str,
    settings: Settings,
    *,
    device: str = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
) -> Circuit:
    """Run (or resume) the job; everything it produces is written to the store as it goes."""
    p = problem(settings, device)
    graph = build_graph(p.model.config)
    total = len(graph.edges)
    try:
        if settings.method == "acdc":
            circuit = _run_acdc(store, job_id, settings, p, graph, on_progress)
        else:
            circuit = _run_attribution(settings, p, graph)
            store.checkpoint(job_id, scores=circuit.scores, done=total, total=total)
        _store_faithfulness(store, job_id, p, circuit, graph)
    except Exception as error:
        store.fail(job_id, f"{type(error).__name__}: {error}")
        raise
    store.finish(job_id, {**_jsonable(circuit), "graph": {"n_edges": total}})
    return circuit


def _run_acdc(store, job_id, settings, p: Problem, graph, on_progress) -> Circuit:
    state = store.state(job_id)
    step = [len(state.get("scores", {}))]

    def progress(done: int, total: int) -> None:
        new = {k: state["scores"][k] for k in list(state["scores"])[step[0] :]}
        step[0] = done
        curve = ("distance", done, float(len(state["removed"])), state["distance"])
        store.checkpoint(job_id, state=state, scores=new, curve=curve, done=done, total=total)
        if on_progress is not None:
            on_progress(done, total)

    return acdc(
        p.model,
        p.target,
        p.replacement,
        p.distance,
        threshold=settings.threshold,
        graph=graph,
        batch_size=settings.batch_size,
        attention_mask=p.attention_mask,
        progress=progress,
        state=state,
    )


def _run_attribution(settings: Settings, p: Problem, graph) -> Circuit:
    method = eap if settings.method == "eap" else eap_ig
    options: dict[str, Any] = {"graph": graph, "attention_mask": p.attention_mask}
    if method is eap_ig:
        options |= {"steps": settings.steps, "over": settings.ig_over}
    circuit = method(p.model, p.target, p.replacement, p.score, **options)
    if settings.top_k is not None:
        kept = circuit.top(settings.top_k)
    else:
        kept = [e for e, s in circuit.scores.items() if s >= settings.threshold]
    order = {e.name: i for i, e in enumerate(graph.edges)}
    return Circuit(
        circuit.method,
        tuple(sorted(kept, key=order.get)),
        circuit.scores,
        circuit.metric,
        {**circuit.settings, "top_k": settings.top_k, "threshold": settings.threshold},
    )


def _store_faithfulness(store, job_id, p: Problem, circuit: Circuit, graph) -> None:
    n = len(graph.edges)
    counts = sorted({0, len(circuit.edges), n, *(max(1, n * f // 100) for f in (1, 5, 20, 50))})
    curve = faithfulness(
        p.model,
        p.target,
        p.replacement,
        p.score,
        circuit,
        counts,
        graph=graph,
        attention_mask=p.attention_mask,
    )
    for step, (k, value) in enumerate(zip(curve.edges_kept, curve.metric, strict=True)):
        store.checkpoint(job_id, curve=("faithfulness", step, float(k), float(value)))


def _jsonable(circuit: Circuit) -> dict[str, Any]:
    out = asdict(circuit)
    out["settings"] = {k: v for k, v in circuit.settings.items() if k != "signed"}
    return out


def versions() -> dict[str, str]:
    from workbench.checkpoint import versions as core_versions

    return core_versions()


# ----- sweeps ----------------------------------------------------------------------------------


def sweep(
    models: list[str],
    methods: list[str],
    *,
    tasks: list[str | None] | None = None,
    thresholds: list[float] | None = None,
    top_ks: list[int] | None = None,
    **common: Any,
) -> list[Settings]:
    """Every combination of models x methods x tasks x cut-offs, each checked. ACDC takes the
    thresholds; EAP and EAP-IG the top-k values (or, without any, the thresholds)."""
    out = []
    for model in models:
        for method in methods:
            for task in tasks or [None]:
                if method == "acdc" or not top_ks:
                    cuts = [{"threshold": t} for t in thresholds or [None]]
                else:
                    cuts = [{"top_k": k} for k in top_ks]
                for cut in cuts:
                    settings = Settings(model, method, task, **cut, **common)
                    settings.check()
                    out.append(settings)
    return out


def run_sweep(
    store_path: str,
    settings: list[Settings],
    *,
    backend: str = "local",
    address: str | None = None,
    device: str = "cpu",
) -> list[tuple[str, int]]:
    """Create a job per setting in the store, then run them here one by one (`local`) or as
    Ray tasks (`ray`: a local cluster, or the one at `address`); every job writes to the same
    store. Returns (job id, edges kept) per setting."""
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r}; choose local or ray")
    store = JobStore(store_path)
    ids = [store.create(KIND, vars(s), versions()) for s in settings]
    if backend == "local":
        return [
            (i, len(run(store, i, s, device=device).edges))
            for i, s in zip(ids, settings, strict=True)
        ]
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(_run_remote)
        futures = [
            remote.remote(store_path, i, vars(s), device)
            for i, s in zip(ids, settings, strict=True)
        ]
        return list(ray.get(futures))
    finally:
        if started:
            ray.shutdown()


def _run_remote(store_path: str, job_id: str, settings: dict, device: str) -> tuple[str, int]:
    """One job on a Ray worker (the store is a file every worker can reach)."""
    circuit = run(JobStore(store_path), job_id, Settings(**settings), device=device)
    return job_id, len(circuit.edges)
