"""tracr's `tracr.compiler.lib` under its path: the programs of `rasp.library`."""

from rasp.library import *  # noqa: F403
from rasp.library import __all__  # noqa: F401
