"""`workbench rasp repl`: the official interpreter's own REPL sessions (tech-srl/RASP
tests/in) give its expected output (tests/tgt) line for line, and a session on a
pseudo-terminal has prompts, continuation lines, examples, draw and history."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rasp.repl import Session

HERE = Path(__file__).parent / "techsrl"
SESSIONS = sorted((HERE / "sessions" / "in").glob("*.txt"))
# The official REPL reports syntax errors with ANTLR's wording; ours says where and what
# could have stood there. Both ignore the input: compared as that.
SYNTAX = re.compile(r"^(>> )*\t!! (antlr exception|syntax error): .* \t-- ignoring input$")
# Statements whose error is worded differently (its segment: the n-th prompt's output)
WORDING = {
    ("some_errors", 3): "calling a number: 'not implemented this command yet! ignoring' there",
    ("some_errors", 5): "averaging strings: our message names the aggregate",
}


def transcript(path: Path) -> str:
    """Our REPL's output on the session `path`, as the official tests capture it: standard
    input redirected (each prompt written, no echo), the working directory's path written
    `[current]`, and a final newline."""
    out = io.StringIO()
    lines = iter(path.read_text().splitlines())

    def read(prompt: str) -> str:
        out.write(prompt)
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    Session(out, cwd=HERE).run(read)
    return (out.getvalue() + "\n").replace(str(HERE), "[current]")


def normalised(text: str, session: str) -> list[str]:
    segments = text.split(">> ")
    for (name, index), _ in WORDING.items():
        if name == session:
            segments[index] = "<worded differently>\n"
    lines = ">> ".join(segments).split("\n")
    lines = ["<syntax error>" if SYNTAX.match(line) else line for line in lines]
    return [line.replace("RASP_support/rasplib function", "rasplib function") for line in lines]


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_the_official_sessions_give_the_official_output(path: Path) -> None:
    expected = (HERE / "sessions" / "tgt" / path.name).read_text()
    ours = transcript(path)
    assert normalised(ours, path.stem) == normalised(expected, path.stem)


def test_all_but_two_sessions_are_the_same_to_the_byte() -> None:
    """The two hold syntax errors (ANTLR's wording), the library's file name and the two
    WORDING statements; every other session is identical."""
    tgt = HERE / "sessions" / "tgt"
    differ = {p.stem for p in SESSIONS if transcript(p) != (tgt / p.name).read_text()}
    assert len(SESSIONS) == 21 and differ == {"set_reserved", "some_errors"}


class Terminal:
    """`workbench rasp repl` on a pseudo-terminal: what a person at a terminal sees."""

    def __init__(self, cwd: Path) -> None:
        self.fd_main, fd_child = pty.openpty()
        env = dict(os.environ, HOME=str(cwd), TERM="dumb", COLUMNS="200")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "rasp", "repl"],
            stdin=fd_child, stdout=fd_child, stderr=fd_child, cwd=cwd, env=env,
            close_fds=True,
        )  # fmt: skip
        os.close(fd_child)
        self.seen = ""

    def until(self, text: str, timeout: float = 60) -> str:
        """Read until `text` has appeared after what was read before; return the new part."""
        start, end = len(self.seen), time.monotonic() + timeout
        while text not in self.seen[start:]:
            ready, _, _ = select.select([self.fd_main], [], [], max(end - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"no {text!r} in {self.seen[start:]!r}")
            self.seen += os.read(self.fd_main, 4096).decode(errors="replace")
        return self.seen[start:]

    def send(self, keys: str) -> None:
        os.write(self.fd_main, keys.encode())

    def close(self) -> int:
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.fd_main)
        return self.process.returncode


def test_a_session_on_a_terminal(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    try:
        assert "running example is: hello" in term.until(">> ")
        term.send("rev = aggregate(select(indices, length - indices - 1, ==), tokens);\r")
        assert 'Example: rev("hello") = [o, l, l, e, h] (strings)' in term.until(">> ")
        term.send("def double(x) {\r")
        term.until("\n..   ")  # the statement goes on, indented inside the def
        term.send("return x * 2; }\r")
        assert "console function: double(x)" in term.until(">> ")
        term.send('set example "abc"\r')
        term.until(">> ")
        term.send("double(indices);\r")
        assert 'Example: out("abc") = [0, 2, 4] (ints)' in term.until(">> ")
        term.send("\x1b[A\r")  # the previous line again, from the history
        assert 'Example: out("abc") = [0, 2, 4] (ints)' in term.until(">> ")
        term.send("draw(rev);\r")
        assert "=  [c, b, a] (strings)" in term.until(">> ")
        term.send("nope;\r")
        assert "Error: Undefined variable: nope" in term.until(">> ")
        term.send("exit\r")
    finally:
        code = term.close()
    assert code == 0
    assert (tmp_path / "rev.flow.html").stat().st_size > 10_000
    assert "double(indices);" in (tmp_path / ".workbench_rasp_history").read_text()
