"""Atomic writes, the one check of every output path, writer locks and safe CSV.

* :func:`atomic_path` (and ``write_text``/``write_bytes``/``write_json``/``write_csv``): write to a
  temporary name beside the target, then rename. An interrupted run never leaves a half-written
  file: the target is either the old file or the new one. Temporary names are kept short
  (:func:`temp_sibling`), so any legal output name works.
* :func:`check_output`: an output never lands on an input or on a folder that holds one, and an
  existing output is replaced only when the caller says so.
* :func:`exclusive_lock`: one writer at a time per path, across processes (``fcntl.flock`` on a
  hidden lock file beside the path; a second writer waits, then is refused with one clear line;
  a stale lock another user left behind is taken over, or named as stale).
* :func:`replace_folder`: a folder written aside takes the place of an old one, keeping the files
  of the old one that the new one does not have (a user's notes are never agnlens's to delete).
* :func:`check_name_length`: an output name the file system cannot hold is refused before the work.
* :func:`write_csv`: string cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
  ``@``, tab, carriage return) are written with a leading ``'`` (OWASP's advice); numbers stay
  numbers.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agnlens.errors import UsageError

_UMASK = os.umask(0)
os.umask(_UMASK)

#: Seconds a writer waits for another writer of the same path before it gives up
#: (environment variable ``AGNLENS_LOCK_TIMEOUT`` overrides it).
LOCK_TIMEOUT = 60.0
#: The longest name a temporary sibling may have (most file systems allow 255 bytes).
_MAX_NAME_BYTES = 255
#: Leading characters that make a spreadsheet treat a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def hidden_sibling(path: str | os.PathLike[str], tag: str) -> Path:
    """The hidden name ``.NAME.TAG`` beside ``path``, NAME cut so that it fits 255 bytes (the same
    name on every call: work folders and lock files are found again by it)."""
    path = Path(path)
    room = _MAX_NAME_BYTES - 2 - len(tag.encode())
    name = path.name.encode()[:room].decode(errors="ignore")
    return path.parent / f".{name}.{tag}"


def temp_sibling(path: str | os.PathLike[str], tag: str) -> Path:
    """A fresh hidden name beside ``path`` (``.NAME.TAG-xxxxxxxx``), shortened to fit 255 bytes.

    The target's name is cut (never the random part), so a 249-character output name still gets
    a legal temporary name.
    """
    return hidden_sibling(path, f"{tag}-{uuid.uuid4().hex[:8]}")


#: The names :func:`temp_sibling` gives (``.NAME.TAG-xxxxxxxx``).
_WORK_NAME = re.compile(r"^\..+\.(part|tmp|old)-[0-9a-f]{8}$")


def leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """The work files and folders a killed run left in ``folder`` (:func:`temp_sibling` names); an
    interrupted run removes its own, a ``kill -9`` cannot. Remove them only under the folder's
    lock (:func:`exclusive_lock`): a running command's are found by the same names."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _WORK_NAME.match(p.name))


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, "part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (through :func:`jsonable`) to ``path`` atomically."""
    return write_text(path, json.dumps(jsonable(obj), indent=2))


def write_csv(path: str | os.PathLike[str], table, **to_csv) -> Path:
    """Write a DataFrame as CSV atomically, its string cells made spreadsheet-safe.

    Parameters
    ----------
    path : path-like
    table : pandas.DataFrame
    **to_csv
        Passed to :meth:`pandas.DataFrame.to_csv` (default ``index=False``).
    """
    to_csv.setdefault("index", False)
    with atomic_path(path) as tmp:
        csv_safe(table).to_csv(tmp, **to_csv)
    return Path(path)


