"""The models a dashboard server offers, and the one safe way to run them.

The server never trusts the browser: a model name from a request is looked up among the models
offered at start-up (the built-ins, each `--model`, and the checkpoints in `--models-dir`) and
is never used as a path; an unknown name is an error that lists the offered names and reveals
no server path. Requests run in the WSGI server's threads and hooks on a shared model are shared
state, so each model runs under its own lock: a request's activations are collected while no
other request can add, see or remove hooks on that model."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

import workbench
from workbench.api import builtin_dir
from workbench.checkpoint import META, Checkpoint
from workbench.errors import InputError, WorkbenchError, close_matches

LOG = logging.getLogger(__name__)
PAUSE_SECONDS = 0.001


@dataclass
class Offered:
    """One offered model: its name on the page, where it is loaded from, and its lock."""

    name: str
    source: str  # a directory: stays on the server
    _checkpoint: Checkpoint | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)  # one request at a time
    loading: threading.Lock = field(default_factory=threading.Lock)  # one load at a time
    in_memory: bool = False  # built by this server (a compiled RASP program): no source


class Recent:
    """The results of the last requests, up to `budget` bytes of tensors: a prompt's views
    (model view, head, token) are drawn from one run, and clicks and zooms run nothing.
    Entries are never changed once stored; lookups and stores are atomic under one lock."""

    def __init__(self, budget: int = 1 << 30) -> None:
        self.budget = budget
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        """The value stored under `key`, or None."""
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: tuple, value: object, *tensors: Tensor) -> None:
        """Store `value`, whose size is that of `tensors`; the oldest entries go first."""
        size = sum(t.nelement() * t.element_size() for t in tensors)
        with self._lock:
            self._entries[key] = (value, size)
            total = sum(s for _, s in self._entries.values())
            while total > self.budget and self._entries:
                _, (_, old) = self._entries.popitem(last=False)
                total -= old


class ModelRegistry:
    """The offered models by name, each loaded once, on first use."""

    def __init__(self, sources: Iterable[Offered]) -> None:
        self.recent = Recent()  # results of the last requests
        self._changing = threading.Lock()  # one `add` or `drop` at a time
        self._models: dict[str, Offered] = {}
        for offered in sources:
            self._models.setdefault(offered.name, offered)
        if not self._models:
            raise WorkbenchError(
                "no model to offer: reinstall the package (built-in models) or pass --model"
            )

    @classmethod
    def offering(
        cls, models: Iterable[str] = (), models_dir: str | Path | None = None
    ) -> ModelRegistry:
        """The built-in models, each of `models` (a built-in name or a checkpoint directory,
        checked now), and every checkpoint directory directly inside `models_dir`."""
        builtins = workbench.list_builtin_models()
        # built-ins by their directory, so that a folder of that name where the server runs
        # cannot stand in for one
        offered = [Offered(name, str(builtin_dir(name))) for name in builtins]
        given: list[Offered] = []
        for model in models:
            if not str(model).strip():
                raise InputError("--model needs a built-in model name or a checkpoint directory")
            if model in builtins:
                given.append(next(o for o in offered if o.name == model))
                continue
            loaded = workbench.open_checkpoint(model)  # a bad --model fails at start-up
            label = _label(str(model), [o.name for o in given + offered])
            given.append(Offered(label, str(model), loaded))
        if models_dir is not None:
            given += _directory(Path(models_dir), [o.name for o in given + offered])
        return cls(given + offered)  # what was asked for first

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def add(self, name: str, checkpoint: Checkpoint) -> None:
        """Offer a model this server built in memory (a compiled RASP program) as `name`,
        which must not name an offered model already."""
        with self._changing:
            if name in self._models:
                raise InputError(f"a model called {name!r} is offered already")
            offered = Offered(name, "", checkpoint, in_memory=True)
            # a new dict swapped in whole: a request reading the old one never sees it change
            self._models = {**self._models, name: offered}

    def drop(self, name: str) -> None:
        """Stop offering a model added with `add` (a request running it finishes first)."""
        with self._changing:
            offered = self._models.get(name)
            if offered is None or not offered.in_memory:
                return
            with offered.lock:
                self._models = {k: v for k, v in self._models.items() if k != name}

    def get(self, name: object) -> Offered:
        """The offered model called `name` (a value from the browser: any type)."""
        if not isinstance(name, str) or name not in self._models:
            shown = repr(name)[:60]
            raise InputError(
                f"unknown model {shown}; closest: {close_matches(str(name), self.names)}. "
                f"This server offers: {', '.join(self.names)}"
            )
        return self._models[name]

    def checkpoint(self, name: object) -> Checkpoint:
        """The model's checkpoint, loaded on first use (errors name the model, not its path)."""
        offered = self.get(name)
        if offered._checkpoint is not None:
            return offered._checkpoint
        with offered.loading:  # a slow first load holds up only this model's requests
            if offered._checkpoint is None:
                try:
                    checkpoint = workbench.open_checkpoint(offered.source)
                    if checkpoint.has_tokenizer:
                        checkpoint.tokenizer()  # read now: its errors name server paths
                except WorkbenchError as exc:
                    LOG.warning(
                        "cannot load model %r from %s: %s", offered.name, offered.source, exc
                    )
                    raise InputError(
                        f"model {offered.name!r} could not be loaded on the server; see the "
                        "server's log, or choose another model"
                    ) from None
                offered._checkpoint = checkpoint
        return offered._checkpoint

    @contextmanager
    def running(self, name: object) -> Iterator[Checkpoint]:
        """The model's checkpoint, held for one request: nothing else runs it meanwhile."""
        checkpoint = self.checkpoint(name)
        with self.get(name).lock:
            yield checkpoint

    def pause(self, name: object) -> None:
        """Inside `running(name)`, between two steps of a long run (a patching sweep's chunks)
        that leave no hook on the model: the requests waiting for the model run first."""
        lock = self.get(name).lock
        lock.release()
        try:
            time.sleep(PAUSE_SECONDS)  # a waiting thread takes the lock meanwhile
        finally:
            lock.acquire()


def _label(source: str, taken: list[str]) -> str:
    """A page name for `source`: a built-in's name, or a directory's last part, made unique."""
    base = Path(source).name or str(source)
    label, n = base, 2
    while label in taken:
        label, n = f"{base} ({n})", n + 1
    return label


def _directory(directory: Path, taken: list[str]) -> list[Offered]:
    if not directory.is_dir():
        raise InputError(f"--models-dir {directory} is not a directory")
    found = []
    from workbench.convert import is_hf_dir

    checkpoints = [p for p in directory.iterdir() if (p / META).is_file() or is_hf_dir(p)]
    for path in sorted(checkpoints):
        found.append(Offered(_label(str(path), taken + [o.name for o in found]), str(path)))
    if not found:
        raise InputError(
            f"--models-dir {directory} holds no checkpoint (a directory with {META}, or a "
            "Hugging Face checkpoint); pass the folder whose subdirectories are checkpoints"
        )
    return found
