"""Bad input gets a clear error that names the problem and the fix."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import workbench
from workbench.checkpoint import save
from workbench.errors import CheckpointError, ConfigError, InputError, UnknownNameError
from workbench.tasks import make_task


def test_unknown_preset_lists_closest() -> None:
    with pytest.raises(UnknownNameError, match="'gpt2-small'"):
        workbench.build("gpt2-smal")
    with pytest.raises(UnknownNameError, match="llama-7b"):
        workbench.build("llama7b")


def test_unknown_task_lists_closest() -> None:
    with pytest.raises(UnknownNameError, match="'induction'"):
        make_task("inductoin")


def test_unknown_config_field_and_bad_enum_value() -> None:
    with pytest.raises(ConfigError, match="did you mean 'n_heads'"):
        workbench.build("gpt2-small-tiny", n_head=3)
    with pytest.raises(
        ConfigError, match="not a PosEncoding; choose one of: learned, sinusoidal, rotary"
    ):
        workbench.build("gpt2-small-tiny", pos="rope")
    with pytest.raises(ConfigError, match="must divide n_heads"):
        workbench.build("gpt2-small-tiny", n_kv_heads=3)


@pytest.fixture
def model() -> workbench.Transformer:
    return workbench.build("gpt2-small-tiny")  # d_vocab 50, n_ctx 32


def test_token_ids_out_of_range(model: workbench.Transformer) -> None:
    with pytest.raises(InputError, match=r"0\.\.49 \(d_vocab\), got values from 3 to 50"):
        model(torch.tensor([[3, 50]]))
    with pytest.raises(InputError, match="from -1"):
        model(torch.tensor([[-1, 4]]))


def test_sequence_longer_than_positional_limit(model: workbench.Transformer) -> None:
    with pytest.raises(InputError, match="sequence length 33 .*n_ctx=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_wrong_dtype_and_shape(model: workbench.Transformer) -> None:
    with pytest.raises(
        InputError, match=r"integer ids, got dtype torch.float32; use tokens.long\(\)"
    ):
        model(torch.zeros(1, 4))
    with pytest.raises(InputError, match=r"shape \[batch, pos\], got \(4,\); .*unsqueeze\(0\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="torch.Tensor"):
        model([[1, 2, 3]])


def test_checkpoint_with_missing_files(model: workbench.Transformer, tmp_path: Path) -> None:
    save(model, tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing model.safetensors"):
        workbench.load(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="does not exist"):
        workbench.load(tmp_path / "nowhere")


def test_checkpoint_with_mismatched_shapes(model: workbench.Transformer, tmp_path: Path) -> None:
    save(model, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "workbench.json").read_text())
    meta["config"]["d_mlp"] = 128
    (tmp_path / "ck" / "workbench.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError,
        match=r"'blocks.0.mlp.W_in' has shape \(32, 64\), the config needs \(32, 128\)",
    ):
        workbench.load(tmp_path / "ck")


def test_checkpoint_with_missing_tensor(model: workbench.Transformer, tmp_path: Path) -> None:
    save(model, tmp_path / "ck")
    tensors = {k: v for k, v in model.state_dict().items() if k != "W_pos"}
    save_file(tensors, str(tmp_path / "ck" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensor 'W_pos'"):
        workbench.load(tmp_path / "ck")


class _Exploit:
    """Unpickling this writes a marker file: proof that a loader unpickled it."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


@pytest.mark.parametrize("where", ["file", "dir-only-pickle", "disguised-as-safetensors"])
def test_pickle_offered_as_weights_is_refused_unopened(
    model: workbench.Transformer, tmp_path: Path, where: str
) -> None:
    marker = tmp_path / "marker.txt"
    exploit = _Exploit()
    exploit.marker = marker
    payload = pickle.dumps(exploit)
    ck = tmp_path / "ck"
    if where == "file":
        target = tmp_path / "model.pt"
        target.write_bytes(payload)
    elif where == "dir-only-pickle":
        ck.mkdir()
        (ck / "pytorch_model.bin").write_bytes(payload)
        (ck / "workbench.json").write_text(json.dumps({"config": model.config.to_dict()}))
        target = ck
    else:
        save(model, ck)
        (ck / "model.safetensors").write_bytes(payload)
        target = ck
    with pytest.raises(CheckpointError, match="never unpickles"):
        workbench.load(target)
    assert not marker.exists()


def test_unknown_builtin_model_lists_the_shipped_ones() -> None:
    with pytest.raises(UnknownNameError, match="induction-2l"):
        workbench.load("induction-2")


def test_task_vocabulary_errors() -> None:
    task = make_task("modadd", p=7)
    assert task.encode("3 4 =") == [3, 4, 7]
    with pytest.raises(InputError, match="'9' is not in the vocabulary of task 'modadd'"):
        task.encode("3 9 =")


def test_d_vocab_out_sets_the_logits_width_and_is_checked() -> None:
    model = workbench.build("gpt2-small-tiny", d_vocab_out=7, tied_embeddings=False)
    tokens = torch.randint(0, model.config.d_vocab, (2, 5))
    assert model(tokens).shape == (2, 5, 7)
    spec = {s.name: s for s in model.hook_specs()}["hook_logits"]
    assert spec.shape[-1] == 7
    with pytest.raises(ConfigError, match="d_vocab_out must be a positive integer"):
        workbench.build("gpt2-small-tiny", d_vocab_out=0, tied_embeddings=False)
    with pytest.raises(ConfigError, match="tied_embeddings"):
        workbench.build("gpt2-small-tiny", d_vocab_out=7, tied_embeddings=True)
