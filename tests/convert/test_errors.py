"""Bad Hugging Face checkpoints fail with errors that name the problem; nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import workbench
from tests.convert.hf_models import tiny_hf
from workbench.cli import cli
from workbench.convert import convert, convert_dir, from_hf
from workbench.errors import ConvertError, UnknownNameError


@pytest.fixture
def gpt2_dir(tmp_path: Path) -> Path:
    tiny_hf("gpt2").save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_unknown_architecture_names_the_known_ones(gpt2_dir: Path) -> None:
    edit_config(gpt2_dir, model_type="t5")
    with pytest.raises(UnknownNameError, match="model_type 't5'.*gpt2"):
        from_hf(gpt2_dir)


def test_unknown_field_and_unsupported_value_are_named(gpt2_dir: Path) -> None:
    edit_config(gpt2_dir, attn_logit_softcapping=30.0)
    with pytest.raises(ConvertError, match="attn_logit_softcapping=30.0 is not handled"):
        from_hf(gpt2_dir)
    edit_config(gpt2_dir, attn_logit_softcapping=None)
    config = json.loads((gpt2_dir / "config.json").read_text())
    del config["attn_logit_softcapping"]
    config["scale_attn_by_inverse_layer_idx"] = True
    (gpt2_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConvertError, match="scale_attn_by_inverse_layer_idx=True is not supported"):
        from_hf(gpt2_dir)


def test_mismatched_shape_and_unknown_tensor_are_named(gpt2_dir: Path) -> None:
    tensors = load_file(str(gpt2_dir / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("h.0.mlp.c_fc.weight"))
    bad = {**tensors, key: torch.zeros(32, 65)}
    with pytest.raises(ConvertError, match="mlp.W_in' has shape \\(32, 65\\)"):
        convert(json.loads((gpt2_dir / "config.json").read_text()), bad)
    extra = {**tensors, "transformer.h.0.attn.q_norm.weight": torch.ones(8)}
    with pytest.raises(ConvertError, match="q_norm.weight"):
        convert(json.loads((gpt2_dir / "config.json").read_text()), extra)


def test_missing_shard_and_pickled_weights_are_refused(tmp_path: Path) -> None:
    tiny_hf("llama-gqa").save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shard = sorted((tmp_path / "sharded").glob("*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(ConvertError, match=f"lacks the weight shard\\(s\\) {shard.name}"):
        from_hf(tmp_path / "sharded")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not read")
    with pytest.raises(ConvertError, match="pickled weights, which the workbench never loads"):
        from_hf(pickled)


def test_convert_command_writes_a_checkpoint_or_nothing(gpt2_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(cli, ["convert", str(gpt2_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    tokens = torch.randint(0, 50, (1, 6))
    torch.testing.assert_close(workbench.load(out)(tokens), workbench.load(gpt2_dir)(tokens))
    assert workbench.open_checkpoint(out).meta["source"]["model_type"] == "gpt2"
    edit_config(gpt2_dir, activation_function="swish")
    bad_out = tmp_path / "bad"
    result = runner.invoke(cli, ["convert", str(gpt2_dir), "-o", str(bad_out)])
    assert result.exit_code == 2 and "activation_function='swish'" in result.output
    assert not bad_out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ConvertError, match="not empty"):
        convert_dir(gpt2_dir, out)


def test_a_model_without_a_tokenizer_says_how_to_proceed(gpt2_dir: Path) -> None:
    ckpt = workbench.open_checkpoint(gpt2_dir)
    with pytest.raises(workbench.errors.CheckpointError, match="no tokenizer.json"):
        ckpt.encode("hello")