def replace_folder(new: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Rename the finished folder ``new`` to ``folder``; what ``folder`` held that ``new`` does not
    (files agnlens did not write there, such as a user's notes) is moved into the new folder.

    The swap is two renames (the old folder aside, the new one in); the old folder's other entries
    are then moved back one by one and the rest of the old folder deleted.
    """
    new, folder = Path(new), Path(folder)
    if not os.path.lexists(folder):
        os.replace(new, folder)
        return folder
    old = temp_sibling(folder, "old")
    os.replace(folder, old)
    os.replace(new, folder)
    for entry in old.iterdir():
        if not os.path.lexists(folder / entry.name):
            os.replace(entry, folder / entry.name)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def check_name_length(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, before any work, an output whose file name the file system cannot hold.

    Raises
    ------
    UsageError
        The last part of ``path`` is longer than the folder's name limit (usually 255 bytes).
    """
    path = Path(path)
    parent = path.parent if path.parent.is_dir() else Path(".")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = _MAX_NAME_BYTES
    size = len(os.fsencode(path.name))
    if size > limit:
        raise UsageError(f"{option}: the file name {shown(path.name[:40])}… is {size} bytes, longer than the "
                         f"{limit} this file system allows; choose a shorter name")
    return path


def shown(text: object) -> str:
    """``text`` with its control characters escaped (a newline as ``\\n``), so that a name printed
    in a message stays on its line and cannot pass for another line of output."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def csv_safe(table):
    """A copy of ``table`` whose string cells cannot run as spreadsheet formulas.

    A string cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
    ``'`` unless it reads as a plain number (``"-1.5"`` stays); numeric columns are untouched.
    """
    out = table.copy()
    for name in out.columns:
        col = out[name]
        if col.dtype.kind in "biufcmM":
            continue
        out[name] = col.map(_safe_cell)
    return out


def _safe_cell(value):
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value  # a number written as text, e.g. "-1.5"
    except ValueError:
        return "'" + value


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    *,
    overwrite: bool = True,
    option: str = "--out",
    adds_to_folder: bool = False,
) -> Path:
    """The one check of an output path, before any work: never onto an input, never over what
    the caller may not replace.

    Parameters
    ----------
    out : path-like
        Where the command will write (a file or a folder).
    inputs : iterable of path-like
        What the command reads (files, folders, stores; glob patterns are skipped, their matches
        are checked by the reader).
    overwrite : bool, default True
        Whether an existing ``out`` may be replaced (``False``: it is an error).
    option : str
        The option's name, for the message.
    adds_to_folder : bool, default False
        ``out`` is a folder the command adds files to (never replaces as a whole), so inputs
        inside it are safe; only ``out`` being an input itself is refused.

    Returns
    -------
    Path

    Raises
    ------
    UsageError
        ``out`` is an input, holds an input, or exists and ``overwrite`` is False.
    """
    out = Path(out)
    target = _real(out)
    for item in inputs:
        text = os.fspath(item)
        if any(c in text for c in "*?["):
            continue
        source = _real(Path(text))
        if source == target or (out.exists() and Path(text).exists() and _same_file(out, Path(text))):
            raise UsageError(f"{option} {out} is also an input; write the output somewhere else")
        if target in source.parents and not adds_to_folder:
            raise UsageError(
                f"{option} {out} holds the input {text}; agnlens never writes among its inputs, "
                f"write the output somewhere else"
            )
    if out.exists() and not overwrite:
        raise UsageError(f"{option} {out} already exists; pass --overwrite to replace it, or choose another name")
    return out


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock of ``path`` (a store or file) for the ``with`` block.

    The lock is ``fcntl.flock`` on a hidden file beside ``path`` (``.NAME.lock``, removed on
    release; a waiter that locked a removed file tries again). The kernel releases it when the
    process ends, however it ends. A second writer waits up to ``timeout`` seconds (default
    :data:`LOCK_TIMEOUT`, or ``$AGNLENS_LOCK_TIMEOUT``), then gets a :class:`BlockingIOError`
    naming the path and the process that holds it.
    """
    path = Path(os.path.realpath(path))  # one lock whatever the spelling: a link, ./, an absolute path
    if timeout is None:
        timeout = lock_timeout()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = hidden_sibling(path, "lock")
    key = (str(lock_file), threading.get_ident())
    if key in _HELD:  # re-entered by the same thread (ingest_files -> write_store)
        yield
        return
    fd = _acquire(lock_file, path, time.monotonic() + timeout, timeout)
    _HELD.add(key)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        _HELD.discard(key)
        lock_file.unlink(missing_ok=True)  # while still locked: waiters see the inode change
        os.close(fd)  # releases the lock


#: Locks this process holds, as (lock file, thread id).
_HELD: set[tuple[str, int]] = set()


def lock_timeout() -> float:
    """:data:`LOCK_TIMEOUT`, or ``$AGNLENS_LOCK_TIMEOUT`` (seconds, finite, ≥ 0)."""
    text = os.environ.get("AGNLENS_LOCK_TIMEOUT")
    if text is None:
        return float(LOCK_TIMEOUT)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"AGNLENS_LOCK_TIMEOUT must be a number of seconds ≥ 0, got {text!r}")
    return value


def _acquire(lock_file: Path, path: Path, deadline: float, timeout: float) -> int:
    while True:
        try:
            # never through a link planted at the lock's name (it would truncate its target)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_UMASK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BlockingIOError(errno.ELOOP, f"{lock_file}: the lock file of {path} is a symbolic link; "
                                      "agnlens does not follow it. Remove it and try again") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                _foreign_lock(lock_file, path, deadline, timeout)
                continue  # it was stale and is removed, or it was released: try again
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise BlockingIOError(errno.EAGAIN, _busy(path, lock_file, holder, timeout)) from None
            os.close(fd)
            time.sleep(0.05)
            continue
        try:
            if os.fstat(fd).st_ino == os.stat(lock_file).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file the previous holder had already removed: try again


