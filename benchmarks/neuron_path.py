"""Influential-neuron-path search speed: our layer-progressive search (`neuron_path`: the
scaled runs up to each layer computed once, candidates as rank-one changes after it, chunks
of candidates x integrated-gradient steps in one forward-mode batch) against the
straightforward search that computes every candidate's joint influence with
`joint_influence` (its m steps batched, every layer recomputed). Both must find the same path.

    .venv/bin/python benchmarks/neuron_path.py

Models (random weights): the vision preset vit-tiny-patch4 (one image, read at the class
token) and the language preset gelu-2l (16 tokens, read at the last one), each as the preset
(2 layers) and with 6 layers.
m = 20 steps. Single thread by default; medians of `--repeats` runs of ours, one of the
straightforward search.
"""

from __future__ import annotations

import argparse

import torch
from timing import timed

import workbench
from probes.neuron_path import joint_influence, neuron_path


def straightforward_path(model, inputs, target: int, steps: int) -> tuple[int, ...]:
    path: list[tuple[int, int]] = []
    for layer in range(model.config.n_layers):
        scores = [
            joint_influence(model, inputs, target, [*path, (layer, unit)], steps=steps)
            for unit in range(model.config.d_mlp)
        ]
        path.append((layer, max(range(len(scores)), key=scores.__getitem__)))
    return tuple(unit for _, unit in path)


def case(name: str, model, inputs, steps: int, repeats: int) -> None:
    position = 0 if model.input_embed is not None else -1
    with torch.no_grad():
        target = int(model(inputs)[0, position].argmax())
    t_ours, ours = timed(lambda: neuron_path(model, inputs, target, steps=steps), repeats)
    t_plain, plain = timed(lambda: straightforward_path(model, inputs, target, steps), 1)
    assert ours.neurons == plain, f"different paths: {ours.neurons} vs {plain}"
    c = model.config
    print(
        f"{name} ({c.n_layers} layers, d_mlp {c.d_mlp}): ours {t_ours:.2f} s, straightforward "
        f"{t_plain:.2f} s: {t_plain / t_ours:.1f}x faster, same path {ours.neurons}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    for layers in (2, 6):
        vit = workbench.build("vit-tiny-patch4", seed=0, n_layers=layers).eval()
        side = vit.config.input.image_size
        image = torch.randn(1, vit.config.input.channels, side, side, generator=gen)
        case("vit-tiny-patch4", vit, image, args.steps, args.repeats)
        lm = workbench.build("gelu-2l", seed=0, n_layers=layers).eval()
        tokens = torch.randint(0, lm.config.d_vocab, (1, 16), generator=gen)
        case("gelu-2l", lm, tokens, args.steps, args.repeats)


if __name__ == "__main__":
    main()
