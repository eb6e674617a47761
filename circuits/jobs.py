"""Circuit discovery as a resumable job: what `workbench discover` runs. Settings, progress,
edge scores, the metric's trajectory, the faithfulness curve and versions go into the job
store (`workbench.store`) as they are produced; ACDC saves its state after every batch, so a
killed job resumes where it stopped (`workbench discover --resume ID`).

Prompts come from the model's built-in task (clean/corrupted pairs: removed edges carry the
corrupted run's activations by default), or, for a compiled RASP program, every length up
to its max_seq_len with zero ablation (the ACDC paper's setting for tracr programs).

Bad input fails before a job row exists: `prepare` checks the settings and builds the
problem (model, task, prompts, ablation, metric, device) first, and a sweep checks every
setting before it creates any job. A job runs under a lease (`workbench.lease`) that its
heartbeat renews, so a second process refuses to run a live job."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from circuits.ablation import Ablation, Replacement
from circuits.acdc import ACDC_BATCH, AcdcState, acdc
from circuits.circuit import Circuit, in_graph_order
from circuits.eap import eap, eap_ig
from circuits.evaluation import faithfulness
from circuits.metrics import KLToClean, LogitDiff, Metric, OutputDistance, PerConfig
from circuits.options import Distance, IgOver, Method, parse
from circuits.problem import Problem
from circuits.tasks import check_task_fits
from workbench.checkpoint import Checkpoint
from workbench.cli_options import SEED_RANGE
from workbench.devices import resolve_device
from workbench.errors import InputError, JobLeaseError, WorkbenchError, check_value
from workbench.model import Transformer
from workbench.store import LEASE_SECONDS, Job, JobStore, check_path

METHODS = tuple(Method)
KIND = "discover"


@dataclass(frozen=True)
class Settings:
    """A discovery job's settings. Text (from the CLI, the job store, the dashboard) is
    parsed into the options when the settings are made; `check` checks the numbers."""

    model: str
    method: Method
    task: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    ablation: Ablation | None = None  # default: patch (task), zero (compiled RASP)
    metric: Distance = Distance.KL  # ACDC's distance: KL, or the drop of the logit diff
    n_prompts: int = 16
    seed: int = 0
    batch_size: int = ACDC_BATCH
    steps: int = 5  # EAP-IG
    ig_over: IgOver = IgOver.INPUTS  # EAP-IG: inputs or activations

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("method", Method.parse(self.method))
        if self.ablation is not None:
            put("ablation", Ablation.parse(self.ablation))
        put(
            "metric", parse(Distance, self.metric, "--metric must be kl or logit_diff, got {value}")
        )
        error = "--ig-over must be inputs or activations, got {value}"
        put("ig_over", parse(IgOver, self.ig_over, error))

    def check(self) -> None:
        """Every number's value, without loading anything; messages name the CLI option."""
        if self.method is Method.ACDC and self.threshold is None:
            raise InputError("acdc needs --threshold (the largest metric cost of removing an edge)")
        if self.method is not Method.ACDC and self.top_k is None and self.threshold is None:
            raise InputError(f"{self.method} needs --top-k or --threshold to choose the circuit")
        if self.threshold is not None:  # a metric cost (ACDC) or an edge score (a magnitude)
            ok = math.isfinite(self.threshold) and self.threshold >= 0
            check_value(ok, "--threshold", self.threshold, "a finite number >= 0")
        if self.top_k is not None:
            check_value(self.top_k >= 1, "--top-k", self.top_k, "a number of edges >= 1")
        check_value(self.n_prompts >= 1, "--n-prompts", self.n_prompts, "at least 1")
        low, high = SEED_RANGE["min"], SEED_RANGE["max"]
        check_value(low <= self.seed <= high, "--seed", self.seed, f"an integer in [{low}, {high}]")
        check_value(self.batch_size >= 1, "--batch-size", self.batch_size, "at least 1")
        check_value(self.steps >= 1, "--steps", self.steps, "at least 1 (EAP-IG steps)")

    @classmethod
    def of(cls, job: Job) -> Settings:
        """The settings a stored job was started with."""
        try:
            return cls(**job.settings)
        except TypeError:
            raise InputError(
                f"job {job.id} was written by another version of the workbench (settings: "
                f"{', '.join(sorted(job.settings))}): start a new job"
            ) from None


