"""Converted checkpoints: forward time of a workbench model converted from a Hugging Face
model, against that Hugging Face model with eager attention, on the same inputs.

    python benchmarks/convert_throughput.py --threads 2

Each family is built at the GPT-2-small shape (12 layers, d_model 768, 12 heads) with random
weights, converted with `workbench.convert.from_hf`, checked to give the same logits, then
timed in interleaved rounds. Prints a JSON line per family with medians and the ratio
workbench / Hugging Face (goal: <= 1.1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import transformers as T

from workbench.convert import from_hf

SHAPE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12)


def hf_model(family: str) -> tuple[torch.nn.Module, int]:
    """A randomly initialised GPT-2-small-shaped model of `family` and its vocabulary size
    (0 for the image model)."""
    match family:
        case "gpt2":
            cfg = T.GPT2Config()  # GPT-2 small is the default config
            cls = T.GPT2LMHeadModel
        case "gpt_neox":  # Pythia-160m
            cfg = T.GPTNeoXConfig(vocab_size=50304, intermediate_size=3072, **SHAPE)
            cls = T.GPTNeoXForCausalLM
        case "llama-gqa":
            cfg = T.LlamaConfig(
                vocab_size=32000, intermediate_size=2048, num_key_value_heads=4, **SHAPE
            )
            cls = T.LlamaForCausalLM
        case "bert":  # bert-base
            cfg = T.BertConfig()
            cls = T.BertForMaskedLM
        case "vit":  # ViT-B/16 at 224 x 224
            cfg = T.ViTConfig(num_labels=1000)
            cls = T.ViTForImageClassification
        case _:
            raise ValueError(f"unknown family {family!r}")
    cfg._attn_implementation = "eager"
    model = cls(cfg).eval()
    return model, getattr(cfg, "vocab_size", 0)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(family: str, batch: int, seq: int, left_pad: int, repeats: int, rounds: int) -> dict:
    torch.manual_seed(0)
    hf, vocab = hf_model(family)
    ours = from_hf(hf)
    if family == "vit":
        inputs = torch.randn(batch, 3, 224, 224)
        seq = (224 // 16) ** 2 + 1

        def run_hf() -> torch.Tensor:
            return hf(pixel_values=inputs).logits

        def run_ours() -> torch.Tensor:
            return ours(inputs)[:, 0]  # the class token's logits
    else:
        tokens = torch.randint(0, vocab, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[: batch // 2, :left_pad] = 0  # half the batch left-padded
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {} if family == "bert" else {"use_cache": False}

        def run_hf() -> torch.Tensor:
            return hf(tokens, attention_mask=mask, position_ids=positions, **extra).logits

        def run_ours() -> torch.Tensor:
            return ours(tokens, attention_mask=mask, position_ids=positions)

    with torch.inference_mode():
        expected, got = run_hf(), run_ours()
        if family != "vit":
            keep = mask.bool()
            expected, got = expected[keep], got[keep]
        err = (expected - got).abs().max().item()
        if err > 1e-3:
            raise SystemExit(f"{family}: logits differ from Hugging Face by {err:.2e}")
        times_hf, times_ours = [], []
        for _ in range(rounds):  # interleaved so drift in machine speed hits both alike
            times_hf.append(median_time(run_hf, repeats))
            times_ours.append(median_time(run_ours, repeats))
    h, o = statistics.median(times_hf), statistics.median(times_ours)
    return {
        "family": family,
        "batch": batch,
        "seq": seq,
        "left_pad": left_pad if family != "vit" else 0,
        "max_abs_logit_diff": float(f"{err:.2e}"),
        "hf_eager_ms": round(h * 1e3, 1),
        "workbench_ms": round(o * 1e3, 1),
        "ratio": round(o / h, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--left-pad", type=int, default=16, help="padding of half the batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per family")
    parser.add_argument(
        "--families", default="gpt2,gpt_neox,llama-gqa,bert,vit", help="comma-separated"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for family in args.families.split(","):
        result = run_case(family, args.batch, args.seq, args.left_pad, args.repeats, args.rounds)
        info = {"threads": args.threads, "torch": torch.__version__, "transformers": T.__version__}
        print(json.dumps({**result, **info}), flush=True)


if __name__ == "__main__":
    main()
