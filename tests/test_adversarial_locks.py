"""Locks and partial files that cannot be redirected (round 3 of the adversarial review): a link
planted at a lock's or a download's temporary name is never followed, one store has one lock
whatever spelling names it, a model pin cannot be raced, and a bad lock setting is one clear line."""

from __future__ import annotations

import os
import threading

import pytest

from agnlens.atomic import exclusive_lock, hidden_sibling
from agnlens.errors import UsageError


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
    held, release = threading.Event(), threading.Event()

    def holder():
        with exclusive_lock(link, timeout=1):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        for spelling in (real, "./real.zarr", os.path.abspath("real.zarr")):
            with pytest.raises(BlockingIOError, match="another agnlens process"):
                with exclusive_lock(spelling, timeout=0.1):
                    pass
    finally:
        release.set()
        thread.join()


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