@dataclass(frozen=True)
class Prepared:
    """What a discovery job runs on: the problem, whose metric is ACDC's distance (0 for the
    full model), and the task metric that EAP and faithfulness score (`scored`)."""

    problem: Problem
    score: Metric

    @property
    def scored(self) -> Problem:
        return self.problem.with_metric(self.score)


class Drop:
    """metric(full model) - metric(patched): how much of a task metric is lost."""

    def __init__(self, metric: Metric, full: float) -> None:
        self.metric, self.full, self.name = metric, full, f"{metric.name}_drop"

    def __call__(self, logits: Tensor) -> Tensor:
        return self.full - self.metric(logits)


def prepare(settings: Settings, device: str = "cpu", ckpt: Checkpoint | None = None) -> Prepared:
    """Check `settings` and build what the job runs on (`ckpt`: the model, already open).
    Every input error is raised here, before a job row need exist."""
    settings.check()
    if ckpt is None:
        from workbench.api import open_checkpoint

        ckpt = open_checkpoint(settings.model, device=device)
    if ckpt.meta.get("task") == "rasp":
        prepared = _rasp_problem(ckpt.model, ckpt.meta["rasp"], settings)
    else:
        prepared = _task_problem(ckpt, settings)
    _check_method(settings, prepared.problem)
    return prepared


def _check_method(settings: Settings, p: Problem) -> None:
    """What the method needs of the problem, checked before the job runs."""
    if settings.method is not Method.EAP_IG:
        return
    if settings.ig_over is IgOver.INPUTS and p.replacement.source is None:
        raise InputError(
            "eap-ig over the inputs interpolates from the corrupted prompts, so it needs "
            f"--ablation patch (here {p.replacement.ablation.value}): pass --ig-over activations"
        )
    if settings.ig_over is IgOver.ACTIVATIONS and p.graph.post_norm:
        raise InputError(
            f"eap-ig over activations needs an additive stream, and {settings.model} is "
            "post-norm (norms between sublayers): pass --ig-over inputs"
        )


def check_all(settings: list[Settings]) -> None:
    """Build every setting's problem on the CPU and drop it: a sweep's bad input fails before
    it creates a job. One model is open at a time (a sweep lists settings model by model)."""
    from workbench.api import open_checkpoint

    opened: tuple[str, Checkpoint] | None = None
    for s in settings:
        s.check()  # before the model loads
        if opened is None or opened[0] != s.model:
            opened = (s.model, open_checkpoint(s.model))
        prepare(s, ckpt=opened[1])


def _task_problem(ckpt: Checkpoint, settings: Settings) -> Prepared:

    model = ckpt.model
    task = ckpt.task(settings.task)
    if task is None:
        raise InputError(f"{settings.model} was not trained on a built-in task: pass --task")
    check_task_fits(model, task)
    gen = torch.Generator().manual_seed(settings.seed)
    pairs = task.pairs(settings.n_prompts, gen)
    device = model.cfg.device
    clean = pairs.clean.to(device)
    with torch.inference_mode():
        clean_logits = model(clean)
    task_metric = LogitDiff(pairs.answer, pairs.wrong, pairs.read_at)
    ablation = settings.ablation or Ablation.PATCH
    if ablation is Ablation.PATCH:
        replacement = Replacement.of(ablation, source=pairs.corrupted)
    else:
        reference = task.pairs(settings.n_prompts, gen).clean
        replacement = Replacement.of(ablation, reference=reference, seed=settings.seed)
    if settings.metric is Distance.KL:
        distance: Metric = KLToClean(clean_logits, pairs.read_at)
    else:
        full = float(task_metric(clean_logits[None])[0])
        distance = Drop(task_metric, full)
    return Prepared(Problem(model, clean, replacement, distance), task_metric)


