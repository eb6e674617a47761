"""The authors' Transformer Program (princeton-nlp/TransformerPrograms), recorded step by step
for tests/rasp/learned/test_peer_steps.py to compare our model and training with.

It runs in their code's own environment (torch 2.13 CPU, their requirements.txt, seqeval and
safetensors), from a clone of their repository:

    /tmp/tpenv/bin/python benchmarks/ltp_reference.py /tmp/tp/TransformerPrograms

For each case (hist at their RASP script's common setting, without a causal mask; Dyck-2 in a
smaller model, 2 layers, 2 + 2 heads, 1 + 1 MLPs, d_mlp 32, seed 4, with one) it builds their
model as their `run.py` does (their `set_seed`, their data generator with seed 0), takes the
first 64 training examples, and records with every Gumbel-softmax replaced by a plain softmax
at the same temperature (so both sides are deterministic): the initial parameters, the logits
and the loss at tau 3, the gradients, the loss of one Adam step (lr 5e-2) at each tau of
`TAUS`, the parameters after them, and the argmax model's outputs then. One safetensors file
per case in tests/rasp/learned/peer_steps/ (tensors; the settings and losses in its
metadata).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parents[1] / "tests" / "rasp" / "learned" / "peer_steps"
EXAMPLES = 64
TAUS = (3.0, 1.0, 0.3, 0.1)  # one Adam step at each
CASES = {
    "hist": {
        "task": "hist",
        "vocab_size": 8,
        "max_length": 8,
        "min_length": 1,
        "causal": False,
        "n_layers": 3,
        "n_heads_cat": 4,
        "n_heads_num": 4,
        "n_cat_mlps": 2,
        "n_num_mlps": 2,
        "d_mlp": 64,
        "seed": 0,
    },
    "dyck2": {
        "task": "dyck2",
        "vocab_size": 2,
        "max_length": 16,
        "min_length": 16,
        "causal": True,
        "n_layers": 2,
        "n_heads_cat": 2,
        "n_heads_num": 2,
        "n_cat_mlps": 1,
        "n_num_mlps": 1,
        "d_mlp": 32,
        "seed": 4,
    },
}


def record(case: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from src.models.programs import TransformerProgramModel, argmax, softmax
    from src.run import set_seed
    from src.utils import data_utils

    (_, _, _, idx_w, _, idx_t, _, X_train, Y_train, *_rest) = data_utils.get_dataset(
        name=case["task"],
        vocab_size=case["vocab_size"],
        dataset_size=20000,
        min_length=case["min_length"],
        max_length=case["max_length"],
        seed=0,
        get_val=True,
        unique=1,
    )
    unembed_mask = np.array([t in ("<unk>", "<pad>") for t in idx_t])
    set_seed(case["seed"])
    model = TransformerProgramModel(
        d_vocab=len(idx_w),
        d_vocab_out=len(idx_t),
        n_vars_cat=1,
        n_vars_num=1,
        d_var=case["max_length"],
        n_heads_cat=case["n_heads_cat"],
        n_heads_num=case["n_heads_num"],
        d_mlp=case["d_mlp"],
        n_cat_mlps=case["n_cat_mlps"],
        n_num_mlps=case["n_num_mlps"],
        mlp_vars_in=2,
        n_layers=case["n_layers"],
        n_ctx=X_train.shape[1],
        sample_fn=softmax,
        attention_type="cat",
        rel_pos_bias="fixed",
        unembed_mask=unembed_mask,
        one_hot_embed=True,
        count_only=True,
        selector_width=0,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=5e-2)
    x = torch.as_tensor(X_train[:EXAMPLES])
    y = torch.as_tensor(Y_train[:EXAMPLES])
    m = (x != 0).float()
    mask = (m.unsqueeze(-1) @ m.unsqueeze(-2)).bool()
    if case["causal"]:
        mask = torch.tril(mask)

    def loss_of(logits: torch.Tensor) -> torch.Tensor:  # their run_training's "per_token"
        losses = -logits.log_softmax(-1).gather(2, y.unsqueeze(-1)).squeeze(-1)
        return (losses.masked_fill(y == 0, 0.0).sum(-1) / (y != 0).sum(-1)).mean()

    tensors = {"tokens": x, "targets": y, "unembed_mask": torch.as_tensor(unembed_mask)}
    tensors |= {
        f"init.{k}": v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
    }
    losses = []
    for step, tau in enumerate(TAUS):
        model.set_temp(tau, softmax)
        logits = model(x, mask=mask)
        loss = loss_of(logits)
        loss.backward()
        if step == 0:
            tensors["logits"] = logits.detach().clone()
            tensors |= {
                f"grad.{k}": v.grad.detach().clone()
                for k, v in model.named_parameters()
                if v.requires_grad
            }
        losses.append(float(loss.detach()))
        opt.step()
        opt.zero_grad()
    tensors |= {
        f"final.{k}": v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
    }
    model.set_temp(0.01, argmax)
    with torch.no_grad():
        tensors["argmax_outputs"] = model(x, mask=mask).argmax(-1)
    meta = {
        "case": json.dumps(case),
        "taus": json.dumps(TAUS),
        "losses": json.dumps(losses),
        "words": json.dumps(list(idx_w)),
        "tags": json.dumps(list(idx_t)),
    }
    return {k: v.contiguous() for k, v in tensors.items()}, meta


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    torch.set_num_threads(1)
    HERE.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        tensors, meta = record(case)
        save_file(tensors, str(HERE / f"{name}.safetensors"), metadata=meta)
        print(name, json.loads(meta["losses"]))


if __name__ == "__main__":
    main()
