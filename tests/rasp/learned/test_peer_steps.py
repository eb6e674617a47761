"""Our Transformer Program computes and trains as the authors' does: their model
(princeton-nlp/TransformerPrograms), recorded in their own environment by
benchmarks/ltp_reference.py (peer_steps/*.safetensors), with its parameters loaded into ours,
gives the same logits, loss and gradients, the same losses over four Adam steps at falling
temperatures, the same update of the parameters (within 0.1% of its size) and the same
argmax outputs after them. Every Gumbel-softmax
is a plain softmax at the same temperature on both sides, so the comparison is deterministic;
the noise itself is the one thing not compared (ours draws -log(-log u), theirs -log of an
exponential sample: the same Gumbel distribution, other draws)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from rasp.learned import tasks
from rasp.learned.model import ProgramModel, ProgramShape, Sampler
from rasp.learned.train import sequence_loss

HERE = Path(__file__).parent / "peer_steps"


def read(name: str) -> tuple[dict[str, Tensor], dict]:
    path = str(HERE / f"{name}.safetensors")
    with safe_open(path, "pt") as f:
        meta = dict(f.metadata())
    return load_file(path), meta


def ours_from_theirs(theirs: dict[str, Tensor], prefix: str, shape: ProgramShape) -> dict:
    """Their parameters (`prefix` + their names) as our model's state dict."""

    def t(name: str) -> Tensor:
        return theirs[f"{prefix}{name}"]

    def mlps(block: str, kind: str, n: int) -> dict[str, Tensor]:
        each = [f"{block}.{kind}.mlps.{i}." for i in range(n)]
        return {
            "read": torch.stack([t(m + "W_read.W") for m in each]),
            "W_in": torch.stack([t(m + "W_in").T for m in each]),
            "b_in": torch.stack([t(m + "b_in")[None] for m in each]),
            "W_out": torch.stack([t(m + "W_out").T for m in each]),
            "b_out": torch.stack([t(m + "b_out")[None] for m in each]),
        }

    state = {"W_U": t("unembed.W_U")}
    for layer in range(shape.n_layers):
        b, ours = f"blocks.{layer}", f"layers.{layer}"
        state |= {
            f"{ours}.cat_read": torch.stack([t(f"{b}.cat_attn.W_{m}.W") for m in "QKV"]),
            f"{ours}.cat_pred": t(f"{b}.cat_attn.W_pred.W"),
            f"{ours}.num_read": torch.stack([t(f"{b}.num_attn.W_{m}.W") for m in "QK"]),
            f"{ours}.num_value": t(f"{b}.num_attn.W_V.W"),
            f"{ours}.num_pred": t(f"{b}.num_attn.W_pred.W"),
        }
        for kind, n in (("cat_mlp", shape.cat_mlps), ("num_mlp", shape.num_mlps)):
            state |= {f"{ours}.{kind}.{k}": v for k, v in mlps(b, kind, n).items()}
    return state


def model_and_record(name: str) -> tuple[ProgramModel, dict[str, Tensor], dict]:
    tensors, meta = read(name)
    case = json.loads(meta["case"])
    masked = tuple(int(i) for i in torch.nonzero(tensors["unembed_mask"]).flatten())
    shape = ProgramShape(
        d_vocab=len(json.loads(meta["words"])),
        d_out=len(json.loads(meta["tags"])),
        n_ctx=tensors["tokens"].shape[1],
        d_var=case["max_length"],
        n_layers=case["n_layers"],
        cat_heads=case["n_heads_cat"],
        num_heads=case["n_heads_num"],
        cat_mlps=case["n_cat_mlps"],
        num_mlps=case["n_num_mlps"],
        d_mlp=case["d_mlp"],
        autoregressive=case["causal"],
        masked_outputs=masked,
    )
    model = ProgramModel(shape)
    model.load_state_dict(ours_from_theirs(tensors, "init.", shape))
    return model, tensors, meta


@pytest.mark.parametrize("name", ["hist", "dyck2"])
def test_same_logits_loss_and_gradients(name: str) -> None:
    model, rec, meta = model_and_record(name)
    tau = json.loads(meta["taus"])[0]
    logits = model(rec["tokens"], Sampler(tau, None, hard=False))
    real = rec["logits"] > -1e29  # their masked outputs are -1e30 as ours
    assert torch.equal(real, logits > -1e29)
    torch.testing.assert_close(logits[real], rec["logits"][real], rtol=1e-4, atol=1e-5)
    loss = sequence_loss(logits, rec["targets"])
    assert loss.item() == pytest.approx(json.loads(meta["losses"])[0], rel=1e-5)
    loss.backward()
    grads = ours_from_theirs(rec, "grad.", model.shape)
    for key, param in model.named_parameters():
        assert param.grad is not None, key
        torch.testing.assert_close(param.grad, grads[key], rtol=1e-3, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", ["hist", "dyck2"])
def test_same_training_steps_and_argmax_model(name: str) -> None:
    model, rec, meta = model_and_record(name)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    losses = []
    for tau in json.loads(meta["taus"]):
        loss = sequence_loss(model(rec["tokens"], Sampler(tau, None, hard=False)), rec["targets"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses == pytest.approx(json.loads(meta["losses"]), rel=1e-4)
    # Adam divides each gradient by its running size, so where a gradient is ~0 (1e-8) the
    # rounding of either side's sums decides a step of up to lr: compare the whole update.
    init = ours_from_theirs(rec, "init.", model.shape)
    final = ours_from_theirs(rec, "final.", model.shape)
    params = dict(model.named_parameters())
    ours = torch.cat([(params[k].detach() - init[k]).flatten() for k in sorted(params)])
    theirs = torch.cat([(final[k] - init[k]).flatten() for k in sorted(params)])
    assert float((ours - theirs).norm() / theirs.norm()) < 1e-3
    assert torch.equal(model.predict(rec["tokens"]), rec["argmax_outputs"])


@pytest.mark.parametrize("name", ["hist", "dyck2"])
def test_same_training_examples_and_vocabularies(name: str) -> None:
    rec, meta = read(name)
    data = tasks.load(json.loads(meta["case"])["task"], seed=0)
    assert list(data.words) == json.loads(meta["words"])
    assert list(data.tags) == json.loads(meta["tags"])
    n = len(rec["tokens"])
    assert (data.train.inputs[:n] == rec["tokens"].numpy()).all()
    assert (data.train.targets[:n] == rec["targets"].numpy()).all()