def _foreign_lock(lock_file: Path, path: Path, deadline: float, timeout: float) -> None:
    """A lock file this user cannot open for writing (another user's): wait while a live process
    holds it; when none does it is stale, and it is removed (the folder allows it) or named as stale.
    Returns when the caller should try again."""
    while True:
        try:
            fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # gone since: try again; or the folder itself refuses a new file
            if time.monotonic() >= deadline:
                raise BlockingIOError(errno.EACCES, f"{lock_file}: the lock file of {path} cannot be created "
                                      "(Permission denied): write the output in a folder you may write to") from None
            time.sleep(0.05)
            return
        except OSError as exc:
            raise BlockingIOError(exc.errno, f"{lock_file}: the lock file of {path} cannot be opened "
                                  f"({exc.strerror}); if no agnlens process is writing there, remove it "
                                  "and try again") from None
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # flock needs no write permission
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise BlockingIOError(errno.EAGAIN, _busy(path, lock_file, holder, timeout)) from None
                time.sleep(0.05)
                continue
            # nobody holds it: a stale lock of a process that has ended
            try:
                lock_file.unlink()
            except OSError as exc:
                raise BlockingIOError(
                    exc.errno, f"{lock_file}: a stale lock of {path} (left by pid {holder}, which no longer "
                    f"holds it; owned by another user) that agnlens cannot remove ({exc.strerror}); nothing "
                    "is writing there: remove it (or ask its owner to) and try again") from None
            return
        finally:
            os.close(fd)


def _busy(path: Path, lock_file: Path, holder: str, timeout: float) -> str:
    """The message of a lock still held after ``timeout`` seconds, naming a holder that is gone."""
    alive = True
    if holder.isdigit():
        try:
            os.kill(int(holder), 0)
        except ProcessLookupError:
            alive = False
        except OSError:
            pass
    if alive:
        return (f"{path}: another agnlens process (pid {holder}) is writing it; waited {timeout:g} s "
                "(AGNLENS_LOCK_TIMEOUT); try again when it has finished")
    return (f"{path}: its lock {lock_file} is held, but pid {holder}, which took it, is not running here: "
            f"a stale lock (held by another machine, or by a process pid {holder} left behind); waited "
            f"{timeout:g} s (AGNLENS_LOCK_TIMEOUT); if no agnlens is writing there, remove the lock and try again")


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays to Python, NaN/inf to None, tuples to lists,
    pandas objects to records, anything else to its string."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "to_dict"):  # pandas objects
        return jsonable(obj.to_dict(orient="records") if hasattr(obj, "columns") else obj.to_dict())
    return str(obj)
