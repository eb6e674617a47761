"""Checkpoint files on disk: written atomically, read only from inside their directory.

Writing: a directory is filled under a hidden staging name next to it
(`.NAME.staging-HOST-PID-RANDOM`), every file and directory in it is fsynced, and one rename
puts it in place. Replacing an existing directory swaps the two in one step (Linux
`renameat2(RENAME_EXCHANGE)`), so a reader sees the old version or the new one, never neither
and never a mix. A staging path whose process has died (a killed `workbench convert`) is removed
by the next write of the same name. Modes are those of new files under the umask, whatever
the writer used (safetensors makes private files): under the usual umask 022, directories are
0755 and files 0644.

Reading: `confined` resolves a file's path, symlinks included, and refuses one that leads out
of the checkpoint directory (a weight-map entry `../x.safetensors`, a `tokenizer.json` symlink
to /etc/passwd)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from workbench.errors import CheckpointError, InputError

MARKER = "workbench.json"  # what makes a directory a workbench checkpoint (written last)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
# what a checkpoint directory holds; --force replaces only a directory of these
CHECKPOINT_ENTRIES = frozenset({MARKER, "model.safetensors", "resume", *TOKENIZER_FILES})
STAGING = "staging"  # a directory or file being written
ASIDE = "old"  # a replaced directory, set aside where the system cannot swap in one step
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"  # no '-': names split on it


def temp_path(target: Path, kind: str = STAGING, pid: int | None = None) -> Path:
    """The hidden path next to `target` where this process (or `pid`) stages it."""
    pid = os.getpid() if pid is None else pid
    return target.with_name(f".{target.name}.{kind}-{_HOST}-{pid}-{secrets.token_hex(4)}")


def write_dir(
    target: str | Path,
    fill: Callable[[Path], None],
    *,
    force: bool = False,
    error: type[CheckpointError] = CheckpointError,
) -> Path:
    """Create the directory `target` by calling `fill(staging)` on an empty staging directory
    next to it, then fsyncing and renaming it into place. An existing non-empty `target` is
    refused unless `force`, which replaces a checkpoint (a directory holding workbench.json)
    in one step; a directory of other things is never replaced. Missing parents are created.
    If `fill` raises (or the process dies), `target` is left as it was."""
    target = Path(target)
    try:
        if target.parent.is_dir():
            clean_stale(target)
        check_target(target, force, error)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_path(target)
        staging.mkdir()
    except OSError as exc:
        raise error(f"cannot write {target}: {exc}") from None
    try:
        fill(staging)
        _finish_tree(staging)
        _put_in_place(staging, target, force, error)
    except BaseException as exc:
        _remove(staging)
        if isinstance(exc, OSError):  # a full disk, a read-only filesystem
            raise error(f"cannot write {target}: {exc}") from None
        raise
    return target


def write_file(target: Path, write: Callable[[Path], object]) -> None:
    """Write one file atomically: `write(staging)`, fsync, rename over `target`, fsync the
    directory, so `target` holds the old bytes or the new ones."""
    clean_stale(target)
    staging = temp_path(target)
    try:
        write(staging)
        os.chmod(staging, 0o666 & ~_umask())
        _fsync(staging)
        os.replace(staging, target)
        _fsync(target.parent)
    except BaseException:
        _remove(staging)
        raise


def file_above(path: Path) -> Path | None:
    """The nearest existing parent of `path` when it is not a directory (then nothing can be
    written at `path`), else None."""
    above = next((p for p in path.parents if os.path.lexists(p)), None)
    return None if above is None or above.is_dir() else above


def check_output_file(path: Path) -> None:
    """Raise `InputError` unless `path` can be written as a file (checked before the work that
    produces it): not a directory, and no file among its parents."""
    if path.is_dir():
        raise InputError(
            f"output {path} is a directory; pass a file path, e.g. {path / 'out.json'}"
        )
    if (above := file_above(path)) is not None:
        raise InputError(f"cannot write {path}: {above} is a file; pass another path")


def write_output_file(path: Path, text: str) -> None:
    """Write a command's output file atomically (missing parents are created): a kill leaves
    the old file or the new one, never half of it."""
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, lambda staging: staging.write_text(text))


def clean_stale(target: Path) -> None:
    """Remove the staging paths of `target` that processes of this host left when they died.
    A directory set aside by a replace that died before its second rename goes back in place
    if nothing took its place."""
    for path, kind in _stale(target.parent, target.name):
        if kind == ASIDE and not os.path.lexists(target):
            os.rename(path, target)
        else:
            _remove(path)


def confined(directory: Path, name: str, error: type[CheckpointError] = CheckpointError) -> Path:
    """The real path of the file `name` of a checkpoint directory, symlinks resolved; an error
    if it lies outside the directory. A Hugging Face hub cache snapshot
    (`models--ORG--NAME/snapshots/REV/`) may also link into its repository's `blobs/`."""
    root = directory.resolve()
    path = (directory / name).resolve()
    roots = [root]
    if root.parent.name == "snapshots" and root.parent.parent.name.startswith("models--"):
        roots.append(root.parent.parent / "blobs")
    if not any(path.is_relative_to(r) for r in roots):
        raise error(
            f"{directory / name} leads to {path}, outside the checkpoint directory {root}; a "
            "checkpoint is read only from its own directory: copy the file into it (and list "
            "it by its plain name)"
        )
    return path


