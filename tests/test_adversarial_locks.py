"""Locks and partial files that cannot be redirected (round 3 of the adversarial review): a link
planted at a lock's or a download's temporary name is never followed, one store has one lock
whatever spelling names it, a model pin cannot be raced, and a bad lock setting is one clear line."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from agnlens.atomic import exclusive_lock, hidden_sibling
from agnlens.errors import UsageError


@contextlib.contextmanager
def held_elsewhere(path, timeout: float = 1.0):
    """``path``'s agnlens lock held by another thread for the length of the ``with``."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with exclusive_lock(path, timeout=timeout):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        thread.join()


def test_a_link_planted_at_the_lock_name_is_not_followed(tmp_path):
    """A symlink ``.NAME.lock`` → a victim file: before, opening the lock followed it and the pid
    write truncated the victim. Now the writer is refused in one line and the victim is untouched."""
    store = tmp_path / "data.zarr"
    victim = tmp_path / "thesis.tex"
    victim.write_text("ten years of work\n")
    hidden_sibling(store, "lock").symlink_to(victim)
    with pytest.raises(BlockingIOError, match="is a symbolic link; agnlens does not follow it"):
        with exclusive_lock(store, timeout=0.1):
            pass
    assert victim.read_text() == "ten years of work\n"


def test_one_store_has_one_lock_whatever_spelling_names_it(tmp_path, monkeypatch):
    """Held through a symlink, refused through the real path, through ./ and through the absolute
    path (before, the lock was keyed on the spelling: both writers went ahead)."""
    real = tmp_path / "real.zarr"
    real.mkdir()
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    monkeypatch.chdir(tmp_path)
    with held_elsewhere(link):
        for spelling in (real, "./real.zarr", os.path.abspath("real.zarr")):
            with pytest.raises(BlockingIOError, match="another agnlens process"):
                with exclusive_lock(spelling, timeout=0.1):
                    pass


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "abc"])
def test_a_bad_lock_timeout_names_the_variable(tmp_path, monkeypatch, value):
    """``AGNLENS_LOCK_TIMEOUT=nan`` waited forever, ``=abc`` gave a message without the variable."""
    monkeypatch.setenv("AGNLENS_LOCK_TIMEOUT", value)
    with pytest.raises(UsageError, match="AGNLENS_LOCK_TIMEOUT must be a number of seconds"):
        with exclusive_lock(tmp_path / "x.zarr"):
            pass


def test_a_download_never_writes_through_a_link_at_its_partial_name(tmp_path):
    """A hostile server chooses the bytes: a link at the partial file's name must not take them to
    its target. The partial names are also random per transfer, so a link cannot be planted ahead."""
    from agnlens.io.archive import _create

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    part = tmp_path / ".spec.fits.part"
    part.symlink_to(victim)
    with _create(part) as fh:
        fh.write(b"SIMPLE  = hostile bytes")
    assert victim.read_text() == "keep me\n"
    assert not part.is_symlink() and part.read_bytes() == b"SIMPLE  = hostile bytes"


# ------------------------------------------------------------------------------------ stale locks
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _foreign(monkeypatch, lock_file):
    """Make ``lock_file`` another user's (mode 644): this user may read it, not open it for writing
    (as root in a container ignores modes, opening it read-write is refused here)."""
    import errno

    real_open = os.open
    inode = os.stat(lock_file).st_ino

    def fake_open(path, flags, *args, **kwargs):
        foreign = os.fspath(path) == os.fspath(lock_file) and os.path.exists(lock_file) \
            and os.stat(lock_file).st_ino == inode
        if foreign and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_another_users_stale_lock_is_taken_over(tmp_path, monkeypatch):
    """A lock file left by another user's ended process (mode 644, pid not running) blocked every
    writer with "Permission denied". Nobody holds its flock, so it is stale: it is removed and the
    writer goes ahead."""
    store = tmp_path / "data.zarr"
    lock_file = hidden_sibling(store, "lock")
    lock_file.write_text(str(_dead_pid()))
    _foreign(monkeypatch, lock_file)
    entered = False
    with exclusive_lock(store, timeout=0.5):
        entered = True
        assert lock_file.read_text() == str(os.getpid())  # now this process's own lock
    assert entered and not lock_file.exists()


def test_a_stale_lock_that_cannot_be_removed_is_named_as_stale(tmp_path, monkeypatch):
    from pathlib import Path

    store = tmp_path / "data.zarr"
    lock_file = hidden_sibling(store, "lock")
    pid = _dead_pid()
    lock_file.write_text(str(pid))
    _foreign(monkeypatch, lock_file)
    real_unlink = Path.unlink

    def no_unlink(self, *args, **kwargs):
        if self == lock_file:
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", no_unlink)
    with pytest.raises(BlockingIOError, match=f"a stale lock of {store} \\(left by pid {pid}"):
        with exclusive_lock(store, timeout=0.2):
            pass


def test_another_users_live_lock_waits_then_names_the_holder(tmp_path, monkeypatch):
    """Held by a running process of another user: the writer waits, then is refused naming it
    (not "Permission denied", and not taken over)."""
    store = tmp_path / "data.zarr"
    lock_file = hidden_sibling(store, "lock")
    with held_elsewhere(store):
        _foreign(monkeypatch, lock_file)
        with pytest.raises(BlockingIOError, match=f"another agnlens process \\(pid {os.getpid()}\\) is writing"):
            with exclusive_lock(store, timeout=0.2):
                pass
        assert lock_file.exists()


