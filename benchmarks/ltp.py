"""Learned Transformer Programs against the authors' code (princeton-nlp/TransformerPrograms).

`speed`: training time per epoch, ours and theirs, on the same data (their generator, seed 0)
at the same settings (their scripts' RASP setting: 3 layers, 4 + 4 heads, 2 + 2 MLPs, d_mlp
64, batch 512, Adam 5e-2, Gumbel-softmax from tau 3), one CPU thread each, the median of
`--epochs` epochs after a warm-up epoch. Two measures: the training steps alone (forward,
backward, optimiser step, temperature set per step, for every batch of the epoch), and their
`run_training` epoch as shipped (it also evaluates the train, val and test splits after every
epoch; ours evaluates the validation split). Ours is timed as `learn` trains on the CPU, its
step compiled (the warm-up epoch's extra time, the one-time compile, is reported apart), and
uncompiled. Theirs runs in its own environment (torch 2.13 CPU, their requirements.txt plus
seqeval), via `--peer-python` and `--peer-repo`.

`accuracy`: train `--seeds` and print the argmax model's test accuracy per seed, best of
seeds, against the paper's Table 1; at their RASP script's common setting (`--shape script`,
our `LearnSettings` defaults) or at the shape of the program they ship for the task, the run
behind its Table 1 number (`--shape table1`: `tasks.TABLE_1_SHAPES`). With `--out DIR` each run is
kept in DIR/TASK-seedN or DIR/TASK-table1-seedN (an interrupted run resumes there; a finished
one is read back, not retrained), ready for `workbench decompile DIR/... --check`. With
`--peer-python` and `--peer-repo` the same seeds and shape train with their `src/run.py` (their
RASP script's arguments, on the CPU) in DIR/theirs-TASK-...; their final argmax model's test
accuracy is read from its results.csv. `--stop-at` ends the seeds at the first
that reaches it (a test accuracy in %). Our runs train as `learn` does by default (compiled on
the CPU); `--no-compile` trains uncompiled.

    python benchmarks/ltp.py speed --peer-python /tmp/tpenv/bin/python \\
        --peer-repo /tmp/tp/TransformerPrograms --tasks hist dyck2
    python benchmarks/ltp.py accuracy --task hist --seeds 0 1 2 --shape table1 --out runs/ltp
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from rasp.learned import tasks
from rasp.learned.model import ProgramModel
from rasp.learned.train import (
    META_FILE,
    LearnSettings,
    TrainStep,
    accuracy,
    learn,
    load,
    train_epoch,
)

TABLE_1 = {  # the paper's Table 1, Transformer Programs, test accuracy (%)
    "reverse": 99.79,
    "hist": 100.0,
    "double_hist": 98.40,
    "sort": 99.83,
    "most_freq": 75.69,
    "dyck1": 99.30,
    "dyck2": 99.09,
}

# Their side: their data, their model and the inner loop of their run_training, timed.
PEER = r"""
import json, statistics, sys, time
import numpy as np, torch
from torch.optim import Adam
from torch.utils.data import DataLoader
sys.path.insert(0, sys.argv[1])
from src.utils import data_utils
from src.models.programs import TransformerProgramModel, gumbel_soft
from src.run import run_training

torch.set_num_threads(1)
task, epochs = sys.argv[2], int(sys.argv[3])
dyck = task.startswith("dyck")
vocab, length, shortest = ((1 if task == "dyck1" else 2), 16, 16) if dyck else (8, 8, 1)
(train, test, val, idx_w, w_idx, idx_t, t_idx, X_train, Y_train, X_test, Y_test, X_val,
 Y_val) = data_utils.get_dataset(name=task, vocab_size=vocab, dataset_size=20000,
 min_length=shortest, max_length=length, seed=0, get_val=True, unique=1)
torch.manual_seed(0)
model = TransformerProgramModel(
    d_vocab=len(idx_w), d_vocab_out=len(idx_t), n_vars_cat=1, n_vars_num=1, d_var=length,
    n_heads_cat=4, n_heads_num=4, d_mlp=64, n_cat_mlps=2, n_num_mlps=2, mlp_vars_in=2,
    n_layers=3, n_ctx=X_train.shape[1], sample_fn=gumbel_soft, attention_type="cat",
    rel_pos_bias="fixed", unembed_mask=np.array([t in ("<unk>", "<pad>") for t in idx_t]),
    one_hot_embed=True, count_only=True, selector_width=0)
