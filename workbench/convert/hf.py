"""Hugging Face checkpoints into workbench models, exactly: a local directory
(config.json plus safetensors weights, sharded or not) or a model object in memory.

Pickled weights (pytorch_model.bin) are refused, never unpickled."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from workbench import checkpoint
from workbench.config import ModelConfig
from workbench.convert import bert, gpt2, llama, neox, vit
from workbench.convert.weights import TensorSource
from workbench.errors import CheckpointError, ConfigError, ConvertError, unknown
from workbench.model import Transformer

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class Family:
    config: Callable[..., ModelConfig]  # (hf config dict[, tensors]) -> ModelConfig
    weights: Callable[[ModelConfig, TensorSource], dict[str, Tensor]]
    prefixes: tuple[str, ...]  # where the base model's tensors live in task checkpoints
    reads_tensors: bool = False  # whether config() looks at the tensors (heads present)


FAMILIES: dict[str, Family] = {
    "gpt2": Family(gpt2.config, gpt2.weights, ("transformer.",)),
    "gpt_neox": Family(neox.config, neox.weights, ("gpt_neox.",)),
    "llama": Family(llama.config, llama.weights, ("model.",)),
    "mistral": Family(llama.mistral_config, llama.weights, ("model.",)),
    "bert": Family(bert.config, bert.weights, ("bert.",), reads_tensors=True),
    "vit": Family(vit.config, vit.weights, ("vit.",), reads_tensors=True),
}


def is_hf_dir(path: str | Path) -> bool:
    """Whether `path` is a Hugging Face checkpoint directory (a config.json with a
    model_type) rather than a workbench one."""
    config = Path(path) / CONFIG
    if not config.is_file():
        return False
    try:
        return "model_type" in json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def from_hf(source: Any) -> Transformer:
    """A workbench model with the weights of a Hugging Face checkpoint directory or a
    Hugging Face model object (`transformers.PreTrainedModel`)."""
    if isinstance(source, str | Path):
        hf_config, tensors = read_dir(Path(source))
    elif hasattr(source, "config") and hasattr(source, "state_dict"):
        hf_config, tensors = source.config.to_dict(), source.state_dict()
    else:
        raise ConvertError(
            f"cannot convert a {type(source).__name__}: pass a Hugging Face checkpoint "
            "directory or a transformers model object"
        )
    return convert(hf_config, tensors)


def convert(hf_config: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> Transformer:
    config = dict(hf_config)
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise unknown("Hugging Face model_type", str(kind), FAMILIES)
    family = FAMILIES[kind]
    src = TensorSource({k: v.detach().float().cpu() for k, v in tensors.items()}, family.prefixes)
    try:
        cfg = family.config(config, src) if family.reads_tensors else family.config(config)
    except ConfigError as exc:
        raise ConvertError(f"{kind}: the converted config is invalid: {exc}") from None
    except KeyError as exc:
        raise ConvertError(f"{kind} config is missing the field {exc.args[0]!r}") from None
    model = Transformer(cfg)
    try:
        model.load_weights(family.weights(cfg, src), f"the {kind} checkpoint")
    except CheckpointError as exc:
        raise ConvertError(str(exc)) from None
    return model.eval()


def read_dir(directory: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """config.json and every safetensors tensor of a checkpoint directory."""
    if not directory.is_dir():
        raise ConvertError(f"Hugging Face checkpoint directory {directory} does not exist")
    if not (directory / CONFIG).is_file():
        raise ConvertError(f"{directory} has no {CONFIG}: is it a Hugging Face checkpoint?")
    try:
        config = json.loads((directory / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise ConvertError(f"{directory / CONFIG} is not valid JSON: {exc}") from None
    if (directory / INDEX).is_file():
        index = json.loads((directory / INDEX).read_text())
        files = sorted(set(index.get("weight_map", {}).values()))
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise ConvertError(
                f"{directory} lacks the weight shard(s) {', '.join(missing)} listed in {INDEX}"
            )
    elif (directory / SAFETENSORS).is_file():
        files = [SAFETENSORS]
    else:
        pickles = sorted(p.name for p in directory.glob("*.bin"))
        hint = (
            f" It has {', '.join(pickles)}: pickled weights, which the workbench never loads "
            "(unpickling runs arbitrary code). Save the model with safe_serialization=True."
            if pickles
            else ""
        )
        raise ConvertError(f"{directory} has no {SAFETENSORS} or {INDEX}.{hint}")
    tensors: dict[str, Tensor] = {}
    for name in files:
        try:
            tensors.update(load_file(str(directory / name)))
        except (SafetensorError, OSError) as exc:
            raise ConvertError(f"cannot read {directory / name}: {exc}") from None
    return config, tensors


def source_meta(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / CONFIG).read_text())
    return {"source": {"hugging_face": str(directory), "model_type": config.get("model_type")}}


def convert_dir(hf_dir: str | Path, out: str | Path) -> Path:
    """Convert a Hugging Face checkpoint directory into a workbench checkpoint at `out`
    (weights, workbench.json, and the tokenizer files when present). On any error nothing is
    written to `out`: the model is converted in memory and written to a temporary directory
    that is renamed into place."""
    source, target = Path(hf_dir), Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConvertError(f"{target} already exists and is not empty; pass a new directory")
    model = from_hf(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        checkpoint.save(model, staging, source_meta(source))
        for name in checkpoint.TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        if target.exists():
            target.rmdir()
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
