"""Hook overhead: forward time of a workbench model with no hooks attached, against the same
model with every hook point replaced by a bare identity module.

    python benchmarks/hook_overhead.py --threads 2

Prints a JSON line per case with medians and the ratio hooked / identity (targets: <= 1.2
for the tiny model at batch 1, <= 1.05 for the GPT-2-small shape at batch 8).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

import workbench


class BareIdentity(nn.Module):
    """What a hook point costs at the least: a module call that returns its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def has_hooks(self, *args: object, **kwargs: object) -> bool:
        return False


def strip_hooks(model: workbench.Transformer) -> nn.Module:
    bare = copy.deepcopy(model)
    for name in list(model.hook_dict):
        parent_name, _, leaf = name.rpartition(".")
        parent = bare.get_submodule(parent_name) if parent_name else bare
        setattr(parent, leaf, BareIdentity())
    return bare


def median_time(fn, repeats: int, device: str) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(
    preset: str, batch: int, seq: int, repeats: int, rounds: int, device: str
) -> dict[str, object]:
    model = workbench.build(preset).to(device).eval()
    bare = strip_hooks(model)
    tokens = torch.randint(0, model.config.d_vocab, (batch, seq), device=device)
    with torch.inference_mode():
        torch.testing.assert_close(model(tokens), bare(tokens))
        # interleave the two so drift in machine speed hits both alike
        hooked, plain = [], []
        for _ in range(rounds):
            hooked.append(median_time(lambda: model(tokens), repeats, device))
            plain.append(median_time(lambda: bare(tokens), repeats, device))
    h, p = statistics.median(hooked), statistics.median(plain)
    return {
        "preset": preset,
        "batch": batch,
        "seq": seq,
        "device": device,
        "hooked_ms": round(h * 1e3, 3),
        "identity_ms": round(p * 1e3, 3),
        "ratio": round(h / p, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per round (tiny)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # (preset, batch, seq, repeats per round, rounds): the big model gets fewer, longer runs
    cases = [
        ("gpt2-small-tiny", 1, 32, args.repeats, args.rounds),
        ("gpt2-small", 8, 64, max(3, args.repeats // 6), args.rounds),
    ]
    for preset, batch, seq, repeats, rounds in cases:
        result = run_case(preset, batch, seq, repeats, rounds, args.device)
        print(json.dumps({**result, "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