opt = Adam([p for p in model.parameters() if p.requires_grad], lr=5e-2)
loader = DataLoader(list(zip(X_train, Y_train)), batch_size=512, shuffle=True)
temps = np.geomspace(3.0, 0.01, 250)

def steps(epoch):
    ttemps = np.geomspace(temps[epoch], temps[epoch + 1], len(loader))
    model.train()
    for ttemp, (x, y) in zip(ttemps, loader):
        model.set_temp(ttemp)
        m = (x != 0).float()
        mask = (m.unsqueeze(-1) @ m.unsqueeze(-2)).bool()
        if dyck:
            mask = torch.tril(mask)
        log_probs = model(x, mask=mask).log_softmax(-1)
        losses = -log_probs.gather(2, y.unsqueeze(-1)).squeeze(-1)
        losses = losses.masked_fill(y == 0, 0.0).sum(-1) / (y != 0).sum(-1)
        loss = losses.mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        model.zero_grad()

def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start

steps(0)
step_times = [timed(lambda e=e: steps(e)) for e in range(1, epochs + 1)]
full = [timed(lambda: run_training(model, opt, X_train, Y_train, eval_splits=[
    ("val", X_val, Y_val), ("test", X_test, Y_test)], batch_size=512, n_epochs=1,
    temps=[0.5], autoregressive=dyck)) for _ in range(epochs)]
print(json.dumps({"steps": statistics.median(step_times), "epoch": statistics.median(full),
                  "examples": len(X_train)}))
