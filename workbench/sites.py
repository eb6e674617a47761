"""The vocabulary analyses name places in a model with, in one place.

- `Site`: the short names a sweep, a probe or an inversion is written in (`resid_pre`, `z`,
  `mlp_post`, ...), each the hook point it names at a layer (`Site.Z.hook(3)`) and the axes
  its activation has besides the batch (position, head, neuron). An analysis takes the sites
  it can read by a property (`Site.in_stream`, `Site.has`), not from a table of its own, and
  parses user text once (`Site.parse`: an error lists the valid names).
- `Sender`, `Receiver`, `Edge`: the nodes and edges of the circuit graph. Senders write the
  residual stream (the embedding, a head, an MLP), receivers read it (a head's q, k or v
  input, an MLP, the logits). Their names are what the job store, exports and `--json` keep:
  senders `embed`, `a{layer}.h{head}`, `m{layer}`; receivers `a{layer}.h{head}.q|k|v`,
  `m{layer}`, `logits`; edges `sender->receiver`. Code builds the typed objects and reads
  `.name`; `parse` turns a name back into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from workbench import names
from workbench.errors import ConfigError, InputError, UnknownNameError, unknown


class UnknownSiteError(UnknownNameError, InputError):
    """A site name that is not in the vocabulary (or not among those an analysis reads)."""


class Axis(StrEnum):
    """An axis of a site's activation that an analysis can index (the batch aside)."""

    POSITION = "position"  # pos; query_pos for an attention pattern
    HEAD = "head"  # head; kv_head for keys and values under grouped-query attention
    NEURON = "neuron"  # d_mlp


# the hook schema's dimension names (workbench.schema) behind each axis
AXIS_DIMS: dict[Axis, tuple[str, ...]] = {
    Axis.POSITION: ("pos", "query_pos"),
    Axis.HEAD: ("head", "kv_head"),
    Axis.NEURON: ("d_mlp",),
}