def test_a_held_lock_whose_pid_is_gone_is_named_as_stale(tmp_path):
    """The pid in a held lock is not running here (a lock held from another machine, or by a child
    its process left behind): the refusal says the lock may be stale, and how to clear it."""
    store = tmp_path / "data.zarr"
    lock_file = hidden_sibling(store, "lock")
    pid = _dead_pid()
    with held_elsewhere(store):
        lock_file.write_text(str(pid))  # as if the holder's pid were one not running here
        with pytest.raises(BlockingIOError, match=f"pid {pid}, which took it, is not running here: a stale lock"):
            with exclusive_lock(store, timeout=0.2):
                pass


# ------------------------------------------------------------------- appends that cannot lie
def _rows(path):
    from agnlens.io.store import open_store

    got = open_store(path, lazy=False)
    return {sid: float(row[0]) for sid, row in zip(got.spec_id, got.flux)}


def _expected(*sets):
    return {sid: float(row[0]) for s in sets for sid, row in zip(s.spec_id, s.flux)}


def test_an_append_whose_compare_and_swap_fails_never_writes_over_the_other_writers_rows(tmp_path, monkeypatch):
    """A writer that ignores the lock (here: the same thread, which re-enters it) commits rows
    while an append prepares its own. Before, the append wrote its rows over the other writer's
    committed ones, then failed its compare-and-swap ("nothing was committed"): the store showed
    this append's flux under the other writer's spec_ids. Now nothing of it is written."""
    from test_adversarial_store import make_set

    from agnlens.io.store import (
        _write as store_module,  # the writer's own steps, patched
        append_store,
        write_store,
    )

    path = write_store(make_set(10), tmp_path / "s.zarr", chunk_size=7)
    ours, theirs = make_set(12, start=100), make_set(12, start=200)
    real_block = store_module.block_of
    state = {"ran": False}

    def block(*args):
        if not state["ran"]:
            state["ran"] = True
            append_store(theirs, path)  # commits first, as a lock-ignoring writer would
        return real_block(*args)

    monkeypatch.setattr(store_module, "block_of", block)
    with pytest.raises(RuntimeError, match="Nothing of this append was committed"):
        append_store(ours, path)
    assert state["ran"]
    assert _rows(path) == _expected(make_set(10), theirs)


def test_the_rows_an_append_wrote_over_are_rolled_back_when_its_compare_and_swap_fails(tmp_path, monkeypatch):
    """The other writer commits after the append's last check but before it writes: the append
    writes over those committed rows, then its compare-and-swap fails; it puts them back."""
    from test_adversarial_store import make_set

    from agnlens.io.store import (
        _write as store_module,  # the writer's own steps, patched
        append_store,
        write_store,
    )

    path = write_store(make_set(10), tmp_path / "s.zarr", chunk_size=7)
    ours, theirs = make_set(12, start=100), make_set(12, start=200)
    real_unchanged = store_module._unchanged
    state = {"calls": 0}

    def unchanged(*args, **kwargs):
        real_unchanged(*args, **kwargs)
        state["calls"] += 1
        if state["calls"] == 1:
            append_store(theirs, path)  # between the check and the write

    monkeypatch.setattr(store_module, "_unchanged", unchanged)
    with pytest.raises(RuntimeError, match="its rows were rolled back"):
        append_store(ours, path)
    assert _rows(path) == _expected(make_set(10), theirs)


_SPELLING_APPENDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from test_adversarial_store import make_set
from agnlens.io.store import append_store
path, first, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
try:
    append_store(make_set(500, start=first), path)
    print("appended 500")
except BlockingIOError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize("spelling", ["symlink", "dot", "absolute"])
def test_two_appends_through_different_spellings_of_one_store(tmp_path, monkeypatch, spelling):
    """Two processes append 500 rows each, one naming the store through a symlink, ``./`` or its
    absolute path: 1,000 rows, each spec_id with its own flux, or one clear refusal; never an
    "appended" whose rows are gone."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from test_adversarial_store import make_set

    from agnlens.io.store import write_store

    real = write_store(make_set(0), tmp_path / "s.zarr", chunk_size=64)
    other = {"symlink": tmp_path / "link.zarr", "dot": "./s.zarr", "absolute": os.path.abspath(real)}[spelling]
    if spelling == "symlink":
        Path(other).symlink_to(real)
    monkeypatch.chdir(tmp_path)
    go = tmp_path / "go"
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    procs = [subprocess.Popen([sys.executable, "-c", _SPELLING_APPENDER, str(name), str(first), str(go), here],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name, first in (("s.zarr", 1000), (other, 2000))]
    time.sleep(1.0)
    go.touch()
    said = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        said.append(out.strip())
    rows = _rows(real)
    appended = [s for s, text in zip((1000, 2000), said) if text == "appended 500"]
    assert len(appended) + sum(text.startswith("refused:") for text in said) == 2
    assert rows == _expected(*(make_set(500, start=s) for s in appended))
