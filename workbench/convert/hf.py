"""Hugging Face checkpoints into workbench models, exactly: a local directory
(config.json plus safetensors weights, sharded or not) or a model object in memory.

Checkpoints are untrusted input. Pickled weights (pytorch_model.bin) are refused, never
unpickled; every file read (config, index, shards, tokenizer files) must lie inside the
directory; the config and every tensor shape are checked on the meta device before anything
is allocated; NaN or infinite config values are refused, and so are NaN or infinite
weights unless `allow_nonfinite=True`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from workbench import checkpoint
from workbench.config import ModelConfig
from workbench.convert import bert, gpt2, llama, neox, vit
from workbench.convert.fields import Spec, check_fields
from workbench.convert.weights import TensorSource
from workbench.errors import CheckpointError, ConfigError, ConvertError, unknown
from workbench.files import TOKENIZER_FILES, check_target, confined, write_dir
from workbench.model import Transformer

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class Family:
    config: Callable[..., ModelConfig]  # (hf config dict[, tensors]) -> ModelConfig
    weights: Callable[[ModelConfig, TensorSource], dict[str, Tensor]]
    prefixes: tuple[str, ...]  # where the base model's tensors live in task checkpoints
    fields: Mapping[str, Spec]  # the config fields the converter reads or requires
    ignored: frozenset[str]  # config fields irrelevant to the forward pass
    reads_tensors: bool = False  # whether config() looks at the tensors (heads present)


FAMILIES: dict[str, Family] = {
    "gpt2": Family(gpt2.config, gpt2.weights, ("transformer.",), gpt2.FIELDS, gpt2.IGNORED),
    "gpt_neox": Family(neox.config, neox.weights, ("gpt_neox.",), neox.FIELDS, neox.IGNORED),
    "llama": Family(llama.config, llama.weights, ("model.",), llama.FIELDS, llama.IGNORED),
    "mistral": Family(
        llama.mistral_config, llama.weights, ("model.",), llama.FIELDS, llama.IGNORED
    ),
    "bert": Family(
        bert.config, bert.weights, ("bert.",), bert.FIELDS, bert.IGNORED, reads_tensors=True
    ),
    "vit": Family(vit.config, vit.weights, ("vit.",), vit.FIELDS, vit.IGNORED, reads_tensors=True),
}


def is_hf_dir(path: str | Path) -> bool:
    """Whether `path` is a Hugging Face checkpoint directory (a config.json with a
    model_type) rather than a workbench one."""
    directory = Path(path)
    if not (directory / CONFIG).is_file():
        return False
    try:
        return "model_type" in json.loads(confined(directory, CONFIG).read_text())
    except CheckpointError:
        return True  # a config.json leading out of the directory: the converter says so
    except (OSError, ValueError):
        return False


def from_hf(source: Any, *, allow_nonfinite: bool = False) -> Transformer:
    """A workbench model with the weights of a Hugging Face checkpoint directory or a
    Hugging Face model object (`transformers.PreTrainedModel`). NaN or infinite config values
    are refused; NaN or infinite weights too, unless `allow_nonfinite`."""
    if isinstance(source, str | Path):
        hf_config, files = read_dir(Path(source))
        # the config against the tensors' shapes, from the file headers: nothing allocated yet
        plan(hf_config, read_shapes(files))
        tensors = read_tensors(files)
    elif hasattr(source, "config") and hasattr(source, "state_dict"):
        hf_config, tensors = source.config.to_dict(), source.state_dict()
    else:
        raise ConvertError(
            f"cannot convert a {type(source).__name__}: pass a Hugging Face checkpoint "
            "directory or a transformers model object"
        )
    return convert(hf_config, tensors, allow_nonfinite=allow_nonfinite)


def convert(
    hf_config: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    *,
    allow_nonfinite: bool = False,
) -> Transformer:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    kind, family, cfg = plan(hf_config, shapes)
    if not allow_nonfinite:
        checkpoint.check_finite(tensors, f"the {kind} checkpoint", ConvertError)
    src = TensorSource({k: v.detach().float().cpu() for k, v in tensors.items()}, family.prefixes)
    model = Transformer(cfg)
    try:
        model.load_weights(family.weights(cfg, src), f"the {kind} checkpoint")
    except CheckpointError as exc:
        raise ConvertError(str(exc)) from None
    return model.eval()


def plan(
    hf_config: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[str, Family, ModelConfig]:
    """Check a checkpoint before anything of its size is allocated: the config's fields, then
    the converter run on meta tensors of the given shapes, whose results must have exactly
    the shapes of the config's model (also built on the meta device)."""
    config = dict(hf_config)
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise unknown("Hugging Face model_type", str(kind), FAMILIES)
    family = FAMILIES[kind]
    check_fields(kind, config, family.fields, family.ignored)
    meta = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    src = TensorSource(meta, family.prefixes)
    try:
        cfg = family.config(config, src) if family.reads_tensors else family.config(config)
    except ConfigError as exc:
        raise ConvertError(f"{kind}: the converted config is invalid: {exc}") from None
    except KeyError as exc:
        raise ConvertError(f"{kind} config is missing the field {exc.args[0]!r}") from None
    try:
        planned = family.weights(cfg, src)
    except RuntimeError as exc:  # a reshape to sizes the tensors do not have
        sizes = ", ".join(
            f"{k}={getattr(cfg, k)}" for k in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp")
        )
        raise ConvertError(
            f"the {kind} tensors do not have the sizes of its config ({sizes}): {exc}"
        ) from None
    planned_shapes = {name: tuple(t.shape) for name, t in planned.items()}
    checkpoint.check_shapes(cfg, planned_shapes, f"the {kind} checkpoint", ConvertError)
    return kind, family, cfg


