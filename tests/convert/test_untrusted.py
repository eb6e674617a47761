"""A Hugging Face checkpoint is untrusted input: the converter reads only files inside its
directory, checks sizes before allocating, refuses NaN/inf unless allowed, and `workbench
convert` fails cleanly (exit 2, nothing written) on a bad source or output path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import workbench
from tests.convert.hf_models import tiny_hf
from workbench.cli import cli
from workbench.convert import convert_dir, from_hf, hf
from workbench.errors import ConvertError

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints saved once: gpt2 (one file) and llama (sharded)."""
    root = tmp_path_factory.mktemp("hf")
    tiny_hf("gpt2").save_pretrained(root / "gpt2")
    (root / "gpt2" / "tokenizer.json").write_text('{"fake": "tokenizer"}')
    tiny_hf("llama-gqa").save_pretrained(root / "sharded", max_shard_size="20KB")
    return {"gpt2": root / "gpt2", "sharded": root / "sharded"}


def copy(source: Path, to: Path) -> Path:
    to.mkdir()
    for path in source.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def hidden(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# ----- confinement ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_weight_map_paths_outside_the_directory_are_refused(
    saved: dict[str, Path], tmp_path: Path, where: str
) -> None:
    ck = copy(saved["sharded"], tmp_path / "ck")
    index = ck / "model.safetensors.index.json"
    shard = json.loads(index.read_text())["weight_map"]["model.norm.weight"]
    (tmp_path / "elsewhere.safetensors").write_bytes((ck / shard).read_bytes())
    outside = (
        "../elsewhere.safetensors" if where == "parent" else str(tmp_path / "elsewhere.safetensors")
    )

    def point_outside(data):
        data["weight_map"] = {
            k: outside if v == shard else v for k, v in data["weight_map"].items()
        }

    edit_json(index, point_outside)
    with pytest.raises(ConvertError, match="elsewhere.safetensors, outside the checkpoint"):
        from_hf(ck)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_symlinks_out_of_the_directory_are_refused_and_nothing_is_written(
    saved: dict[str, Path], tmp_path: Path, name: str
) -> None:
    ck = copy(saved["gpt2"], tmp_path / "ck")
    secret = tmp_path / "secret"  # stands for /etc/passwd
    secret.write_bytes((ck / name).read_bytes())
    (ck / name).unlink()
    (ck / name).symlink_to(secret)
    out = tmp_path / "out"
    with pytest.raises(ConvertError, match=f"{name} leads to .*secret, outside the checkpoint"):
        convert_dir(ck, out)
    assert not out.exists() and hidden(tmp_path) == []


def test_symlinks_inside_the_directory_and_into_the_hub_cache_are_followed(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    ck = copy(saved["gpt2"], tmp_path / "ck")
    (ck / "blobs").mkdir()
    (ck / "model.safetensors").rename(ck / "blobs" / "weights")
    (ck / "model.safetensors").symlink_to(Path("blobs") / "weights")
    expected = from_hf(saved["gpt2"]).W_E
    assert torch.equal(from_hf(ck).W_E, expected)
    # the Hugging Face hub cache: snapshots/REV/* link to ../../blobs/SHA
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in saved["gpt2"].iterdir():
        (repo / "blobs" / path.name).write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", path.name))
    convert_dir(snapshot, tmp_path / "out")
    assert torch.equal(workbench.load(tmp_path / "out").W_E, expected)
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"fake": "tokenizer"}'


# ----- sizes before allocation ----------------------------------------------------------------