def check_target(target: Path, force: bool, error: type[CheckpointError] = CheckpointError) -> None:
    """Raise unless `write_dir(target, ..., force=force)` may write there."""
    if Path.cwd().is_relative_to(target.resolve()):  # '.', '..': renaming over them strands us
        raise error(f"{target} is the working directory or above it; pass a new directory path")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise error(f"{target} exists and is not a directory; pass a new directory path")
    if (above := file_above(target)) is not None:
        raise error(f"cannot write {target}: {above} is not a directory; pass another path")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise error(
                f"{target} already exists and is not empty; pass --force (force=True) to "
                "replace it, or a new directory"
            )
        _check_replaceable(target, error)


def _check_replaceable(target: Path, error: type[CheckpointError]) -> None:
    """--force never deletes a directory of other things: only a workbench checkpoint (its
    workbench.json has a config) holding nothing but a checkpoint's files."""
    others = sorted(
        p.name for p in target.iterdir() if p.name not in CHECKPOINT_ENTRIES and p.name[0] != "."
    )
    try:
        record = json.loads((target / MARKER).read_text())
        is_checkpoint = isinstance(record, dict) and "config" in record
    except (OSError, ValueError):
        is_checkpoint = False
    if others or not is_checkpoint:
        what = f"holds other files ({', '.join(others[:5])})" if others else "holds no checkpoint"
        raise error(
            f"{target} {what}; --force replaces only a workbench checkpoint: pass a new "
            "directory, or empty this one yourself"
        )


def _put_in_place(staging: Path, target: Path, force: bool, error: type[CheckpointError]) -> None:
    if force and target.is_dir():
        old = _exchange(staging, target)
        _fsync(target.parent)
        _remove(old)
        return
    try:
        os.rename(staging, target)  # onto nothing, or onto an empty directory
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise error(
                f"{target} appeared while it was being written; pass --force (force=True) to "
                "replace it, or a new directory"
            ) from None
        raise
    _fsync(target.parent)


def _exchange(new: Path, old: Path) -> Path:
    """Put `new` at `old`'s path; return where the old directory now is."""
    if _renameat2(new, old):
        return new
    aside = temp_path(old, ASIDE)  # no atomic swap here: a moment with the old one aside
    os.rename(old, aside)
    try:
        os.rename(new, old)
    except BaseException:
        os.rename(aside, old)
        raise
    return aside


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_libc: ctypes.CDLL | None = None


def _renameat2(a: Path, b: Path) -> bool:
    """Swap two paths with renameat2(RENAME_EXCHANGE); False where the system lacks it."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(_libc, "renameat2", None)
    if call is None:
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if call(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # kernel or filesystem
        return False
    raise OSError(code, os.strerror(code), str(b))


def _stale(parent: Path, name: str) -> list[tuple[Path, str]]:
    found = []
    for entry in os.scandir(parent):
        for kind in (STAGING, ASIDE):
            prefix = f".{name}.{kind}-"
            if not entry.name.startswith(prefix):
                continue
            parts = entry.name[len(prefix) :].rsplit("-", 2)
            ours = len(parts) == 3 and parts[0] == _HOST and parts[1].isdigit()
            if ours and not _alive(int(parts[1])):
                found.append((Path(entry.path), kind))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _finish_tree(root: Path) -> None:
    """Give every file and directory the umask's mode, and fsync them (each directory after
    its entries), so the rename publishes durable contents."""
    mask = _umask()
    for here, _, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(here, name)
            if not path.is_symlink():
                os.chmod(path, 0o666 & ~mask)
                _fsync(path)
        os.chmod(here, 0o777 & ~mask)
        _fsync(Path(here))


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the above)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
