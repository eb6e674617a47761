"""RASP programs on the dashboard: a shipped program (by name) or pasted text, parsed with
limits; its values per SOp on an input (the interpreter); compiled in a background run
(`app.background`, traced: stopped anywhere) with a small validation budget; kept in this server's memory by content
hash (a bounded number) and offered in the model registry under a name, so the attention page
opens it like any model; and ACDC on a compiled model, scored against its ground truth.

Nothing from the browser is a path: a shipped program is chosen by name among
`SHIPPED`, read from the package when the server starts."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasp as rasp_package
from app.background import Run, Runs, within
from app.checks import number, whole
from app.models import ModelRegistry
from app.prompts import checked_text
from circuits.evaluation import ROC
from rasp import rasp
from rasp.analysis import ProgramValues, Requirements, program_values, requirements
from rasp.compiler.compiler import CompiledProgram, compile_rasp
from rasp.compiler.graph import ProgramGraph, program_graph
from rasp.interpreter import EvaluationError
from workbench.checkpoint import Checkpoint
from workbench.errors import InputError, WorkbenchError

LOG = logging.getLogger(__name__)

PROGRAMS = Path(rasp_package.__file__).parent / "programs"
SHIPPED: dict[str, str] = {p.stem: p.read_text() for p in sorted(PROGRAMS.glob("*.rasp"))}
# the vocabulary and longest input each shipped program is shown with first
DEFAULTS = {"dyck1": ("()", 4), "dyck2": ("(){}", 4)}
FIRST = ("abc", 5)

MAX_SOURCE_CHARS = 20_000  # a few hundred statements: far more than any shipped program
MAX_VOCAB = 16
MAX_LEN = 8  # the longest input a compiled model takes (the compiler's work grows with it)
MAX_INPUT = 16  # the longest input the interpreter runs (it has no max_len)
RUN_LIMIT_S = 5.0  # parsing and interpreting, in the request thread
COMPILE_LIMIT_S = 60.0
VALIDATION_BUDGET = 100  # inputs the compiled model is checked on against the interpreter
KEEP = 8  # compiled programs kept in memory per server
ACDC_LIMIT_S = 300.0
MAX_PROMPTS = 16  # ACDC prompts per input length


def defaults(name: str) -> tuple[str, int]:
    """The vocabulary (as typed) and max length a shipped program is shown with."""
    return DEFAULTS.get(name, FIRST)


def checked_source(source: object) -> str:
    """The program's text (browser data: any type), of bounded size."""
    if not isinstance(source, str):
        raise InputError(f"the program must be text, got {type(source).__name__}")
    if not source.strip():
        raise InputError("the program is empty: choose a shipped program or type one")
    if len(source) > MAX_SOURCE_CHARS:
        raise InputError(
            f"the program is {len(source):,} characters long; at most {MAX_SOURCE_CHARS:,} "
            "are read: shorten it"
        )
    return source


def parsed(source: object) -> rasp.SOp:
    """The program's output SOp; its syntax errors are messages with line and column. A
    program from the browser reads no file: `load` is refused."""
    from rasp.parser import parse

    text = checked_source(source)
    with within(RUN_LIMIT_S, "parsing the program"):
        return parse(text, loads=False).output


def tokens(text: object, what: str, most: int) -> list[Any]:
    """`abc` or `a,b,c` (strings), as `workbench rasp run PROGRAM.rasp --input` reads them."""
    from rasp.cli import tokens_of

    text = checked_text(text).strip()
    if len(text) > 4 * most:
        raise InputError(f"the {what} is too long: give at most {most} tokens")
    found = tokens_of(text, f"the {what}")
    if len(found) > most:
        raise InputError(f"the {what} has {len(found)} tokens; at most {most} are taken")
    return found


@dataclass(frozen=True)
class Spec:
    """What to compile: the program's text, its vocabulary, the longest input, causality."""

    source: str
    vocab: tuple[Any, ...]
    max_len: int
    causal: bool

    @classmethod
    def of(cls, source: object, vocab: object, max_len: object, causal: object) -> Spec:
        """From the page's fields (browser data: checked)."""
        tokens_ = tuple(dict.fromkeys(tokens(vocab, "vocabulary", MAX_VOCAB)))
        return cls(
            checked_source(source),
            tokens_,
            whole(max_len, 1, MAX_LEN, "max length"),
            causal is True,
        )

    @property
    def key(self) -> str:
        """The content hash the compiled model is kept under."""
        text = json.dumps([self.source, [repr(t) for t in self.vocab], self.max_len, self.causal])
        return hashlib.sha256(text.encode()).hexdigest()


def run_program(program: rasp.SOp, xs: list[Any], causal: bool = False) -> ProgramValues:
    """The value of every SOp of `program` on `xs`, within the request's time limit."""
    with within(RUN_LIMIT_S, "running the program"):
        try:
            return program_values(program, xs, causal)
        except EvaluationError as error:
            raise InputError(str(error)[:400]) from None


