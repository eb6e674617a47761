"""Named pretrained models from the Hugging Face Hub (issue 20), tested offline: a cache in
the Hub's layout (refs, snapshots of symlinks into blobs) holds a tiny GPT-2 at two
revisions, and fresh interpreters with HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing at it
load it by name through `workbench.load`, the lens and the CLI, as they would `gpt2`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
REPO = "tiny-org/tiny-gpt2"
MAIN, OLD = "a" * 40, "b" * 40  # commits: main, and an older revision with other weights


def _snapshot(cache: Path, repo: str, commit: str, source: Path, ref: str | None) -> None:
    """Put `source`'s files into the cache as snapshot `commit` of `repo` (as
    huggingface_hub stores them: content in blobs/, the snapshot as relative symlinks)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for file in source.iterdir():
        data = file.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (root / "blobs" / blob).write_bytes(data)
        (snap / file.name).symlink_to(Path("../../blobs") / blob)
    if ref is not None:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, gpt2_dir: Path) -> Path:
    import torch
    import transformers as T

    cache = tmp_path_factory.mktemp("hub")
    _snapshot(cache, REPO, MAIN, gpt2_dir, ref="main")
    old = tmp_path_factory.mktemp("old")
    config = T.GPT2Config.from_pretrained(gpt2_dir)
    torch.manual_seed(1)
    T.GPT2LMHeadModel(config).save_pretrained(old)  # the same shapes, other weights
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (gpt2_dir / name).exists():
            (old / name).write_bytes((gpt2_dir / name).read_bytes())
    _snapshot(cache, REPO, OLD, old, ref=None)
    pickled = tmp_path_factory.mktemp("pickled")
    (pickled / "config.json").write_text(json.dumps(config.to_dict()))
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    _snapshot(cache, "tiny-org/pickled-only", MAIN, pickled, ref="main")
    return cache


def _run(hub_cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache)}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


SCRIPT = f"""
import json, torch, workbench
from workbench.errors import WorkbenchError
from workbench.lens import HookedTransformer

out = {{}}
lens = HookedTransformer.from_pretrained_no_processing({REPO!r})
tokens = lens.to_tokens("Hello world")
out["name"] = lens.cfg.model_name
out["tokens"] = tokens.tolist()
out["main"] = lens(tokens)[0, -1, :5].tolist()
out["old"] = workbench.load({REPO!r}, revision={OLD!r})(tokens)[0, -1, :5].tolist()
out["pinned_main"] = workbench.load({REPO!r}, revision={MAIN!r})(tokens)[0, -1, :5].tolist()
for name, kwargs in [
    ("tiny-org/not-cached", {{}}),
    ({REPO!r}, {{"revision": "v2"}}),
    ("tiny-org/pickled-only", {{}}),
    ("gpt3-small", {{}}),
    ("induction-2l", {{"revision": "main"}}),
]:
    try:
        workbench.load(name, **kwargs)
        out[name + str(kwargs)] = "loaded"
    except WorkbenchError as exc:
        out[name + str(kwargs)] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def test_hub_models_load_by_name_offline_from_the_cache(hub_cache, gpt2_dir) -> None:
    import torch

    from workbench.lens import HookedTransformer

    run = _run(hub_cache, sys.executable, "-c", SCRIPT)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    local = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    tokens = local.to_tokens("Hello world")
    assert out["name"] == REPO and out["tokens"] == tokens.tolist()  # its tokenizer came along
    expected = local(tokens)[0, -1, :5]
    torch.testing.assert_close(torch.tensor(out["main"]), expected)
    torch.testing.assert_close(torch.tensor(out["pinned_main"]), expected)
    assert not torch.allclose(torch.tensor(out["old"]), expected)  # the pinned revision's
    missing = out["tiny-org/not-cached{}"]
    assert missing.startswith("CheckpointError")
    assert "HF_HUB_OFFLINE=1 is set" in missing and "hf download tiny-org/not-cached" in missing
    assert str(hub_cache) in missing and "models--tiny-org--not-cached" in missing
    assert "--revision v2" in out[REPO + "{'revision': 'v2'}"]
    assert "never loads: unpickling runs code" in out["tiny-org/pickled-only{}"]
    typo = out["gpt3-small{}"]
    assert typo.startswith("UnknownNameError: unknown built-in model 'gpt3-small'")
    assert "Nor a Hugging Face Hub model" in typo
    assert "pins a Hugging Face Hub model" in out["induction-2l{'revision': 'main'}"]


def test_cli_converts_a_hub_model_by_name(hub_cache, gpt2_dir, tmp_path) -> None:
    import torch

    import workbench

    cli = str(Path(sys.executable).parent / "workbench")
    run = _run(hub_cache, cli, "convert", REPO, "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    tokens = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(
        workbench.load(tmp_path / "out")(tokens), workbench.load(gpt2_dir)(tokens)
    )
    bad = _run(hub_cache, cli, "convert", "tiny-org/not-cached", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2 and "hf download tiny-org/not-cached" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()
    local = _run(
        hub_cache, cli, "convert", str(gpt2_dir), "-o", str(tmp_path / "y"), "--revision", "v1"
    )
    assert local.returncode == 2 and "pins a Hugging Face Hub model" in local.stdout + local.stderr
