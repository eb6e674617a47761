"""Peers of `benchmarks/patching.py` that need their own environment: TransformerLens 2.x's
`HookedTransformer` with its patching loop (the environment auto-circuit needs).

    python3 -m venv /tmp/acenv && /tmp/acenv/bin/pip install torch==2.13.0 auto-circuit \
        "transformer-lens>=2,<3" && /tmp/acenv/bin/pip install "numpy>=2" "pandas>=2.2"
    /tmp/acenv/bin/python benchmarks/patching_peers.py --threads 2 -o peers.json
    .venv/bin/python benchmarks/patching.py --threads 2 --cases node --peers peers.json

It builds the same random GPT-2 small (Hugging Face, seed 0) and the same prompts as
patching.py, loads the weights into a HookedTransformer, and writes the peer's scores and
time, so that patching.py checks them equal to its own and reports the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib.metadata import version

import torch
import transformers as T
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = T.GPT2Config()
    cfg._attn_implementation = "eager"
    hf = T.GPT2LMHeadModel(cfg).eval()
    lens_cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_ctx=1024, d_head=64, n_heads=12, d_mlp=3072,
        d_vocab=50257, act_fn="gelu_new", normalization_type="LN", device="cpu",
    )  # fmt: skip
    model = HookedTransformer(lens_cfg)
    model.load_state_dict(convert_gpt2_weights(hf, lens_cfg), strict=False)
    gen = torch.Generator().manual_seed(1)  # the prompts of patching.py's node case
    clean = torch.randint(0, 50257, (args.batch, args.seq), generator=gen)
    corrupted = torch.randint(0, 50257, (args.batch, args.seq), generator=gen)
    answer = torch.randint(0, 50257, (args.batch,), generator=gen)
    wrong = torch.randint(0, 50257, (args.batch,), generator=gen)
    rows = torch.arange(args.batch)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1]
        return (last[rows, answer] - last[rows, wrong]).mean()

    def run() -> torch.Tensor:
        with torch.inference_mode():
            _, cache = model.run_with_cache(clean)
            return patching.get_act_patch_resid_pre(model, corrupted, cache, metric)

    times, out = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    lens = version("transformer-lens")
    result = {
        "peer": f"transformer_lens.patching on HookedTransformer (TL {lens})",
        "peer_s": round(statistics.median(times), 3),
        "scores": out.tolist(),
    }
    with open(args.out, "w") as f:
        json.dump([result], f)


if __name__ == "__main__":
    main()
