"""Check `cfg` and `tl_state_dict()` of the lens against TransformerLens 2.x's own
`HookedTransformer` (which TransformerLens 4 no longer has, so it runs in a second
environment): export each preset's TransformerLens config, TransformerLens-named weights and
reference logits with the workbench, then build `HookedTransformer(HookedTransformerConfig(
**cfg))` in the TransformerLens 2.x environment, load the weights and compare the logits.

    python3 -m venv /tmp/acenv && /tmp/acenv/bin/pip install torch==2.13.0 \
        "transformer-lens>=2,<3"
    .venv/bin/python scripts/tl_roundtrip.py export /tmp/tlx gpt2-small-tiny llama2-70b-tiny
    /tmp/acenv/bin/python scripts/tl_roundtrip.py check /tmp/tlx gpt2-small-tiny llama2-70b-tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def export(out: Path, presets: list[str]) -> None:
    import workbench
    from workbench.lens import HookedTransformer

    out.mkdir(parents=True, exist_ok=True)
    for preset in presets:
        model = HookedTransformer.from_model(workbench.build(preset, seed=0))
        cfg = {k: v for k, v in model.cfg.to_dict().items() if k not in ("device", "dtype")}
        weights = {k: v.detach().contiguous().clone() for k, v in model.tl_state_dict().items()}
        tokens = torch.randint(0, model.config.d_vocab, (2, 7), generator=torch.Generator())
        save_file(weights, str(out / f"{preset}.safetensors"))
        save_file({"tokens": tokens, "logits": model(tokens).detach()}, str(out / f"{preset}.ref"))
        (out / f"{preset}.json").write_text(json.dumps(cfg))


def check(out: Path, presets: list[str]) -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    known = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    for preset in presets:
        cfg = json.loads((out / f"{preset}.json").read_text())
        model = HookedTransformer(
            HookedTransformerConfig(**{k: v for k, v in cfg.items() if k in known})
        )
        missing, unexpected = model.load_state_dict(
            load_file(str(out / f"{preset}.safetensors")), strict=False
        )
        built = ("mask", "IGNORE", "rotary_sin", "rotary_cos", "pos_embed.W_pos")
        missing = [k for k in missing if not k.endswith(built)]  # what TransformerLens makes
        ref = load_file(str(out / f"{preset}.ref"))
        diff = (model(ref["tokens"]) - ref["logits"]).abs().max().item()
        print(
            json.dumps(
                {
                    "preset": preset,
                    "max_logit_diff": diff,
                    "missing": missing,
                    "unexpected": unexpected,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["export", "check"])
    parser.add_argument("out", type=Path)
    parser.add_argument("presets", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    (export if args.step == "export" else check)(args.out, args.presets)


if __name__ == "__main__":
    main()