"""


def ours(task: str, epochs: int, compiled: bool) -> dict[str, float]:
    """Our epoch times; `warm-up`: the first epoch's time beyond a later one's (compiling)."""
    torch.set_num_threads(1)
    settings = LearnSettings(task=task)
    data = tasks.load(task, seed=0)
    torch.manual_seed(0)
    model = ProgramModel(settings.shape(data))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    x, y = torch.as_tensor(data.train.inputs), torch.as_tensor(data.train.targets)
    per_epoch = math.ceil(len(x) / settings.batch_size)
    temps = settings.temperatures(per_epoch)
    shuffle, noise = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    step = TrainStep(model, opt, noise, batch_size=settings.batch_size, compiled=compiled)

    def steps(epoch: int) -> None:
        batches = torch.randperm(len(x), generator=shuffle).split(settings.batch_size)
        train_epoch(step, x, y, batches, temps[epoch * per_epoch :][:per_epoch])

    def full(epoch: int) -> None:  # what learn() does in an epoch: the steps, val accuracy
        steps(epoch)
        accuracy(model, data.val, "cpu")

    def timed(fn, epoch: int) -> float:
        start = time.perf_counter()
        fn(epoch)
        return time.perf_counter() - start

    first = timed(steps, 0)
    assert (step.compiled is not None) == compiled, "the step did not compile"
    step_times = [timed(steps, e) for e in range(1, epochs + 1)]
    full_times = [timed(full, e) for e in range(epochs + 1, 2 * epochs + 1)]
    return {
        "steps": statistics.median(step_times),
        "epoch": statistics.median(full_times),
        "warm-up": first - statistics.median(step_times),
        "examples": len(x),
    }


def speed(args: argparse.Namespace) -> None:
    print(
        "| task | train examples | ours: steps / epoch (s) | uncompiled (s) | theirs (s) | ratio "
        "| uncompiled ratio | ours: epoch incl. evaluation (s) | theirs (s) | ratio | ours: "
        "compiling, once (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        mine, eager = ours(task, args.epochs, compiled=True), ours(task, args.epochs, False)
        done = subprocess.run(
            [args.peer_python, "-c", PEER, args.peer_repo, task, str(args.epochs)],
            capture_output=True,
            text=True,
            check=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        assert theirs["examples"] == mine["examples"], (theirs, mine)
        print(
            f"| {task} | {mine['examples']} | {mine['steps']:.2f} | {eager['steps']:.2f} | "
            f"{theirs['steps']:.2f} | {theirs['steps'] / mine['steps']:.2f}x | "
            f"{theirs['steps'] / eager['steps']:.2f}x | {mine['epoch']:.2f} | "
            f"{theirs['epoch']:.2f} | {theirs['epoch'] / mine['epoch']:.2f}x | "
            f"{mine['warm-up']:.0f} |",
            flush=True,
        )


def theirs_trained(args: argparse.Namespace, settings: LearnSettings, out: Path) -> float:
    """Their `src/run.py` with their RASP script's arguments at `settings` (task, seed,
    shape), in their environment on the CPU; its final argmax model's test accuracy. A run
    finished in `out` is read back; their output goes to out/peer.log."""
    results = out / "results.csv"
    if not results.is_file():
        spec = tasks.task_spec(settings.task)
        s = settings
        values = {  # their scripts/rasp.sh and dyck.sh, at these settings
            "dataset": s.task,
            "vocab_size": spec.vocab_size,
            "dataset_size": s.size,
            "min_length": spec.min_length,
            "max_length": spec.max_length,
            "n_epochs": s.epochs,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "gumbel_samples": 1,
            "sample_fn": "gumbel_soft",
            "tau_init": s.tau_start,
            "tau_end": s.tau_end,
            "tau_schedule": "geomspace",
            "n_vars_cat": 1,
            "d_var": spec.max_length,
            "n_vars_num": 1,
            "n_layers": s.n_layers,
            "n_heads_cat": s.cat_heads,
            "n_heads_num": s.num_heads,
            "n_cat_mlps": s.cat_mlps,
            "n_num_mlps": s.num_mlps,
            "attention_type": "cat",
            "rel_pos_bias": "fixed",
            "dropout": 0.0,
            "mlp_vars_in": 2,
            "d_mlp": s.d_mlp,
            "selector_width": 0,
            "seed": s.seed,
            "unique": 1,
            "device": "cpu",
            "output_dir": out,
        }
        switches = ["--one_hot_embed", "--count_only"]
        switches += ["--autoregressive"] if spec.autoregressive else []
        command = [args.peer_python, "src/run.py", *switches]
        command += [str(x) for key, value in values.items() for x in (f"--{key}", value)]
        out.mkdir(parents=True, exist_ok=True)
        with (out / "peer.log").open("w") as log:
            env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
            subprocess.run(command, cwd=args.peer_repo, env=env, check=True, stdout=log, stderr=log)
    with results.open() as f:
        final = [
            r for r in csv.DictReader(f) if r["split"] == "test" and r["sample_fn"] == "argmax"
        ]
    return float(final[-1]["acc"])


def accuracy_table(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        start = time.perf_counter()
        shape = tasks.TABLE_1_SHAPES[args.task] if args.shape == "table1" else {}
        name = f"{args.task}-{'table1-' if shape else ''}seed{seed}"
        out = args.out / name if args.out else None
        settings = LearnSettings(task=args.task, seed=seed, **shape)
        if args.peer_python:
            assert out is not None, "--peer-python needs --out (their run writes there)"
            metrics = {
                "test_accuracy": theirs_trained(args, settings, out.with_name(f"theirs-{name}"))
            }
        elif out is not None and (out / META_FILE).is_file():
            meta = load(out)[1]
            assert meta["settings"] == dataclasses.asdict(settings), (out, meta["settings"])
            metrics = meta["metrics"]
        else:
            metrics = learn(settings, out, progress=False, compiled=args.compiled).metrics
        results.append(100 * metrics["test_accuracy"])
        print(
            f"{args.task} seed {seed}: test {results[-1]:.2f}% "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        if args.stop_at is not None and results[-1] >= args.stop_at:
            break
    print(
        f"| {args.task} | {', '.join(f'{r:.2f}' for r in results)} | {max(results):.2f} | "
        f"{TABLE_1[args.task]:.2f} | {max(results) - TABLE_1[args.task]:+.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--peer-python", required=True)
    s.add_argument("--peer-repo", required=True)
    s.add_argument("--tasks", nargs="+", default=["hist", "dyck2"])
    s.add_argument("--epochs", type=int, default=3)
    a = sub.add_parser("accuracy")
    a.add_argument("--task", required=True, choices=sorted(TABLE_1))
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument(
        "--shape",
        choices=["script", "table1"],
        default="script",
        help="their RASP script's common setting, or the shape of their Table 1 program",
    )
    a.add_argument(
        "--out", type=Path, help="keep (and resume) runs in OUT/TASK-seedN (OUT/TASK-table1-seedN)"
    )
    a.add_argument("--stop-at", type=float, help="stop at the first seed reaching this test %%")
    a.add_argument(
        "--no-compile",
        dest="compiled",
        action="store_false",
        default=None,
        help="train uncompiled",
    )
    a.add_argument("--peer-python", help="train with their code instead (OUT/theirs-...)")
    a.add_argument("--peer-repo", help="a clone of their repository (with --peer-python)")
    args = parser.parse_args()
    if args.command == "accuracy" and bool(args.peer_python) != bool(args.peer_repo):
        parser.error("--peer-python and --peer-repo go together")
    speed(args) if args.command == "speed" else accuracy_table(args)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