class Site(StrEnum):
    """A place in every block, named once for all layers (a StrEnum: it is its name)."""

    RESID_PRE = "resid_pre"
    RESID_MID = "resid_mid"
    RESID_POST = "resid_post"
    ATTN_OUT = "attn_out"
    MLP_OUT = "mlp_out"
    Q = "q"
    K = "k"
    V = "v"
    PATTERN = "pattern"
    Z = "z"
    RESULT = "result"
    MLP_PRE = "mlp_pre"
    MLP_POST = "mlp_post"

    def hook(self, layer: int) -> str:
        """The hook point this site names at `layer`: a site's name is its hook's, in the
        block, its attention or its MLP."""
        match self:
            case Site.RESID_PRE | Site.RESID_MID | Site.RESID_POST | Site.ATTN_OUT | Site.MLP_OUT:
                return names.block(layer, f"hook_{self.value}")
            case Site.Q | Site.K | Site.V | Site.PATTERN | Site.Z | Site.RESULT:
                return names.attn(layer, self.value)
            case Site.MLP_PRE | Site.MLP_POST:
                return names.mlp(layer, self.value.removeprefix("mlp_"))

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The axes this site's activation has besides the batch, in the vocabulary's terms
        (the hook schema's dimensions say where they are on a given model)."""
        match self:
            case Site.Q | Site.K | Site.V | Site.PATTERN | Site.Z | Site.RESULT:
                return (Axis.POSITION, Axis.HEAD)
            case Site.MLP_PRE | Site.MLP_POST:
                return (Axis.POSITION, Axis.NEURON)
            case _:
                return (Axis.POSITION,)

    def has(self, axis: Axis) -> bool:
        return axis in self.axes

    @property
    def in_stream(self) -> bool:
        """Whether this site is the residual stream itself (what inversion reads)."""
        return self in (Site.RESID_PRE, Site.RESID_MID, Site.RESID_POST)

    @classmethod
    def parse(
        cls, name: str | Site, *, among: Iterable[Site] | None = None, what: str = "site"
    ) -> Site:
        """The site `name` names, checked to be one of `among` (default: every site); an
        error names `what` was asked for and lists the valid names."""
        valid = tuple(cls) if among is None else tuple(among)
        if name not in valid:  # a StrEnum member equals its name
            raise UnknownSiteError(unknown(what, str(name), [s.value for s in valid]).args[0])
        return cls(name)


def sites(*, axis: Axis | None = None, without: Axis | None = None) -> tuple[Site, ...]:
    """The sites with `axis` and without `without`, in the vocabulary's order."""
    return tuple(
        s for s in Site if (axis is None or s.has(axis)) and (without is None or not s.has(without))
    )


# ----- the circuit graph's nodes and edges ---------------------------------------------------


class Reads(StrEnum):
    """What a receiver is: the input of a head's queries, keys or values, an MLP's input, or
    the logits' (the final norm's input)."""

    Q = "q"
    K = "k"
    V = "v"
    MLP = "mlp"
    LOGITS = "logits"


EMBED = "embed"
LOGITS = "logits"
_HEAD = re.compile(r"a(\d+)\.h(\d+)")
_MLP = re.compile(r"m(\d+)")
_INPUT = re.compile(r"a(\d+)\.h(\d+)\.([qkv])")


@dataclass(frozen=True)
class Sender:
    """A node that writes the residual stream: the embedding (layer -1: whatever made the
    stream block 0 reads), a head (its `hook_result`) or an MLP (`hook_mlp_out`)."""

    layer: int
    head: int | None = None
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.layer < 0:
            name = EMBED
        else:
            name = f"m{self.layer}" if self.head is None else f"a{self.layer}.h{self.head}"
        object.__setattr__(self, "name", name)

    @classmethod
    def embed(cls) -> Sender:
        return cls(-1)

    @property
    def hook(self) -> str:
        """The hook point holding this sender's output (a head's: one slice of it)."""
        if self.layer < 0:
            return names.resid_pre(0)
        return names.mlp_out(self.layer) if self.head is None else names.attn_result(self.layer)

    @property
    def order(self) -> tuple[int, int]:
        """Forward order: the embedding, then per layer its heads, then its MLP."""
        return (self.layer, 1 << 30 if self.head is None else self.head)

    @classmethod
    def parse(cls, name: str) -> Sender:
        if name == EMBED:
            return cls.embed()
        if m := _HEAD.fullmatch(name):
            return cls(int(m[1]), int(m[2]))
        if m := _MLP.fullmatch(name):
            return cls(int(m[1]))
        raise ConfigError(
            f"a sender is 'embed', 'a{{layer}}.h{{head}}' or 'm{{layer}}', got {name!r}"
        )


@dataclass(frozen=True)
class Receiver:
    """A node that reads the residual stream: a head's q, k or v input (per key/value head
    under grouped-query attention), an MLP's input, or the logits' (layer n_layers)."""

    layer: int
    kind: Reads
    head: int | None = None
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        match self.kind:
            case Reads.LOGITS:
                name = LOGITS
            case Reads.MLP:
                name = f"m{self.layer}"
            case _:
                name = f"a{self.layer}.h{self.head}.{self.kind.value}"
        object.__setattr__(self, "name", name)

    @classmethod
    def logits(cls, n_layers: int) -> Receiver:
        return cls(n_layers, Reads.LOGITS)

    @classmethod
    def parse(cls, name: str, n_layers: int) -> Receiver:
        """The receiver `name` names in a model of `n_layers` layers (the logits' layer)."""
        if name == LOGITS:
            return cls.logits(n_layers)
        if m := _INPUT.fullmatch(name):
            return cls(int(m[1]), Reads(m[3]), int(m[2]))
        if m := _MLP.fullmatch(name):
            return cls(int(m[1]), Reads.MLP)
        raise ConfigError(
            f"a receiver is 'a{{layer}}.h{{head}}.q|k|v', 'm{{layer}}' or 'logits', got {name!r}"
        )


@dataclass(frozen=True)
class Edge:
    """An edge by its nodes' names (`sender`, `receiver`): what scores and stores are keyed by."""

    sender: str
    receiver: str

    @classmethod
    def between(cls, sender: Sender, receiver: Receiver) -> Edge:
        return cls(sender.name, receiver.name)

    @property
    def name(self) -> str:
        return f"{self.sender}->{self.receiver}"

    @classmethod
    def parse(cls, name: str) -> Edge:
        sender, sep, receiver = name.partition("->")
        if not sep:
            raise ConfigError(f"an edge is written 'sender->receiver', got {name!r}")
        return cls(sender.strip(), receiver.strip())
