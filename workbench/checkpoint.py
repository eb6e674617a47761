"""Checkpoints on disk: `model.safetensors` (weights) plus `workbench.json` (config, task,
vocabulary, metrics, seed, versions). Pickle files are refused, never unpickled.

Writes are atomic (`workbench.files`: a staging directory, fsync, one rename). Reads stay inside
the checkpoint directory, check every tensor's shape against the config before allocating the
model, and refuse NaN or infinite config values, and NaN or infinite weights unless
`allow_nonfinite=True`."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from workbench.config import ModelConfig
from workbench.errors import CheckpointError, ConfigError
from workbench.files import MARKER, confined, write_dir, write_file
from workbench.model import Transformer
from workbench.tasks.base import Task

WEIGHTS = "model.safetensors"
META = MARKER  # written last: a directory holding it holds a finished checkpoint
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


@dataclass
class Checkpoint:
    model: Transformer
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    _tokenizer: Any = field(default=None, repr=False, compare=False)  # read once

    @property
    def vocab(self) -> list[str] | None:
        """The task vocabulary of a model trained on a built-in task (None otherwise)."""
        return self.meta.get("vocab")

    def task(self, name: str | None = None) -> Task | None:
        """The built-in task called `name` (a user's choice: `--task`), else the one the model
        was trained on, with its parameters (None: no task, a compiled RASP program, or a task
        this version does not have)."""
        from workbench.tasks import TASKS, make_task  # tasks import nothing of checkpoints

        if name:
            return make_task(name)
        spec = self.meta.get("task")
        if not isinstance(spec, dict) or spec.get("name") not in TASKS:
            return None
        return make_task(spec["name"], **spec.get("params", {}))

    @property
    def has_tokenizer(self) -> bool:
        return self.directory is not None and (self.directory / "tokenizer.json").is_file()

    def tokenizer(self) -> Any:
        """The checkpoint's own tokenizer (`tokenizers.Tokenizer` from tokenizer.json)."""
        if self.directory is None or not self.has_tokenizer:
            where = self.directory or "this model"
            raise CheckpointError(
                f"{where} has no tokenizer.json: tokenize the text yourself and pass token "
                "ids, or copy the tokenizer files of the original checkpoint next to it"
            )
        from tokenizers import Tokenizer

        if self._tokenizer is None:
            path = confined(self.directory, "tokenizer.json")
            tokenizer = Tokenizer.from_file(str(path))
            tokenizer.no_padding()  # one text, its own length; batches pad with an attention mask
            # never cut a text silently (MiniLM's file cuts at 128 tokens, its model takes
            # 512): a text longer than the model's context is the model's clear error
            tokenizer.no_truncation()
            self._tokenizer = tokenizer
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: by the task vocabulary (whitespace-separated words) or by the
        checkpoint's tokenizer, whichever the model has."""
        if self.vocab is not None:
            from workbench.tasks.base import encode_words

            return encode_words(text, self.vocab, "this model's vocabulary")
        return self.tokenizer().encode(text).ids

    def token_id(self, word: str) -> int | None:
        """The id of one token by its text: a word of the task vocabulary, a token of the
        tokenizer, or, for a model with neither, the id itself; None when `word` is not one
        token of this model (or names an id it does not predict)."""
        if self.vocab is not None:
            found = self.vocab.index(word) if word in self.vocab else None
        elif self.has_tokenizer:
            found = self.tokenizer().token_to_id(word)
        else:
            found = int(word) if word.isascii() and word.isdigit() and len(word) <= 9 else None
        return found if found is not None and 0 <= found < self.model.config.vocab_out else None

    def token_names(self) -> Callable[[int], str] | None:
        """A token's text by id, the inverse of `encode` (an id out of range: its number);
        None for a model without words for its ids."""
        if self.has_tokenizer:
            tokenizer = self.tokenizer()
            return lambda i: tokenizer.id_to_token(i) or str(i)
        vocab = self.vocab
        if vocab is not None:
            return lambda i: vocab[i] if 0 <= i < len(vocab) else str(i)
        return None


def versions() -> dict[str, str]:
    import workbench

    return {
        "workbench": workbench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def save(
    model: Transformer,
    out_dir: str | Path,
    meta: dict[str, Any] | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write a checkpoint directory atomically: a staging directory next to `out_dir`, fsync,
    one rename. A directory that already holds a checkpoint is refused unless `force`, which
    replaces the whole directory in one step. To add a checkpoint to a directory that holds
    other things (a training run's directory with its resume state), use `save_into`."""
    out = Path(out_dir)
    return write_dir(out, lambda staging: write_checkpoint(staging, model, meta), force=force)


def save_into(
    model: Transformer,
    directory: str | Path,
    meta: dict[str, Any] | None = None,
    *,
    replace_partial: bool = False,
) -> Path:
    """Add a checkpoint to an existing directory that holds other things (a training run's
    directory): model.safetensors, then workbench.json, each written atomically (staging file,
    fsync, rename), so workbench.json appears only once the weights it describes are in place.
    A directory that already holds workbench.json is refused, and so are weights without it
    unless `replace_partial` (training: an earlier final save that was cut off)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory; save_into adds to an existing one")
    if (directory / META).is_symlink() or (directory / META).exists():
        raise CheckpointError(f"{directory} already holds a checkpoint; pass a new directory")
    if (directory / WEIGHTS).exists() and not replace_partial:
        raise CheckpointError(f"{directory} already holds {WEIGHTS}; pass a new directory")
    tensors, record = _contents(model, meta)
    try:
        write_file(directory / WEIGHTS, lambda path: save_file(tensors, str(path)))
        write_file(directory / META, lambda path: path.write_text(json.dumps(record, indent=1)))
    except OSError as exc:
        raise CheckpointError(f"cannot write {directory}: {exc}") from None
    return directory


def write_checkpoint(directory: Path, model: Transformer, meta: dict[str, Any] | None) -> None:
    """Write model.safetensors and workbench.json into `directory` with plain writes: the fill
    step of `write_dir`, which makes the whole directory atomic."""
    tensors, record = _contents(model, meta)
    save_file(tensors, str(directory / WEIGHTS))
    (directory / META).write_text(json.dumps(record, indent=1))


def _contents(
    model: Transformer, meta: dict[str, Any] | None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    record = {"format_version": FORMAT_VERSION, **(meta or {}), "config": model.config.to_dict()}
    record.setdefault("versions", versions())
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.unique_state_dict().items()}
    return tensors, record


def _refuse_pickle(path: Path) -> None:
    raise CheckpointError(
        f"{path} looks like a pickle/torch.save file; the workbench never unpickles weights "
        "(unpickling runs arbitrary code). Convert it to safetensors where you trust it: "
        "safetensors.torch.save_file(state_dict, 'model.safetensors'), plus a workbench.json"
    )


def _is_pickle(path: Path) -> bool:
    """By name, or by content: a pickle starts with 0x80, a torch.save zip with 'PK'; a
    safetensors file starts with an 8-byte header length followed by '{'."""
    if path.suffix in PICKLE_SUFFIXES:
        return True
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    return head[:1] == b"\x80" or head[:2] == b"PK"


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint's workbench.json, with its config checked (every field's type and
    range; real values finite)."""
    directory = Path(path)
    if directory.is_file():
        if _is_pickle(directory):
            _refuse_pickle(directory)
        raise CheckpointError(
            f"{directory} is a file; pass the checkpoint directory holding {META}"
        )
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    missing = [n for n in (META, WEIGHTS) if not (directory / n).is_file()]
    if missing:
        pickles = [p for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles and WEIGHTS in missing:
            _refuse_pickle(pickles[0])
        raise CheckpointError(
            f"checkpoint {directory} is missing {', '.join(missing)}; a checkpoint holds "
            f"{WEIGHTS} and {META} (write one with workbench.checkpoint.save or workbench train)"
        )
    confined(directory, WEIGHTS)
    try:
        meta = json.loads(confined(directory, META).read_text())
        config = ModelConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{directory / META} is not a valid workbench.json: {exc!r}"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {directory / META}: {exc}") from None
    except ConfigError as exc:
        raise CheckpointError(f"{directory / META}: {exc}") from None
    meta["config"] = config
    return meta


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", *, allow_nonfinite: bool = False
) -> Checkpoint:
    """Restore a model saved by `save`, checking every tensor's name and shape against the
    config before allocating anything, and refusing NaN or infinite weights unless
    `allow_nonfinite`."""
    directory = Path(path)
    meta = read_meta(directory)
    weights = confined(directory, WEIGHTS)
    if _is_pickle(weights):
        _refuse_pickle(directory / WEIGHTS)
    check_shapes(meta["config"], header_shapes(weights), str(directory))
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {directory / WEIGHTS}: {exc}") from None
    if not allow_nonfinite:
        check_finite(tensors, str(directory / WEIGHTS))
    model = Transformer(meta["config"]).to(device)
    model.load_weights(tensors, str(directory))
    model.eval()
    return Checkpoint(model, meta, directory)


def header_shapes(
    path: Path, error: type[CheckpointError] = CheckpointError
) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()  # a safe_open handle is not iterable
            return {name: tuple(f.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError) as exc:
        raise error(f"cannot read {path}: {exc}") from None


def check_shapes(
    config: ModelConfig,
    shapes: Mapping[str, tuple[int, ...]],
    source: str,
    error: type[CheckpointError] = CheckpointError,
) -> None:
    """Raise unless `shapes` are exactly the tensors a model of `config` has, as
    `Transformer.load_weights` would, but on the meta device: nothing of the config's size is
    allocated, so a config claiming huge sizes fails at once."""
    owners = set(config.weight_ties or range(config.n_layers))
    present = {int(m[1]) for name in shapes if (m := re.match(r"blocks\.(\d+)\.", name))}
    if not owners <= present:  # before building even a meta model of n_layers blocks
        lacking = sorted(owners - present)
        raise error(
            f"weights of {source} do not match its config: n_layers={config.n_layers} needs "
            f"tensors for {len(owners)} blocks, the weights have {len(present)} (none for "
            f"blocks {lacking[0]}..{lacking[-1]})"
        )
    expected = expected_shapes(config)
    problems = [f"missing tensor {k!r}" for k in expected if k not in shapes]
    problems += [f"unexpected tensor {k!r}" for k in shapes if k not in expected]
    problems += [
        f"{k!r} has shape {tuple(shapes[k])}, the config needs {v}"
        for k, v in expected.items()
        if k in shapes and tuple(shapes[k]) != v
    ]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise error(f"weights of {source} do not match its config: {'; '.join(problems[:5])}{more}")


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shapes of `Transformer(config).unique_state_dict()`, from a model on the meta
    device. Tied tensors are the same object there (data pointers are all 0 on meta)."""
    with torch.device("meta"):
        model = Transformer(config)
    seen: set[int] = set()
    out = {}
    for name, value in model.state_dict(keep_vars=True).items():
        if value.numel() == 0 or id(value) not in seen:
            seen.add(id(value))
            out[name] = tuple(value.shape)
    return out


CHUNK = 1 << 24  # elements checked at once: bounds the temporary mask of a huge tensor


def check_finite(
    tensors: Mapping[str, Tensor], source: str, error: type[CheckpointError] = CheckpointError
) -> None:
    """Raise if a floating-point tensor holds NaN or infinite values, naming them."""
    bad = [(name, n) for name, t in tensors.items() if (n := _count_nonfinite(t))]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        listed = ", ".join(f"{name!r} ({n} of {tensors[name].numel()})" for name, n in bad[:5])
        raise error(
            f"{source} has NaN or infinite values in {listed}{more}: a broken checkpoint. Pass "
            "allow_nonfinite=True (workbench convert --allow-nonfinite) to load it anyway"
        )


def _count_nonfinite(tensor: Tensor) -> int:
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    flat = tensor.detach().reshape(-1)
    return sum(
        int(flat[i : i + CHUNK].isfinite().logical_not().sum())
        for i in range(0, flat.numel(), CHUNK)
    )
