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


@pytest.mark.parametrize(
    ("dtype", "why"),
    [
        (torch.uint8, "index as masks"),  # W_E[uint8] picks rows by a mask, not ids
        (torch.bool, "index as masks"),
        (torch.int8, "int64 or int32"),
        (torch.int16, "int64 or int32"),
        (torch.complex64, "int64 or int32"),
        (torch.complex128, "int64 or int32"),
        (torch.float16, "int64 or int32"),
    ],
    ids=str,
)
def test_token_dtypes_other_than_int64_and_int32_are_refused(
    model: workbench.Transformer, dtype: torch.dtype, why: str
) -> None:
    tokens = torch.tensor([[1, 0, 1, 1]])
    with pytest.raises(InputError, match=rf"got dtype {dtype}; use tokens.long\(\) .*{why}"):
        model(tokens.to(dtype))
    torch.testing.assert_close(model(tokens.int()), model(tokens), atol=0, rtol=0)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InputError, match=r"no sequences \(batch size 0\)"):
        workbench.build("gpt2-small-tiny")(torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(InputError, match=r"no images \(batch size 0\)"):
        workbench.build("vit-tiny-patch4-tiny")(torch.zeros(0, 1, 16, 16))
    with pytest.raises(InputError, match=r"no sequences \(batch size 0\)"):
        workbench.build("itransformer-tiny")(torch.zeros(0, 32, 3))


def test_float_inputs_of_another_dtype_than_the_weights_are_named() -> None:
    with pytest.raises(InputError, match=r"images are torch.float64 but the model's weights"):
        workbench.build("vit-tiny-patch4-tiny")(torch.zeros(1, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(InputError, match=r"pass series.to\(torch.float32\)"):
        workbench.build("itransformer-tiny")(torch.zeros(1, 32, 3, dtype=torch.float16))


def test_attention_mask_must_hold_zeros_and_ones(model: workbench.Transformer) -> None:
    tokens = torch.randint(0, 50, (2, 4), generator=torch.Generator().manual_seed(0))
    ones = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    with pytest.raises(InputError, match=r"attention_mask must hold 1 .* and 0 .* only, got \[2\]"):
        model(tokens, attention_mask=ones * 2)  # .bool() would read 2 as a real token
    additive = torch.tensor([[0.0, 0, 0, 0], [-1e9, 0, 0, 0]])  # Hugging Face's extended form
    with pytest.raises(InputError, match=r"got \[-1000000000.0\]; .*\(mask == 0\).long\(\)"):
        model(tokens, attention_mask=additive)
    with pytest.raises(InputError, match=r"got dtype torch.complex64"):
        model(tokens, attention_mask=ones.to(torch.complex64))
    with pytest.raises(InputError, match=r"must be a torch.Tensor \[batch, pos\], got list"):
        model(tokens, attention_mask=ones.tolist())
    expected = model(tokens, attention_mask=ones)
    for same in (ones.bool(), ones.float(), ones.int()):
        torch.testing.assert_close(model(tokens, attention_mask=same), expected, atol=0, rtol=0)


def test_an_attention_mask_row_without_a_real_token_is_refused(
    model: workbench.Transformer,
) -> None:
    tokens = torch.randint(0, 50, (3, 4), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1]])
    with pytest.raises(InputError, match=r"rows \[1\] have no real token .*drop the empty rows"):
        model(tokens, attention_mask=mask)
    with pytest.raises(InputError, match=r"rows \[1\] have no real token"):
        model(tokens, attention_mask=mask.bool())


def test_position_ids_must_be_integers() -> None:
    model = workbench.build("llama-7b-tiny")
    tokens = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(InputError, match=r"integer positions .*got dtype torch.float32; round"):
        model(tokens, position_ids=torch.tensor([[0.0, 1.5, 2.0, 3.0]]))  # .long() truncated
    with pytest.raises(InputError, match=r"got dtype torch.bool"):
        model(tokens, position_ids=torch.tensor([[0, 1, 1, 1]]).bool())
    torch.testing.assert_close(
        model(tokens, position_ids=torch.arange(4, dtype=torch.int32)[None]), model(tokens)
    )
