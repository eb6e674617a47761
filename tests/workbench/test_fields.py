"""Every config field is checked against its annotated type and range (workbench.fields)."""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import numpy as np
import pytest
import torch

import workbench
from workbench.config import ModelConfig
from workbench.errors import ConfigError
from workbench.fields import Range
from workbench.model import Transformer
from workbench.options import NoPos, Relu, Rotary
from workbench.presets import get_preset, list_presets

BASE = get_preset("gpt2-small-tiny").config

# (field, bad value, words the error must hold): one or more rows per kind of field
BAD = [
    # bool: the CLI's --set tied_embeddings=False arrives as the string "False"
    ("tied_embeddings", "False", r"got 'False' \(str\).*write false unquoted"),
    ("tied_embeddings", "true", r"must be a bool.*write true unquoted"),
    ("bias", 0, r"must be a bool \(true or false\), got 0 \(int\); write false"),
    ("attn_gate", None, r"must be a bool.*got None \(NoneType\)$"),
    ("embed_norm", "0", r"must be a bool \(true or false\), got '0' \(str\)$"),
    ("kv_shift", np.bool_(True), r"must be a bool"),
    # sizes: positive integers
    ("n_layers", 0, r"n_layers must be a positive integer \(>= 1\), got 0 \(int\)"),
    ("d_model", -8, r"d_model must be a positive integer"),
    ("d_model", "32", r"got '32' \(str\); write the number 32 unquoted"),
    ("n_heads", 4.0, r"got 4.0 \(float\); write 4, not 4.0"),
    ("n_ctx", True, r"n_ctx must be a positive integer.*got True \(bool\)"),
    # an option's parameters, named option.parameter
    ("mlp", {"kind": "kan", "groups": 0}, r"mlp.groups must be a positive integer"),
    ("attention", {"kind": "pooling", "size": 0}, r"attention.size must be a positive integer"),
    ("pos", {"kind": "t5_bias", "buckets": -1}, r"pos.buckets must be a positive integer"),
    (
        "input",
        {"kind": "patches", "image_size": 16, "patch_size": 4, "channels": 0},
        r"input.channels must be a positive integer",
    ),
    # counts where 0 means "none"
    ("d_mlp", -1, r"d_mlp must be an integer >= 0, got -1"),
    ("pos", {"kind": "shaw", "max_distance": -1}, r"pos.max_distance must be an integer >= 0"),
    (
        "pos",
        {"kind": "abacus", "digits": [5], "max_offset": -2},
        r"pos.max_offset must be an integer >= 0",
    ),
    ("input", {"kind": "series", "lookback": 1.5}, r"input.lookback must be a positive .*1.5"),
    # optional sizes
    ("window", 0, r"window must be a positive integer \(>= 1\), or None, got 0"),
    ("n_kv_heads", "2", r"n_kv_heads must be .*, or None, got '2' \(str\)"),
    ("pos", {"kind": "rotary", "dim": False}, r"pos.dim must be a positive .*False \(bool\)"),
    # positive floats: epsilons, bases, scales
    ("norm_eps", 0, r"norm_eps must be a finite number > 0, got 0 \(int\)"),
    ("norm_eps", -1e-5, r"norm_eps must be a finite number > 0"),
    ("norm_eps", math.nan, r"norm_eps must be a finite number > 0, got nan"),
    ("pos", {"kind": "rotary", "base": 0.0}, r"pos.base must be a finite number > 0"),
    ("pos", {"kind": "rotary", "base": -10000}, r"pos.base must be a finite number > 0"),
    ("pos", {"kind": "xpos", "scale_base": 0}, r"pos.scale_base must be a finite number > 0"),
    (
        "pos",
        {"kind": "xpos", "scale_base": math.inf},
        r"pos.scale_base must be a finite number > 0, got inf",
    ),
    ("norm_eps", "1e-5", r"write the number 1e-5 unquoted"),
    # any finite float
    (
        "attention",
        {"kind": "clipped_softmax", "gamma": -math.inf},
        r"attention.gamma must be a finite number, got -inf",
    ),
    (
        "attention",
        {"kind": "clipped_softmax", "zeta": math.nan},
        r"attention.zeta must be a finite number, got nan",
    ),
    ("momentum", math.inf, r"momentum must be a finite number, or None, got inf"),
    ("momentum", True, r"momentum must be a finite number, or None, got True \(bool\)"),
    # enums and options: a member, its kind string, or a dict with its kind
    ("pos", {"kind": "rotary", "bse": 5}, r"pos='rotary' has no parameter 'bse' .*'base'"),
    ("pos", {"base": 5}, r"names no 'kind' of PosEncoding"),
    ("mlp", "topk", r"mlp='topk' needs k: write \{'kind': 'topk', 'k': \.\.\.\}"),
    ("pos", "rope", r"pos='rope' \(str\) is not a PosEncoding; choose one of: learned"),
    ("mlp", "GELU", r"mlp='GELU' \(str\) is not a MLPKind; did you mean 'gelu'\?"),
    ("norm", 1, r"norm=1 \(int\) is not a Norm"),
    ("mlp", NoPos(), r"is a PosEncoding, not a MLPKind"),  # a member of another family
    # tuples
    ("weight_ties", "0,0", r"weight_ties must be a tuple \(or list\) .*got '0,0' \(str\)"),
    ("weight_ties", (0, -1), r"weight_ties\[1\] must be an integer >= 0, got -1"),
    ("weight_ties", [0, True], r"weight_ties\[1\] must be an integer >= 0, got True \(bool\)"),
    ("pos", {"kind": "abacus", "digits": (1, 2.0)}, r"pos.digits\[1\] must be an integer >= 0"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_a_bad_value_names_the_field_the_value_its_type_and_what_is_accepted(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BASE.replace(**{field: value})
    with pytest.raises(ConfigError, match=message):  # the same from JSON and the CLI's --set
        workbench.build("gpt2-small-tiny", **{field: value})


def test_the_string_false_no_longer_builds_a_tied_model() -> None:
    with pytest.raises(ConfigError, match="--set tied_embeddings=false"):
        workbench.build("gpt2-small-tiny", tied_embeddings="False")
    model = workbench.build("gpt2-small-tiny", tied_embeddings=json.loads("false"))
    assert not model.config.tied_embeddings and hasattr(model, "W_U")


def test_every_field_refuses_a_value_of_the_wrong_kind() -> None:
    # a field added later is checked by its annotation alone: this walks them all
    for f in dataclasses.fields(ModelConfig):
        with pytest.raises(ConfigError, match=rf"^{f.name}\b"):
            BASE.replace(**{f.name: "not-a-value"})
        if f.name != "weight_ties":
            with pytest.raises(ConfigError, match=rf"^{f.name}\b"):
                BASE.replace(**{f.name: [1]})


def _bare_numbers(hint: object) -> list[object]:
    """The int and float types in `hint` that carry no `Range`."""
    if typing.get_origin(hint) is typing.Annotated:
        return [] if any(isinstance(e, Range) for e in typing.get_args(hint)[1:]) else [hint]
    if hint in (int, float):
        return [hint]
    return [bare for arg in typing.get_args(hint) for bare in _bare_numbers(arg)]


def test_every_numeric_field_declares_its_range() -> None:
    hints = typing.get_type_hints(ModelConfig, include_extras=True)
    bare = {name: hint for name, hint in hints.items() if _bare_numbers(hint)}
    assert not bare, "annotate these with PositiveInt, NonNegativeInt, PositiveFloat, ..."
    assert _bare_numbers(int | None) == [int]  # the walk finds what it should


def test_numbers_are_normalised_as_stored() -> None:
    config = BASE.replace(
        d_model=np.int64(32), norm_eps=np.float32(1e-3), pos={"kind": "rotary", "base": 10000}
    )
    assert type(config.d_model) is int and type(config.pos.base) is float
    assert type(config.norm_eps) is float and isinstance(config.pos, Rotary)
    assert json.loads(json.dumps(config.to_dict()))["d_model"] == 32
    looped = get_preset("looped-4x-tiny").config
    assert looped.replace(weight_ties=[0, 0, 0, 0]).weight_ties == (0, 0, 0, 0)
    assert isinstance(BASE.replace(mlp=Relu(), bias=False).mlp, Relu)


def test_unknown_field_names_give_the_closest_names() -> None:
    with pytest.raises(ConfigError, match=r"'tied_embedding': did you mean 'tied_embeddings'"):
        workbench.build("gpt2-small-tiny", tied_embedding=False)
    data = {**BASE.to_dict(), "norm_epsilon": 1e-5}
    with pytest.raises(ConfigError, match=r"'norm_epsilon': did you mean 'norm_eps'"):
        ModelConfig.from_dict(data)
    with pytest.raises(ConfigError, match=r"'n_layer': did you mean 'n_layers'"):
        ModelConfig(**{**BASE.to_dict(), "n_layer": 2})  # the constructor itself


@pytest.mark.parametrize("preset", [p.name for p in list_presets(include_tiny=True)])
def test_every_preset_passes_the_checks_and_builds(preset: str) -> None:
    config = get_preset(preset).config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with torch.device("meta"):  # the full-size presets too, without their memory
        model = Transformer(config)
    assert model.config is config
