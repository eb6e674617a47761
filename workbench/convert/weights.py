"""Moving Hugging Face tensors into workbench layouts, with every tensor accounted for."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from torch import Tensor

from workbench.errors import ConvertError


class TensorSource:
    """The checkpoint's tensors under an optional model prefix ('transformer.', 'model.'),
    remembering which were used so that leftovers can be reported."""

    def __init__(self, tensors: Mapping[str, Tensor], prefixes: Iterable[str]) -> None:
        self.tensors = dict(tensors)
        self.prefix = next((p for p in prefixes if any(k.startswith(p) for k in self.tensors)), "")
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return self._key(name) in self.tensors

    def _key(self, name: str) -> str:
        plain = self.prefix + name
        return plain if plain in self.tensors or name not in self.tensors else name

    def get(self, name: str) -> Tensor:
        key = self._key(name)
        if key not in self.tensors:
            raise ConvertError(
                f"the checkpoint has no tensor {self.prefix + name!r}; is a weight file "
                "(shard) missing, or is this another architecture?"
            )
        self.used.add(key)
        return self.tensors[key]

    def check_all_used(self, ignore: str = r"$^") -> None:
        """Raise unless every tensor was used or matches the `ignore` pattern."""
        left = sorted(k for k in self.tensors if k not in self.used and not re.search(ignore, k))
        if left:
            more = f" (and {len(left) - 5} more)" if len(left) > 5 else ""
            raise ConvertError(
                f"the converter does not know the tensor(s) {', '.join(left[:5])}{more}: "
                "the checkpoint has parts the workbench model would not reproduce"
            )


def in_heads(weight: Tensor, n_heads: int) -> Tensor:
    """nn.Linear weight [heads * d_head, d_model] -> [head, d_model, d_head]."""
    out, d = weight.shape
    return weight.T.reshape(d, n_heads, out // n_heads).permute(1, 0, 2)


def bias_heads(bias: Tensor, n_heads: int) -> Tensor:
    """[heads * d_head] -> [head, d_head]."""
    return bias.reshape(n_heads, -1)


def out_heads(weight: Tensor, n_heads: int) -> Tensor:
    """nn.Linear weight [d_model, heads * d_head] -> [head, d_head, d_model]."""
    d, inner = weight.shape
    return weight.T.reshape(n_heads, inner // n_heads, d)
