"""Peers of `benchmarks/patching.py` that need their own environment (TransformerLens 2.x,
which auto-circuit requires): TransformerLens's patching loop on a `HookedTransformer` for
case (a), and auto-circuit's mask-based edge patching for case (b).

    python3 -m venv /tmp/acenv && /tmp/acenv/bin/pip install torch==2.13.0 auto-circuit \
        "transformer-lens>=2,<3" && /tmp/acenv/bin/pip install "numpy>=2" "pandas>=2.2"
    .venv/bin/python benchmarks/patching.py --write-edges edges.json --edges 60
    /tmp/acenv/bin/python benchmarks/patching_peers.py --threads 2 --edge-names edges.json \
        -o peers.json
    .venv/bin/python benchmarks/patching.py --threads 2 --edges 60 --peers peers.json

On a GPU (case c) add `--device cuda` to the last two commands (the peer environment then
needs a CUDA build of torch 2.13.0); times are taken with the GPU synchronised.

It builds the same random GPT-2 small (Hugging Face, seed 0) and the same prompts as
patching.py, loads the weights into a HookedTransformer and writes each peer's scores and
time, so that patching.py checks them equal to its own and reports the ratio.

auto-circuit runs its factorized graph (embedding, heads, MLPs -> each head's Q, K and V
inputs, MLPs, the final residual stream), the same graph as `circuits.graph` (32,491 edges for
GPT-2 small). It is driven two ways:
- per edge: one forward pass per edge with that edge's mask entry set (what `patch_mode` does,
  without its scan over every edge of the model to set the masks);
- batched: `set_mask_batch_size`, auto-circuit's experimental per-row masks, with the prompts
  repeated once per edge so that many edges share a forward pass.
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version

import torch
import transformers as T
from timing import timed
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

VOCAB = 50257


def lens_model(device: str) -> HookedTransformer:
    """The random GPT-2 small of patching.py as a TransformerLens 2.x HookedTransformer."""
    torch.manual_seed(0)
    cfg = T.GPT2Config()
    cfg._attn_implementation = "eager"
    hf = T.GPT2LMHeadModel(cfg).eval()
    lens_cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_ctx=1024, d_head=64, n_heads=12, d_mlp=3072,
        d_vocab=VOCAB, act_fn="gelu_new", normalization_type="LN", device=device,
    )  # fmt: skip
    model = HookedTransformer(lens_cfg)
    model.load_state_dict(convert_gpt2_weights(hf, lens_cfg), strict=False)
    return model.to(device).eval()


def prompts(args, seed: int):
    """patching.py's prompts: clean, corrupted, and a logit difference at the last position."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, VOCAB, (args.batch, args.seq), generator=gen)
    corrupted = torch.randint(0, VOCAB, (args.batch, args.seq), generator=gen)
    answer = torch.randint(0, VOCAB, (args.batch,), generator=gen)
    wrong = torch.randint(0, VOCAB, (args.batch,), generator=gen)
    clean, corrupted, answer, wrong = (t.to(args.device) for t in (clean, corrupted, answer, wrong))
    rows = torch.arange(args.batch, device=args.device)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        """[config, batch, pos, vocab] -> [config]"""
        last = logits[:, :, -1]
        return (last[:, rows, answer] - last[:, rows, wrong]).mean(-1)

    return clean, corrupted, metric


def node_peer(args, model: HookedTransformer) -> dict:
    clean, corrupted, metric = prompts(args, seed=1)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            _, cache = model.run_with_cache(clean)
            return patching.get_act_patch_resid_pre(
                model, corrupted, cache, lambda logits: metric(logits[None])[0]
            )

    seconds, scores = timed(run, args.repeats)
    return {
        "case": "node",
        "peer": f"transformer_lens.patching on HookedTransformer (TL {version('transformer-lens')})",
        "peer_s": round(seconds, 3),
        "scores": scores.tolist(),
    }


ENDS = {"embed": "Resid Start", "logits": "Resid End"}  # our name -> auto-circuit's


def auto_circuit_name(edge: str) -> str:
    """circuits.graph's edge name as auto-circuit spells it ('a0.h1->a1.h2.q' ->
    'A0.1->A1.2.Q', 'm3' -> 'MLP 3', embed -> 'Resid Start', logits -> 'Resid End')."""

    def node(name: str) -> str:
        if name in ENDS:
            return ENDS[name]
        if name.startswith("m"):
            return f"MLP {name[1:]}"
        layer, head, *kind = name[1:].split(".")
        return f"A{layer}.{head[1:]}" + "".join(f".{k.upper()}" for k in kind)

    return _per_node(edge, node)


