"""Exact inversion speed: our SipIt (`probes.invert.invert`: candidates verified in batches
against the prefix's key/value cache) against a naive inverter that reruns the whole sequence
for every candidate, both exact (the same tokens, checked).

    .venv/bin/python benchmarks/invert.py

Two naive inverters, written here independently of `probes.invert`:
- "policy": the same gradient-guided proposals (the same steps from the mean embedding, then
  tokens by distance to the moved embedding), each gradient step and each candidate run as
  the whole sequence;
- "brute force": candidates in vocabulary order, each run as the whole sequence (on a
  smaller vocabulary: on GPT-2's it takes hours).
Model: GPT-2-small shape (random weights, `--layers` blocks), one random sequence of `--len`
tokens, inverted from the resid_post states of its last layer. Single thread by default;
medians of `--repeats` runs.
"""

from __future__ import annotations

import argparse

import torch
from timing import timed

import workbench
from probes.invert import hidden_states, invert
from workbench import names


def naive_invert(model, states, layer: int, tolerance: float, policy: bool, steps: int = 1):
    """Token by token: rank candidates (by the gradient policy, or by id) and run the whole
    sequence for each until one's state at the last position lies within `tolerance`."""
    hook = names.resid_post(layer)
    embed = model.W_E.detach()
    size = float((embed - embed.mean(0)).norm(dim=-1).pow(2).mean().sqrt())
    found: list[int] = []
    for target in states:

        def state(seq, e=None):
            hooks = [] if e is None else [(names.EMBED, lambda x, hook: _replace_last(x, e))]
            grabbed = []
            hooks.append((hook, lambda x, hook: grabbed.append(x[0, -1])))
            model.run_with_hooks(torch.tensor([seq]), fwd_hooks=hooks)
            return grabbed[0]

        order = range(len(embed))
        if policy:
            guess = embed.mean(0, keepdim=True)
            for step in range(steps):
                e = guess.clone().requires_grad_(True)
                loss = (state([*found, 0], e) - target).pow(2).sum()
                (grad,) = torch.autograd.grad(loss, e)
                guess = (e - size * 0.5**step * grad / grad.norm()).detach()
            order = torch.cdist(guess, embed)[0].argsort().tolist()
        with torch.no_grad():
            for token in order:
                if (state([*found, token]) - target).norm() <= tolerance:
                    found.append(token)
                    break
            else:
                raise AssertionError("the naive inverter found no token")
    return found


def _replace_last(x, e):
    return torch.cat([x[:, :-1], e[:, None]], dim=1)


def case(d_vocab: int, n_layers: int, length: int, repeats: int, brute: bool) -> None:
    model = workbench.build("gpt2-small", seed=0, d_vocab=d_vocab, n_layers=n_layers).eval()
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, d_vocab, (length,), generator=gen)
    layer = n_layers - 1
    states = hidden_states(model, tokens, layer)
    truth = tokens.tolist()
    t_ours, ours = timed(lambda: invert(model, states, layer=layer), repeats)
    assert list(ours.tokens) == truth, "ours is not exact"
    print(
        f"vocab {d_vocab}, {n_layers} layers, {length} tokens: ours {t_ours:.3f} s "
        f"({1000 * t_ours / length:.1f} ms/token, {ours.verified_per_token():.1f} verified/token)"
    )
    kinds = ("policy", "brute force") if brute else ("policy",)
    for kind in kinds:
        policy = kind == "policy"
        t_naive, found = timed(
            lambda policy=policy: naive_invert(model, states, layer, 1e-3, policy),
            repeats if policy else 1,
        )
        assert found == truth, f"naive ({kind}) is not exact"
        print(f"  naive {kind}: {t_naive:.3f} s, ours is {t_naive / t_ours:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--len", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case(50257, 12, args.len, args.repeats, brute=False)  # GPT-2 small
    case(1024, 4, args.len, args.repeats, brute=True)


if __name__ == "__main__":
    main()