def _rasp_problem(model: Transformer, meta: dict, settings: Settings) -> Prepared:
    """Every length 1..max_seq_len (n_prompts inputs each), right-padded, BOS first."""
    if settings.task is not None:
        raise InputError(
            f"{settings.model} is a compiled RASP program, whose inputs are every length up to "
            "its max_seq_len: drop --task"
        )
    if (settings.ablation or Ablation.ZERO) is not Ablation.ZERO:
        raise InputError("a compiled RASP program is ablated with zeros (--ablation zero)")
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

    score = PerConfig(answer_logit, "answer")
    zero = Replacement.of(Ablation.ZERO)
    return Prepared(Problem(model, tokens, zero, distance, attention_mask=mask), score)


def run(
    store: JobStore,
    job_id: str,
    settings: Settings,
    *,
    device: str = "cpu",
    on_progress: Callable[[int, int], None] | None = None,
    prepared: Prepared | None = None,
) -> Circuit:
    """Run (or resume) the job whose lease `store` holds (`JobStore.create` or `acquire`);
    everything it produces is written to the store as it goes, while a heartbeat renews
    the lease. `prepared`: the `prepare`d problem, when the caller built it already.

    An error marks the job failed; Ctrl-C ends the lease, so it can be resumed at once;
    a lease lost to another process leaves the job to that process."""
    with store.heartbeat(job_id) as heartbeat:
        try:
            p = prepared or prepare(settings, resolve_device(device))
            total = len(p.problem.graph.edges)
            if settings.method is Method.ACDC:
                circuit = _run_acdc(store, job_id, settings, p.problem, on_progress)
            else:
                circuit = _run_attribution(settings, p.scored)
                store.checkpoint(job_id, scores=circuit.scores, done=total, total=total)
            _store_faithfulness(store, job_id, p.scored, circuit)
            store.finish(job_id, {**_jsonable(circuit), "graph": {"n_edges": total}})
        except JobLeaseError:
            raise
        except Exception as error:
            store.fail(job_id, f"{type(error).__name__}: {error}")
            raise
        except BaseException:
            heartbeat.stop()  # a beat committing after the release would take the lease back
            with contextlib.suppress(WorkbenchError):  # else the lease simply expires
                store.release(job_id)
            raise
    return circuit


def _run_acdc(store, job_id, settings: Settings, problem: Problem, on_progress) -> Circuit:
    """ACDC from the job's saved state; the state, the new scores and a point of the
    distance curve are saved after every batch."""
    state = AcdcState.from_json(store.state(job_id))
    total = len(problem.graph.edges)
    saved = [len(state.scores)]

    def save(now: AcdcState) -> None:
        done = len(now.scores)
        new = dict(list(now.scores.items())[saved[0] :])
        saved[0] = done
        curve = ("distance", done, float(len(now.removed)), now.distance)
        store.checkpoint(
            job_id, state=now.to_json(), scores=new, curve=curve, done=done, total=total
        )

    assert settings.threshold is not None  # Settings.check: acdc needs one
    return acdc(
        problem,
        threshold=settings.threshold,
        batch_size=settings.batch_size,
        state=state,
        on_state=save,
        progress=on_progress,
    )


def _run_attribution(settings: Settings, problem: Problem) -> Circuit:
    if settings.method is Method.EAP:
        circuit = eap(problem)
    else:
        circuit = eap_ig(problem, steps=settings.steps, over=settings.ig_over)
    if settings.top_k is not None:
        kept = circuit.top(settings.top_k)
    else:
        threshold = settings.threshold
        assert threshold is not None  # Settings.check: a top-k or a threshold
        kept = [e for e, s in circuit.scores.items() if s >= threshold]
    return Circuit(
        circuit.method,
        in_graph_order(problem.graph, kept),
        circuit.scores,
        circuit.metric,
        {**circuit.settings, "top_k": settings.top_k, "threshold": settings.threshold},
    )