def read_dir(directory: Path) -> tuple[dict[str, Any], list[Path]]:
    """config.json and the safetensors files of a checkpoint directory (their real paths, all
    inside it)."""
    if not directory.exists():
        raise ConvertError(f"Hugging Face checkpoint directory {directory} does not exist")
    if not directory.is_dir():
        raise ConvertError(
            f"{directory} is a file; pass the Hugging Face checkpoint directory (config.json "
            "plus safetensors weights)"
        )
    try:
        os.listdir(directory)
    except OSError as exc:
        raise ConvertError(f"cannot read the checkpoint directory {directory}: {exc}") from None
    if not (directory / CONFIG).is_file():
        raise ConvertError(f"{directory} has no {CONFIG}: is it a Hugging Face checkpoint?")
    config = _read_json(directory, CONFIG)
    if (directory / INDEX).is_file():
        names = _shard_names(directory, _read_json(directory, INDEX))
        files = [confined(directory, name, ConvertError) for name in names]
        missing = [name for name, path in zip(names, files, strict=True) if not path.is_file()]
        if missing:
            raise ConvertError(
                f"{directory} lacks the weight shard(s) {', '.join(missing)} listed in {INDEX}"
            )
    elif (directory / SAFETENSORS).is_file():
        files = [confined(directory, SAFETENSORS, ConvertError)]
    else:
        pickles = sorted(p.name for p in directory.glob("*.bin"))
        hint = (
            f" It has {', '.join(pickles)}: pickled weights, which the workbench never loads "
            "(unpickling runs arbitrary code). Save the model with safe_serialization=True."
            if pickles
            else ""
        )
        raise ConvertError(f"{directory} has no {SAFETENSORS} or {INDEX}.{hint}")
    return config, files


def _read_json(directory: Path, name: str) -> dict[str, Any]:
    path = confined(directory, name, ConvertError)
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise ConvertError(f"cannot read {directory / name}: {exc}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ConvertError(f"{directory / name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConvertError(f"{directory / name} is not a JSON object")
    return value


def _shard_names(directory: Path, index: dict[str, Any]) -> list[str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConvertError(
            f"{directory / INDEX} has no weight_map of tensor names to shard file names"
        )
    return sorted(set(weight_map.values()))


def read_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from the safetensors headers, without reading any tensor."""
    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, Path] = {}
    for path in files:
        for name, shape in checkpoint.header_shapes(path, ConvertError).items():
            if name in shapes:
                raise ConvertError(
                    f"the tensor {name!r} is in two shards, {owner[name].name} and {path.name}"
                )
            shapes[name], owner[name] = shape, path
    return shapes


def read_tensors(files: list[Path]) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for path in files:
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError) as exc:
            raise ConvertError(f"cannot read {path}: {exc}") from None
    return tensors


def source_meta(directory: Path) -> dict[str, Any]:
    config = _read_json(directory, CONFIG)
    architectures = config.get("architectures")
    architecture = architectures[0] if isinstance(architectures, list) and architectures else None
    source = {"hugging_face": str(directory), "model_type": config.get("model_type")}
    return {"source": {**source, "architecture": architecture}}


def convert_dir(
    hf_dir: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    allow_nonfinite: bool = False,
) -> Path:
    """Convert a Hugging Face checkpoint directory into a workbench checkpoint at `out`
    (weights, workbench.json, and the tokenizer files when present). The model is converted
    in memory, then written atomically (`workbench.files.write_dir`): on any error nothing is
    written to `out`. An existing non-empty `out` is refused unless `force`; missing parent
    directories are created."""
    source, target = Path(hf_dir), Path(out)
    check_target(target, force, ConvertError)  # before the conversion's work
    model = from_hf(source, allow_nonfinite=allow_nonfinite)
    meta = source_meta(source)
    tokenizer = [
        (name, confined(source, name, ConvertError))
        for name in TOKENIZER_FILES
        if (source / name).is_file()
    ]

    def fill(staging: Path) -> None:
        checkpoint.write_checkpoint(staging, model, meta)
        for name, path in tokenizer:
            shutil.copyfile(path, staging / name)  # a new file: the umask's mode, not the source's

    return write_dir(target, fill, force=force, error=ConvertError)