def our_name(edge: str) -> str:
    """auto-circuit's edge name in circuits.graph's spelling (the inverse of the above)."""
    ours = {theirs: mine for mine, theirs in ENDS.items()}

    def node(name: str) -> str:
        if name in ours:
            return ours[name]
        if name.startswith("MLP "):
            return f"m{name[4:]}"
        layer, head, *kind = name[1:].split(".")
        return f"a{layer}.h{head}" + "".join(f".{k.lower()}" for k in kind)

    return _per_node(edge, node)


def _per_node(edge: str, node) -> str:
    sender, receiver = edge.split("->")
    return f"{node(sender)}->{node(receiver)}"


def patchable(model: HookedTransformer, slice_output: str | None = None, device: str = "cpu"):
    """auto-circuit's factorized graph of a HookedTransformer, q/k/v inputs separate: the
    graph of `circuits.graph` (embedding, heads, MLPs -> q/k/v, MLPs, the final stream)."""
    from auto_circuit.utils.graph_utils import patchable_model

    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    return patchable_model(
        model, factorized=True, slice_output=slice_output, separate_qkv=True,
        device=torch.device(device),
    )  # fmt: skip


def edge_peers(args, model: HookedTransformer) -> list[dict]:
    from auto_circuit.types import AblationType
    from auto_circuit.utils.ablation_activations import src_ablations
    from auto_circuit.utils.graph_utils import patch_mode, set_mask_batch_size

    model = patchable(model, device=args.device)
    with open(args.edge_names) as f:
        names = [auto_circuit_name(e) for e in json.load(f)["edges"]]
    by_name = {e.name: e for e in model.edges}
    edges = [by_name[n] for n in names]
    clean, corrupted, metric = prompts(args, seed=2)
    source = src_ablations(model, clean, AblationType.RESAMPLE)  # [src, batch, pos, d_model]
    b = args.batch

    def per_edge() -> torch.Tensor:
        scores = []
        with torch.inference_mode(), patch_mode(model, source):
            for edge in edges:
                mask = edge.patch_mask(model).data
                mask[edge.patch_idx] = 1.0
                scores.append(metric(model(corrupted)[None])[0])
                mask[edge.patch_idx] = 0.0
        return torch.stack(scores)

    def batched() -> torch.Tensor:
        scores = []
        for start in range(0, len(edges), args.edge_chunk):
            chunk = edges[start : start + args.edge_chunk]
            k = len(chunk)
            with set_mask_batch_size(model, k * b):
                for j, edge in enumerate(chunk):  # rows j*b .. j*b + b - 1: this edge
                    edge.patch_mask(model).data[(slice(j * b, (j + 1) * b), *edge.patch_idx)] = 1
                repeated = source.repeat(1, k, 1, 1)
                with torch.inference_mode(), patch_mode(model, repeated):
                    logits = model(corrupted.repeat(k, 1))
                scores.append(metric(logits.view(k, b, *logits.shape[1:])))
                for wrapper in model.dest_wrappers:
                    wrapper.patch_mask.data.zero_()
        return torch.cat(scores)

    with torch.inference_mode(), patch_mode(model, source):
        model(corrupted)  # warm up, as patching.py does for ours
    rows = []
    ac = f"auto-circuit {version('auto-circuit')}"
    for label, fn in ((f"{ac}, one pass per edge", per_edge), (f"{ac}, batched masks", batched)):
        seconds, scores = timed(fn, args.repeats)
        rows.append(
            {"case": "edge", "peer": label, "peer_s": round(seconds, 3), "scores": scores.tolist()}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", default="node,edge")
    parser.add_argument("--edge-names", help="JSON of patching.py --write-edges (case edge)")
    parser.add_argument("--edge-chunk", type=int, default=8, help="edges per batched pass")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    if "node" in args.cases:
        rows.append(node_peer(args, lens_model(args.device)))
    if "edge" in args.cases:
        if not args.edge_names:
            parser.error("case edge needs --edge-names (written by patching.py --write-edges)")
        rows += edge_peers(args, lens_model(args.device))
    with open(args.out, "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main()