def _store_faithfulness(store, job_id, problem: Problem, circuit: Circuit) -> None:
    n = len(problem.graph.edges)
    counts = sorted({0, len(circuit.edges), n, *(max(1, n * f // 100) for f in (1, 5, 20, 50))})
    curve = faithfulness(problem, circuit, counts)
    for step, (k, value) in enumerate(zip(curve.edges_kept, curve.metric, strict=True)):
        store.checkpoint(job_id, curve=("faithfulness", step, float(k), float(value)))


def _jsonable(circuit: Circuit) -> dict[str, Any]:
    out = asdict(circuit)
    out["settings"] = {k: v for k, v in circuit.settings.items() if k != "signed"}
    return out


def stored_circuit(job: Job) -> Circuit:
    """A finished job's circuit, as the store keeps it."""
    if job.result is None:
        raise InputError(f"job {job.id} is {job.status}, not done: no circuit to draw yet")
    r = job.result
    return Circuit(r["method"], tuple(r["edges"]), r["scores"], r["metric"], r["settings"])


def versions() -> dict[str, str]:
    from workbench.checkpoint import versions as core_versions

    return core_versions()


# ----- sweeps ----------------------------------------------------------------------------------


def sweep(
    models: list[str],
    methods: Sequence[str | Method],
    *,
    tasks: Sequence[str | None] | None = None,
    thresholds: list[float] | None = None,
    top_ks: list[int] | None = None,
    **common: Any,
) -> list[Settings]:
    """Every combination of models x methods x tasks x cut-offs, each checked. ACDC takes the
    thresholds; EAP and EAP-IG the top-k values (or, without any, the thresholds)."""
    out = []
    chosen = [Method.parse(m) for m in methods]
    for model in models:
        for method in chosen:
            for task in tasks or [None]:
                if method == Method.ACDC or not top_ks:
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
    lease: float = LEASE_SECONDS,
) -> list[tuple[str, int]]:
    """Check every setting, create a queued job per setting in the store, then run them
    here one by one (`local`) or as Ray tasks (`ray`: a local cluster, or the one at
    `address`); each run takes its job's lease, and every job writes to the same store.
    `device` is checked here for `local`, and on each worker for `ray` (`auto` means each
    worker's own GPU). Returns (job id, edges kept) per setting."""
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r}; choose local or ray")
    device = resolve_device(device, here=backend == "local")
    check_path(Path(store_path), must_exist=False)
    check_all(settings)
    if backend == "local":
        store = JobStore(store_path, lease=lease)
        ids = [store.create(KIND, vars(s), versions(), queued=True) for s in settings]
        out = []
        for i, s in zip(ids, settings, strict=True):
            store.acquire(i)
            out.append((i, len(run(store, i, s, device=device).edges)))
        return out
    return _ray_sweep(store_path, settings, address, device, lease)


def _ray_sweep(store_path, settings, address, device, lease) -> list[tuple[str, int]]:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError(
                f"cannot start or reach the Ray cluster ({address}): {error}"
            ) from None
    try:
        store = JobStore(store_path, lease=lease)
        ids = [store.create(KIND, vars(s), versions(), queued=True) for s in settings]
        remote = ray.remote(_run_remote)
        futures = [
            remote.remote(store_path, i, vars(s), device, lease)
            for i, s in zip(ids, settings, strict=True)
        ]
        return list(ray.get(futures))
    finally:
        if started:
            ray.shutdown()


def _run_remote(
    store_path: str, job_id: str, settings: dict, device: str, lease: float
) -> tuple[str, int]:
    """One job on a Ray worker (the store is a file every worker can reach)."""
    store = JobStore(store_path, create=False, lease=lease)
    store.acquire(job_id)
    circuit = run(store, job_id, Settings(**settings), device=device)
    return job_id, len(circuit.edges)