def layout_of(program: rasp.SOp) -> tuple[ProgramGraph, Requirements]:
    """The program's graph and the layers, heads and MLPs it needs (without compiling)."""
    with within(RUN_LIMIT_S, "reading the program's graph"):
        return program_graph(program, check=False), requirements(program)


@dataclass(frozen=True)
class Compiled:
    """A compiled program kept by this server, offered in the registry as `name`."""

    name: str
    spec: Spec
    program: CompiledProgram
    checkpoint: Checkpoint


class CompiledPrograms:
    """The programs this server compiled, by content hash (the `keep` most recent), each
    offered in `registry` while it is kept; and its compile and ACDC runs."""

    def __init__(self, registry: ModelRegistry, keep: int = KEEP) -> None:
        self.registry, self.keep = registry, keep
        self.compiles, self.acdcs = Runs("compile task"), Runs("ACDC task")
        self._kept: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, spec: Spec) -> Run:
        """A background run that compiles `spec` (or finds it kept; a second request for
        the same spec joins the running one); its result is the name the compiled model is
        offered under."""
        return self.compiles.start(
            lambda run: self._compile(spec), key=spec.key, limit_s=COMPILE_LIMIT_S, traced=True
        )

    def start_acdc(self, compiled: Compiled, threshold: float, n_prompts: int) -> Run:
        """A background run of ACDC on `compiled` (`acdc_on`)."""
        return self.acdcs.start(
            lambda run: acdc_on(compiled, threshold, n_prompts, run),
            key=f"{compiled.name} {threshold!r} {n_prompts}",
            limit_s=ACDC_LIMIT_S,
            traced=True,  # on a model of its own: no hook of it is on a shared model
        )

    def get(self, name: object) -> Compiled:
        """A kept program by its registry name (browser data: any type)."""
        with self._lock:
            found = next((c for c in self._kept.values() if c.name == name), None)
        if found is None:
            raise InputError(
                "no compiled program of that name on this server (it may have been dropped "
                "to make room): compile it again"
            )
        return found

    def _compile(self, spec: Spec) -> str:
        with self._lock:
            if spec.key in self._kept:
                self._kept.move_to_end(spec.key)
                return self._kept[spec.key].name
        program = parsed(spec.source)
        compiled = compile_program(program, spec)
        label = compiled.program.label[:40]
        name = f"rasp:{label}:{spec.key[:8]}"
        checkpoint = Checkpoint(compiled.model, compiled.meta())
        with self._lock:
            self._kept[spec.key] = Compiled(name, spec, compiled, checkpoint)
            self.registry.add(name, checkpoint)
            while len(self._kept) > self.keep:
                _, dropped = self._kept.popitem(last=False)
                self.registry.drop(dropped.name)
        return name


def compile_program(program: rasp.SOp, spec: Spec) -> CompiledProgram:
    """`compile_rasp` with the page's small validation budget; what the compiler cannot do
    (or a lambda that fails on a value of the vocabulary) is a message."""
    try:
        return compile_rasp(
            program,
            set(spec.vocab),
            spec.max_len,
            causal=spec.causal,
            validation_budget=VALIDATION_BUDGET,
        )
    except WorkbenchError:
        raise
    except Exception as error:  # a user's lambda failing on a value, the interpreter's error
        raise InputError(
            f"the program cannot be compiled: {type(error).__name__}: {str(error)[:300]}"
        ) from None


@dataclass(frozen=True)
class AcdcResult:
    """ACDC on a compiled program (zero ablation, every input length, as `workbench
    discover` runs it), and its ROC against the program's ground-truth circuit."""

    model: str
    threshold: float
    n_prompts: int
    edges: tuple[str, ...]  # kept
    scores: dict[str, float]  # every edge of the graph
    truth: tuple[str, ...]
    roc: ROC

    def to_json(self) -> str:
        return json.dumps({**vars(self), "roc": vars(self.roc)})


def checked_threshold(value: object) -> float:
    return number(value, 0, math.inf, "ACDC threshold")


def checked_prompts(value: object) -> int:
    return whole(value, 1, MAX_PROMPTS, "number of prompts per length")


def acdc_on(
    compiled: Compiled, threshold: float, n_prompts: int, run: Run | None = None
) -> AcdcResult:
    """ACDC on a copy of the compiled model (the page's other requests keep running the
    registry's), with `run.progress` after every batch."""
    from circuits.acdc import acdc
    from circuits.evaluation import roc
    from circuits.jobs import Settings, prepare
    from circuits.options import Method

    settings = Settings(
        model=compiled.name, method=Method.ACDC, threshold=threshold, n_prompts=n_prompts
    )
    own = Checkpoint(copy.deepcopy(compiled.checkpoint.model), compiled.checkpoint.meta)
    problem = prepare(settings, ckpt=own).problem
    circuit = acdc(
        problem,
        threshold=threshold,
        batch_size=settings.batch_size,
        progress=None if run is None else run.progress,
    )
    truth = compiled.program.ground_truth.edges
    return AcdcResult(
        compiled.name,
        threshold,
        n_prompts,
        circuit.edges,
        dict(circuit.scores),
        truth,
        roc(circuit, truth, problem.graph),
    )
