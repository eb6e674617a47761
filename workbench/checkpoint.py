"""Checkpoints on disk: `model.safetensors` (weights) plus `workbench.json` (config, task,
vocabulary, metrics, seed, versions). Pickle files are refused, never unpickled."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.config import ModelConfig
from workbench.errors import CheckpointError, ConfigError
from workbench.model import Transformer

WEIGHTS = "model.safetensors"
META = "workbench.json"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


@dataclass
class Checkpoint:
    model: Transformer
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    @property
    def vocab(self) -> list[str] | None:
        """The task vocabulary of a model trained on a built-in task (None otherwise)."""
        return self.meta.get("vocab")

    @property
    def has_tokenizer(self) -> bool:
        return self.directory is not None and (self.directory / "tokenizer.json").is_file()

    def tokenizer(self) -> Any:
        """The checkpoint's own tokenizer (`tokenizers.Tokenizer` from tokenizer.json)."""
        if not self.has_tokenizer:
            where = self.directory or "this model"
            raise CheckpointError(
                f"{where} has no tokenizer.json: tokenize the text yourself and pass token "
                "ids, or copy the tokenizer files of the original checkpoint next to it"
            )
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        tokenizer.no_padding()  # one text, its own length; batches pad with an attention mask
        return tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: by the task vocabulary (whitespace-separated words) or by the
        checkpoint's tokenizer, whichever the model has."""
        if self.vocab is not None:
            from workbench.tasks.base import encode_words

            return encode_words(text, self.vocab, "this model's vocabulary")
        return self.tokenizer().encode(text).ids


def versions() -> dict[str, str]:
    import workbench

    return {
        "workbench": workbench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def save(model: Transformer, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write weights and metadata atomically (temporary files, then renames)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"format_version": FORMAT_VERSION, **(meta or {}), "config": model.config.to_dict()}
    record.setdefault("versions", versions())
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.unique_state_dict().items()}
    _atomic(out / WEIGHTS, lambda p: save_file(tensors, str(p)))
    _atomic(out / META, lambda p: Path(p).write_text(json.dumps(record, indent=1)))
    return out


def _atomic(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; checkpoints are shared
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    try:
        meta = json.loads((directory / META).read_text())
        config = ModelConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(
            f"{directory / META} is not a valid workbench.json: {exc!r}"
        ) from None
    except ConfigError as exc:
        raise CheckpointError(f"{directory / META}: {exc}") from None
    meta["config"] = config
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Restore a model saved by `save`, checking every tensor's name and shape."""
    directory = Path(path)
    meta = read_meta(directory)
    if _is_pickle(directory / WEIGHTS):
        _refuse_pickle(directory / WEIGHTS)
    try:
        tensors = load_file(str(directory / WEIGHTS), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read {directory / WEIGHTS}: {exc}") from None
    model = Transformer(meta["config"]).to(device)
    model.load_weights(tensors, str(directory))
    model.eval()
    return Checkpoint(model, meta, directory)
