"""`workbench learn-program` and `workbench decompile`, registered with the RASP commands.

    workbench learn-program --task sort --layers 3 --cat-heads 4 --num-heads 4 \\
        --cat-mlps 2 --num-mlps 2 --seed 0 -o runs/sort-s0
    workbench learn-program --task hist --table1-shape --seed 1 -o runs/hist-s1
    workbench decompile runs/sort-s0 --check          # the listing, and model = program
    workbench decompile runs/sort-s0 --python > sort.py
    workbench decompile runs/sort-s0 --freeze runs/sort-s0-model   # a workbench checkpoint
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli_options import SEED_RANGE, DeviceOption, ThreadsOption
from workbench.errors import InputError, WorkbenchError


def register(cli: typer.Typer) -> None:
    from workbench.cli import console, device_option, fail, threads_option

    @cli.command("learn-program")
    def learn_program(
        task: Annotated[
            str, typer.Option(help="reverse, hist, double_hist, sort, most_freq, dyck1, dyck2.")
        ],
        out: Annotated[
            Path, typer.Option("-o", "--out", help="Output directory (resumes a run there).")
        ],
        layers: Annotated[int | None, typer.Option(min=1, help="Layers (default 3).")] = None,
        cat_heads: Annotated[
            int | None, typer.Option(min=0, help="Categorical heads per layer (default 4).")
        ] = None,
        num_heads: Annotated[
            int | None,
            typer.Option(min=0, help="Numerical (counting) heads per layer (default 4)."),
        ] = None,
        cat_mlps: Annotated[
            int | None, typer.Option(min=0, help="Categorical MLPs per layer (default 2).")
        ] = None,
        num_mlps: Annotated[
            int | None, typer.Option(min=0, help="Numerical MLPs per layer (default 2).")
        ] = None,
        table1_shape: Annotated[
            bool,
            typer.Option(
                "--table1-shape",
                help="The layers, heads and MLPs of the authors' program behind the task's "
                "Table 1 number (in place of the five shape options).",
            ),
        ] = False,
        d_mlp: Annotated[
            int, typer.Option(min=1, help="Hidden units of each MLP while training.")
        ] = 64,
        epochs: Annotated[int, typer.Option(min=1, help="Epochs.")] = 250,
        batch_size: Annotated[int, typer.Option(min=1, help="Batch size.")] = 512,
        lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 5e-2,
        seed: Annotated[int, typer.Option(**SEED_RANGE, help="Seed of data, init and noise.")] = 0,
        size: Annotated[
            int, typer.Option(min=10, help="Distinct examples (before the split).")
        ] = 20_000,
        device: DeviceOption = "cpu",
        threads: ThreadsOption = 1,
        force: Annotated[
            bool, typer.Option(help="Start over: delete the program or resume point in -o.")
        ] = False,
        compiled: Annotated[
            bool | None,
            typer.Option(
                "--compile/--no-compile",
                help="Run the training step through torch.compile: faster steps after a "
                "one-time compile; default: on the CPU for runs of at least 2,000 steps.",
            ),
        ] = None,
    ) -> None:
        """Train a Transformer Program (Friedman et al. 2023) on a task of the paper's
        Table 1, at the common setting of the authors' scripts by default, or at the shape of
        the program behind the task's Table 1 number (--table1-shape); an interrupted run
        resumes in the same -o."""
        from rasp.learned.train import LearnSettings, learn

        try:
            threads_option(threads)
            given = {
                "n_layers": layers,
                "cat_heads": cat_heads,
                "num_heads": num_heads,
                "cat_mlps": cat_mlps,
                "num_mlps": num_mlps,
            }
            shape = _shape(task, {k: v for k, v in given.items() if v is not None}, table1_shape)
            settings = LearnSettings(
                task=task,
                seed=seed,
                **shape,
                d_mlp=d_mlp,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                size=size,
            )
            result = learn(
                settings, out, device=device_option(device), force=force, compiled=compiled
            )
        except (WorkbenchError, ValueError) as exc:
            raise fail(exc) from None
        final = {k: v for k, v in result.metrics.items() if k != "history"}
        console.print(f"wrote {out}: {json.dumps(final)}", soft_wrap=True, markup=False)

    @cli.command("decompile")
    def decompile_command(
        run_dir: Annotated[Path, typer.Argument(help="A finished learn-program directory.")],
        python: Annotated[
            bool, typer.Option("--python", help="Print the program as Python.")
        ] = False,
        as_rasp: Annotated[
            bool,
            typer.Option(
                "--rasp",
                help="Print the program in the rasp language (a Python module that builds it).",
            ),
        ] = False,
        check: Annotated[
            bool,
            typer.Option(
                "--check",
                help="Check the program and the frozen model against the trained one on every "
                "token of the task's splits (exit 1 if they differ anywhere).",
            ),
        ] = False,
        freeze_to: Annotated[
            Path | None,
            typer.Option("--freeze", help="Write the frozen workbench model to this directory."),
        ] = None,
        compile_to: Annotated[
            Path | None,
            typer.Option(
                "--compile",
                help="Compile the RASP program back to weights (rasp.compiler) and write that "
                "model to this directory; with --check it is checked too.",
            ),
        ] = None,
        force: Annotated[
            bool,
            typer.Option(help="Replace existing checkpoints at --freeze/--compile (in one step)."),
        ] = False,
        threads: ThreadsOption = 1,
    ) -> None:
        """Read a learned Transformer Program back: its listing (default), Python source or
        RASP program, optionally checked, frozen into a workbench checkpoint and compiled
        back to weights from its RASP program."""
        from rasp.learned.decompile import decompile
        from rasp.learned.freeze import PROGRAM_META, freeze, program_meta
        from workbench import checkpoint
        from workbench.files import check_target

        try:
            threads_option(threads)
            if python and as_rasp:
                raise InputError("pass one of --python and --rasp (both print the program)")
            if freeze_to is not None and compile_to is not None and freeze_to == compile_to:
                raise InputError("--freeze and --compile name the same directory; pass two")
            for target in (freeze_to, compile_to):
                if target is not None:
                    check_target(target, force)
            found = decompile(run_dir)
            needed = as_rasp or check or compile_to is not None
            in_rasp = found.rasp() if needed else None
            compiled = found.compile(in_rasp) if compile_to is not None else None
            report = found.check(compiled=compiled, in_rasp=in_rasp) if check else None
            if freeze_to is not None:
                frozen = freeze(found.program, len(found.words), len(found.tags))
                meta = {
                    "learned_program": found.meta,
                    "vocab": list(found.words),
                    PROGRAM_META: program_meta(found.program),
                }
                checkpoint.save(frozen, freeze_to, meta, force=force)
            if compiled is not None and compile_to is not None:
                compiled.save(compile_to, force=force)
        except (WorkbenchError, ValueError) as exc:
            raise fail(exc) from None
        if python:
            print(found.python())
        elif as_rasp and in_rasp is not None:
            print(in_rasp.python(found.title))
        else:
            print(found.listing())
        if freeze_to is not None:
            console.print(f"# wrote the frozen model to {freeze_to}", markup=False)
        if compiled is not None:
            cfg = compiled.model.cfg
            console.print(
                f"# wrote the compiled RASP program to {compile_to} ({cfg.n_layers} layers, "
                f"d_model {cfg.d_model})",
                markup=False,
                soft_wrap=True,
            )
        if report is not None and not _reported(report):
            raise typer.Exit(code=1)


def _reported(report: dict) -> bool:
    """Print the check, one line per split; whether everything equals the model."""
    from workbench.cli import console

    for split, r in report.items():
        compiled_part = (
            f", the compiled RASP model on {r['compiled_disagrees']}"
            if "compiled_disagrees" in r
            else ""
        )
        console.print(
            f"# {split}: accuracy {r['accuracy']:.4f}; of {r['tokens']} tokens the program "
            f"differs from the model on {r['program_disagrees']}, the frozen model on "
            f"{r['frozen_disagrees']}, the RASP program on {r['rasp_disagrees']}{compiled_part}",
            markup=False,
            soft_wrap=True,
        )
    counts = [v for r in report.values() for k, v in r.items() if k.endswith("disagrees")]
    return not any(counts)


def _shape(task: str, given: dict[str, int], table1: bool) -> dict[str, int]:
    """The shape options given, or with `table1` the task's Table 1 shape (then none may be)."""
    if not table1:
        return given
    from rasp.learned import tasks

    tasks.task_spec(task)  # an unknown task is named as such
    if given:
        flags = ", ".join(
            "--" + ("layers" if k == "n_layers" else k.replace("_", "-")) for k in given
        )
        raise InputError(
            f"--table1-shape sets the layers, heads and MLPs itself; drop {flags}, or drop "
            "--table1-shape to choose the shape"
        )
    return dict(tasks.TABLE_1_SHAPES[task])