@pytest.fixture
def no_allocation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail if a tensor is read or a model is built off the meta device; return the devices
    models were built on."""
    built_on: list[str] = []
    real = hf.Transformer

    def spy(config):
        built_on.append(torch.get_default_device().type)
        return real(config)

    def no_load(*args, **kwargs):
        raise AssertionError("tensors read before the sizes were checked")

    monkeypatch.setattr(hf, "Transformer", spy)
    monkeypatch.setattr(hf, "load_file", no_load)
    monkeypatch.setattr("workbench.checkpoint.Transformer", spy)
    return built_on


@pytest.mark.parametrize(
    ("huge", "match"),
    [
        (
            {"n_embd": 10**6, "n_layer": 10**4},
            r"tensors do not have the sizes of its config \(n_layers=10000, d_model=1000000",
        ),
        ({"n_inner": 10**6}, r"'blocks.0.mlp.W_in' has shape \(32, 128\), the config needs"),
        ({"vocab_size": 10**9}, r"'W_E' has shape \(50, 32\), the config needs \(1000000000, 32"),
    ],
)
def test_a_config_claiming_huge_sizes_fails_before_allocating(
    saved: dict[str, Path], tmp_path: Path, no_allocation: list[str], huge: dict, match: str
) -> None:
    ck = copy(saved["gpt2"], tmp_path / "ck")
    edit_json(ck / "config.json", lambda data: data.update(huge))
    with pytest.raises(ConvertError, match=match):
        from_hf(ck)
    assert set(no_allocation) <= {"meta"}


def test_a_reshape_error_in_memory_is_a_convert_error(saved: dict[str, Path]) -> None:
    config, files = hf.read_dir(saved["sharded"])
    tensors = hf.read_tensors(files)
    tensors["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(15, 32)  # not 2 heads
    with pytest.raises(ConvertError, match="tensors do not have the sizes of its config"):
        hf.convert(config, tensors)


# ----- non-finite values ----------------------------------------------------------------------


def test_nonfinite_weights_are_refused_unless_allowed(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    ck = copy(saved["gpt2"], tmp_path / "ck")
    tensors = load_file(str(ck / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("h.1.mlp.c_proj.weight"))
    tensors[name][0, :3] = float("nan")
    save_file(tensors, str(ck / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConvertError, match=rf"NaN or infinite values in '{name}' \(3 of 4096\)"):
        from_hf(ck)
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", str(ck), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--allow-nonfinite" in result.output
    assert not (tmp_path / "out").exists()
    args = ["convert", str(ck), "-o", str(tmp_path / "out"), "--allow-nonfinite"]
    assert runner.invoke(cli, args).exit_code == 0
    model = workbench.load(tmp_path / "out", allow_nonfinite=True)
    assert model.blocks[1].mlp.W_out.isnan().sum() == 3
    assert workbench.load(ck, allow_nonfinite=True).blocks[1].mlp.W_out.isnan().sum() == 3


NAN = float("nan")


@pytest.mark.parametrize(
    ("family", "field", "value", "match"),
    [
        ("gpt2", "layer_norm_epsilon", NAN, "layer_norm_epsilon=nan is not finite"),
        (
            "gpt2",
            "layer_norm_epsilon",
            None,
            "layer_norm_epsilon=None must be a finite number > 0",
        ),
        ("gpt2", "layer_norm_epsilon", 0.0, "layer_norm_epsilon=0.0 must be a finite number > 0"),
        ("gpt2", "layer_norm_epsilon", -1e-5, "layer_norm_epsilon=-1e-05 must be a finite number"),
        ("gpt2", "n_inner", 0, "n_inner=0 must be a positive integer or null"),
        ("gpt2", "n_head", 4.0, "n_head=4.0 must be a positive integer"),
        ("gpt2", "vocab_size", True, "vocab_size=True must be a positive integer"),
        ("gpt_neox", "layer_norm_eps", float("inf"), "layer_norm_eps=inf is not finite"),
        ("gpt_neox", "rotary_pct", 1.5, "rotary_pct=1.5 must be a finite number > 0 and <= 1"),
        ("gpt_neox", "rotary_emb_base", 0, "rotary_emb_base=0 must be a finite number > 0"),
        ("gpt_neox", "rope_parameters", {"rope_theta": NAN}, "rope_parameters.rope_theta=nan"),
        ("llama", "rms_norm_eps", None, "rms_norm_eps=None must be"),
        ("llama", "rope_theta", "10000", "rope_theta='10000' must be a finite number > 0"),
        ("mistral", "sliding_window", -4, "sliding_window=-4 must be a positive integer or null"),
        ("bert", "layer_norm_eps", NAN, "layer_norm_eps=nan is not finite"),
        ("vit", "layer_norm_eps", None, "layer_norm_eps=None must be"),
        ("vit", "patch_size", 0, "patch_size=0 must be a positive integer"),
    ],
)
def test_config_numbers_are_checked(family: str, field: str, value, match: str) -> None:
    name = {"llama": "llama-gqa", "mistral": "mistral-gqa"}.get(family, family)
    model = tiny_hf(name)
    config = model.config.to_dict() | {field: value}
    with pytest.raises(ConvertError, match=f"{family} config field {match}"):
        hf.convert(config, model.state_dict())


def test_a_nan_epsilon_is_refused_even_when_nonfinite_weights_are_allowed() -> None:
    model = tiny_hf("gpt2")
    config = model.config.to_dict() | {"layer_norm_epsilon": NAN}
    with pytest.raises(ConvertError, match="layer_norm_epsilon=nan is not finite"):
        hf.convert(config, model.state_dict(), allow_nonfinite=True)  # weights only


# ----- the command ----------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(cli, ["convert", *map(str, args)])


def test_bad_output_paths_exit_2_and_write_nothing(saved: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep")
    result = run(saved["gpt2"], "-o", tmp_path / "file")
    assert result.exit_code == 2 and "exists and is not a directory" in result.output
    result = run(saved["gpt2"], "-o", tmp_path / "file" / "out")
    assert result.exit_code == 2 and "file is not a directory" in result.output
    assert (tmp_path / "file").read_text() == "keep"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    result = run(saved["gpt2"], "-o", tmp_path / "full")
    assert result.exit_code == 2 and "pass --force" in result.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]


def test_missing_parents_are_created_and_force_replaces(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "runs" / "new" / "gpt2"
    assert run(saved["gpt2"], "-o", out).exit_code == 0
    assert (out / "workbench.json").is_file()
    assert run(saved["gpt2"], "-o", out).exit_code == 2
    result = run(saved["sharded"], "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert workbench.open_checkpoint(out).meta["source"]["model_type"] == "llama"
    assert not (out / "tokenizer.json").exists()  # the old directory's files are gone
    assert hidden(out.parent) == []


def test_modes_of_a_converted_directory_are_consistent(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    previous = os.umask(0o022)
    try:
        convert_dir(saved["gpt2"], tmp_path / "out")
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == dict.fromkeys(["model.safetensors", "workbench.json", "tokenizer.json"], 0o644)


def test_unreadable_sources_exit_2_and_write_nothing(
    saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    result = run(saved["gpt2"] / "config.json", "-o", out)
    assert result.exit_code == 2 and "is a file; pass the Hugging Face checkpoint" in result.output
    ck = copy(saved["gpt2"], tmp_path / "ck")
    (ck / "config.json").write_bytes(b'{"model_type": "gpt2", \xff}')
    result = run(ck, "-o", out)
    assert result.exit_code == 2 and "config.json is not valid JSON" in result.output
    sharded = copy(saved["sharded"], tmp_path / "sharded")
    (sharded / "model.safetensors.index.json").write_text("{not json")
    result = run(sharded, "-o", out)
    assert result.exit_code == 2 and "index.json is not valid JSON" in result.output
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": ["a"]}')
    result = run(sharded, "-o", out)
    assert result.exit_code == 2 and "has no weight_map" in result.output
    real_read = Path.read_text

    def denied(self: Path, *args, **kwargs):
        if self.name == "config.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)  # as root, chmod 000 would not stop reads
    result = run(saved["gpt2"], "-o", out)
    assert result.exit_code == 2 and "cannot read" in result.output
    assert "Permission denied" in result.output
    assert not out.exists() and hidden(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads whatever the modes say")
def test_a_directory_without_read_permission_exits_2(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    ck = copy(saved["gpt2"], tmp_path / "ck")
    ck.chmod(0)
    try:
        result = run(ck, "-o", tmp_path / "out")
    finally:
        ck.chmod(0o755)
    assert result.exit_code == 2 and "cannot read the checkpoint directory" in result.output
    assert not (tmp_path / "out").exists()


def test_a_partly_rotated_llama_is_refused_not_converted_wrong() -> None:
    model = tiny_hf("llama-gqa")
    config = model.config.to_dict()
    rope = {**(config.get("rope_parameters") or {}), "partial_rotary_factor": 0.5}
    with pytest.raises(ConvertError, match="partial_rotary_factor=0.5 is not supported"):
        hf.convert(config | {"rope_parameters": rope}, model.state_dict())
