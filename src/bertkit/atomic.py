"""Atomic writes: a file or a whole folder is written under a temporary name, then renamed into place.

A crash leaves either the old version or the new one under the final name, never half of one. A write
that fails (disk full, read-only folder) is a ``WriteError`` naming the path, the old version kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

UMASK = os.umask(0)
os.umask(UMASK)  # reading the umask means setting it; put it straight back


class WriteError(BertkitError, OSError):
    """An output that could not be written (disk full, read-only folder); what was there is kept. An
    ``OSError`` too, so that code which handles failed writes still sees one."""


@contextlib.contextmanager
def write_errors_named(path: str | Path, kept: str = "what was there before is kept") -> Iterator[None]:
    """Turn a failed write under the block into a ``WriteError`` that names ``path`` and the reason."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(f"cannot write {path}: {err.strerror or err}; {kept}") from err


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Failing to make the temporary file or to rename it is a ``WriteError``; what the block raises is
    its own (the block may read as well as write)."""
    path = Path(path)
    with write_errors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    try:
        with write_errors_named(path):
            os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; a model or data file follows the umask
        yield Path(tmp)
        with write_errors_named(path):
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp, write_errors_named(path):
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_dir_files(out_dir: str | Path) -> Iterator[Path]:
    """Yield a scratch directory; each file written there is then renamed into ``out_dir``.

    Lets libraries that write several files (``save_pretrained``) produce them without ever leaving a
    half-written file under its final name. The weights are moved first and ``config.json`` last, so a
    directory with a new config always has the weights that go with it.
    """
    out_dir = Path(out_dir)
    with write_errors_named(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=out_dir, prefix=".saving-"))
    try:
        yield scratch
        files = sorted((p for p in scratch.rglob("*") if p.is_file()), key=lambda p: p.name == "config.json")
        for src in files:
            dest = out_dir / src.relative_to(scratch)
            with write_errors_named(dest):
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(src, 0o666 & ~UMASK)  # safetensors writes 0600, like mkstemp: follow the umask
                os.replace(src, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fsync_path(path: Path) -> None:
    """Make a file's content or a folder's entries durable; a no-op where the OS refuses (some file
    systems cannot fsync a folder; the rename is still atomic there)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0))
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


def aside(folder: Path) -> Path:
    """Where ``swap_folder`` keeps the previous version while the new one is renamed in."""
    return folder.parent / f".{folder.name}.old"


def swap_folder(scratch: Path, folder: Path) -> None:
    """Replace ``folder`` whole by the complete ``scratch`` beside it.

    The files of ``scratch`` and the folder itself are fsynced, the old folder moved aside, the new one
    renamed in, the parent fsynced and the old one removed. A kill between the two renames leaves only
    the aside copy, which ``recover_aside`` puts back.
    """
    for path in sorted(scratch.iterdir()):
        os.chmod(path, 0o666 & ~UMASK)
        fsync_path(path)
    os.chmod(scratch, 0o777 & ~UMASK)  # mkdtemp makes 0700; the folder follows the umask like its files
    fsync_path(scratch)
    old = aside(folder)
    if folder.exists():
        os.replace(folder, old)
    try:
        os.replace(scratch, folder)
    except OSError:
        if old.exists():
            os.replace(old, folder)  # the previous version goes back under its name
        raise
    fsync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_aside(folder: Path) -> bool:
    """Finish or undo a swap that a kill interrupted, so that the complete folder ends under its name;
    True when the previous version was put back."""
    old = aside(folder)
    if not old.exists():
        return False
    if folder.exists():
        shutil.rmtree(old)  # killed after the new folder was in place: the old one is garbage
        return False
    os.replace(old, folder)  # killed between the renames: the previous folder comes back
    fsync_path(folder.parent)
    return True
