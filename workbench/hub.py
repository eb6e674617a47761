"""Named pretrained models from the Hugging Face Hub (`workbench.load("gpt2")`).

A name that is neither a local directory nor a built-in model, and reads as a Hub repository
id (`gpt2`, `EleutherAI/pythia-70m`), is fetched with `huggingface_hub.snapshot_download`:
only the config, the safetensors weights and the tokenizer files, into the Hub's own cache
(`HF_HOME` / `HF_HUB_CACHE` respected; a model fetched once opens offline afterwards, and
`HF_HUB_OFFLINE=1` never touches the network). `revision` pins a branch, tag or commit. The
snapshot directory then converts as any Hugging Face directory does (`workbench.convert`).
Pickled weights (`pytorch_model.bin`) are never downloaded or loaded."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.errors import CheckpointError

# what a Hub model id looks like: `name` or `owner/name` (letters, digits, - _ .)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]


def is_hub_id(name: str) -> bool:
    return HUB_ID.fullmatch(name) is not None and not name.endswith((".", "-"))


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of `repo_id` at `revision` (downloaded if needed and allowed)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not is_hub_id(repo_id):
        raise CheckpointError(
            f"{repo_id!r} is not a Hugging Face Hub model id (name or owner/name: letters, "
            "digits, '-', '_', '.')"
        )
    if revision is not None and not revision.strip():
        raise CheckpointError("the revision is empty: pass a branch, tag or commit, or none")
    at = f" at revision {revision!r}" if revision else ""
    try:
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=FILES))
    except LocalEntryNotFoundError:
        why = (
            "HF_HUB_OFFLINE=1 is set"
            if constants.HF_HUB_OFFLINE
            else "the Hugging Face Hub cannot be reached"
        )
        pin = f" --revision {revision}" if revision else ""
        raise CheckpointError(
            f"{repo_id!r}{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            f"{why}. On a machine with internet access run `hf download {repo_id}{pin}` (or "
            f"workbench.load({repo_id!r}) there) and copy its cache folder "
            f"models--{repo_id.replace('/', '--')} into this cache, or pass a local directory "
            "holding the model's config.json and *.safetensors"
        ) from None
    except GatedRepoError:
        raise CheckpointError(
            f"{repo_id!r} is gated on the Hugging Face Hub: accept its terms on its page and "
            "log in (`hf auth login` or HF_TOKEN), then load it again"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"no model {repo_id!r} on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(
            f"{repo_id!r} has no revision {revision!r} on the Hugging Face Hub: pass a branch, "
            "tag or commit it has"
        ) from None
    except HFValidationError as exc:
        raise CheckpointError(f"{repo_id!r}{at}: {exc}") from None
    except (HfHubHTTPError, OSError) as exc:
        raise CheckpointError(
            f"fetching {repo_id!r}{at} from the Hugging Face Hub failed: {exc}"
        ) from None
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{repo_id!r}{at} has no config.json: it is not a model repository")
    if not any(path.glob("*.safetensors")):
        raise CheckpointError(
            f"{repo_id!r}{at} has no safetensors weights (only pickled ones, which the "
            "workbench never loads: unpickling runs code). Pick a revision that has "
            "model.safetensors (many repositories have one under refs/pr/N), or convert the "
            "weights with safetensors where you trust them"
        )
    return path
