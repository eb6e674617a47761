"""auto-circuit's ACDC for benchmarks/discovery.py, in its own environment (TransformerLens
2.x; the recipe is in benchmarks/patching_peers.py). Loads each compiled program's weights
into a `HookedTransformer`, runs `acdc_prune_scores` with one threshold on the same prompts,
and writes the time and the circuit (in `circuits.graph` names); and times auto-circuit's
EAP on the GPT-2-small-shaped model, writing its edge scores.

    /tmp/acenv/bin/python benchmarks/discovery_peers.py --models /tmp/disc -o /tmp/acdc.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

sys.path.insert(0, str(Path(__file__).parent))
from patching_peers import lens_model as gpt2
from patching_peers import our_name, patchable

# each case: auto-circuit's faithfulness target and the output positions it reads
CASES = {"reverse": ("kl_div", "not_first_seq"), "frac_prevs": ("mse", "not_first_seq"),
         "ioi": ("kl_div", "last_seq")}  # fmt: skip
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new"}


def lens_model(directory: Path) -> HookedTransformer:
    """A compiled program (ReLU MLPs, no norms) or a pre-LayerNorm GELU model trained here,
    with our weights under TransformerLens's names."""
    config = json.loads((directory / "workbench.json").read_text())["config"]
    assert config["norm"] in ("none", "layernorm") and config["norm_placement"] == "pre"
    cfg = HookedTransformerConfig(
        n_layers=config["n_layers"], d_model=config["d_model"], n_ctx=config["n_ctx"],
        d_head=config["d_head"], n_heads=config["n_heads"], d_mlp=config["d_mlp"],
        d_vocab=config["d_vocab"], d_vocab_out=config["d_vocab_out"] or config["d_vocab"],
        act_fn=ACTIVATIONS[config["mlp"]],
        normalization_type="LN" if config["norm"] == "layernorm" else None,
        attention_dir="causal" if config["mask"] == "causal" else "bidirectional",
        device="cpu",
    )  # fmt: skip
    model = HookedTransformer(cfg)
    ours = load_file(str(directory / "model.safetensors"))
    if config["tied_embeddings"]:
        ours["W_U"] = ours["W_E"].T
    renamed = {{"W_E": "embed.W_E", "W_pos": "pos_embed.W_pos", "W_U": "unembed.W_U",
                "b_U": "unembed.b_U"}.get(k, k): v for k, v in ours.items()}  # fmt: skip
    _, unexpected = model.load_state_dict(renamed, strict=False)
    assert not unexpected, unexpected
    return model.eval()


def eap_peer(args) -> dict:
    """auto-circuit's EAP (`mask_gradient_prune_scores`, logit difference, mask 0) on the
    GPT-2-small-shaped model and prompts of discovery.py's case (b)."""
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores

    model = patchable(gpt2("cpu"), "last_seq")  # case (b) runs on the CPU
    gen = torch.Generator().manual_seed(1)  # the prompts of discovery.py's case (b)
    clean = torch.randint(0, 50257, (8, 16), generator=gen)
    corrupt = torch.randint(0, 50257, (8, 16), generator=gen)
    answer = torch.randint(0, 50257, (8,), generator=gen)
    dataset = PromptDataset(clean, corrupt, [a[None] for a in answer], [torch.tensor([0])] * 8)
    loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=8)
    times, scores = [], None
    for _ in range(args.repeats + 1):  # the first run warms up
        start = time.perf_counter()
        scores = mask_gradient_prune_scores(
            model, loader, None, grad_function="logit", answer_function="avg_diff", mask_val=0.0
        )
        times.append(time.perf_counter() - start)
    table = {our_name(e.name): abs(float(e.prune_score(scores))) for e in model.edges}
    return {
        "program": "eap",
        "peer": f"auto-circuit {version('auto-circuit')} mask_gradient_prune_scores",
        "peer_s": statistics.median(times[1:]),
        "scores": table,
    }


def main() -> None:
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--threshold", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="acdc,eap")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [eap_peer(args)] if "eap" in args.cases else []
    if "acdc" not in args.cases:
        Path(args.out).write_text(json.dumps(rows))
        return
    exponent = math.floor(math.log10(args.threshold))
    base = round(args.threshold / 10**exponent)
    assert base * 10**exponent == args.threshold, "use a threshold like 1e-3 or 5e-2"
    for name, (target, positions) in CASES.items():
        model = patchable(lens_model(args.models / name), positions)
        prompts = load_file(str(args.models / name / "prompts.safetensors"))
        n = len(prompts["clean"])
        answers = [torch.tensor([0])] * n
        dataset = PromptDataset(prompts["clean"], prompts["corrupt"], answers, answers)
        loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=n)
        times, scores = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = acdc_prune_scores(
                model, loader, None, tao_exps=[exponent], tao_bases=[base],
                faithfulness_target=target,
            )  # fmt: skip
            times.append(time.perf_counter() - start)
        kept = [our_name(e.name) for e in model.edges if math.isinf(float(e.prune_score(scores)))]
        rows.append(
            {
                "program": name,
                "peer": f"auto-circuit {version('auto-circuit')} acdc_prune_scores",
                "peer_s": statistics.median(times),
                "kept": sorted(kept),
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "kept"}), flush=True)
    Path(args.out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
