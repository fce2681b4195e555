"""Fuzz the readers with mutated real files: only ReadError may come out, never a hang.

10,000 cases in total (hypothesis), split over a Legacy spec file, a BOSS spec file (SPALL),
the DR7 spSpec file and a CSV table. Files are mutated in memory and read from a BytesIO, so
each case costs well under a millisecond of reading. Mutations flip bits, overwrite, truncate,
insert or delete bytes at random offsets, with half of them aimed at header cards (where the
structure lives) and some replacing a card's value with random text.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings, strategies as st

from agnlens.errors import ReadError
from agnlens.io import read_spectrum
from agnlens.spectra import Spectrum

from realdata import BOSS, DR7, LEGACY  # Legacy lite (SPECOBJ), BOSS lite (SPALL), DR7 spSpec

#: Seconds one read may take before we call it a hang (a clean read takes ~1 ms).
MAX_SECONDS = 5.0


def _header_cards(data: bytes) -> list[int]:
    """Byte offsets of every card in the headers of the first HDUs (astropy, independently)."""
    offsets = []
    with fits.open(io.BytesIO(data), lazy_load_hdus=True) as hdul:
        for i in range(min(3, len(hdul))):
            info = hdul.fileinfo(i)
            offsets.extend(range(info["hdrLoc"], info["datLoc"], 80))
    return offsets


def _csv_bytes() -> bytes:
    from agnlens.io import read_spec

    s = read_spec(LEGACY)
    sel = slice(0, 400)
    lines = ["wavelength,flux,error"]
    err = np.where(s.ivar[sel] > 0, 1 / np.sqrt(np.where(s.ivar[sel] > 0, s.ivar[sel], 1)), 0)
    lines += [f"{w:.3f},{f:.5g},{e:.4g}" for w, f, e in zip(s.wavelength[sel], s.flux[sel], err)]
    return ("\n".join(lines) + "\n").encode()


_CACHE: dict[str, tuple[bytes, list[int]]] = {}


def _sample(name: str) -> tuple[bytes, list[int]]:
    if name not in _CACHE:
        if name == "csv":
            data = _csv_bytes()
            _CACHE[name] = (data, [i for i, b in enumerate(data) if b == ord("\n")][:50])
        else:
            path = {"legacy": LEGACY, "boss": BOSS, "dr7": DR7}[name]
            data = path.read_bytes()
            _CACHE[name] = (data, _header_cards(data))
    return _CACHE[name]


#: One mutation: (operation, aim at a header card?, where, bit/length/offset-in-card, payload seed).
_OPS = st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 2**31), st.integers(0, 2880), st.integers(0, 2**32))
#: A mutation plan (small to print when a case fails), applied by :func:`_mutate`.
PLANS = st.lists(_OPS, min_size=1, max_size=4)
_PRINTABLE = bytes(range(32, 127))


def _mutate(name: str, plan) -> bytes:
    data, cards = _sample(name)
    buf = bytearray(data)
    for op, at_card, where, k, seed in plan:
        n = len(buf)
        if n == 0:
            break
        pos = min(cards[where % len(cards)] + k % 80, n - 1) if (at_card and cards) else where % n
        rnd = random.Random(seed)
        if op == 0:  # flip a bit
            buf[pos] ^= 1 << (k % 8)
        elif op == 1:  # overwrite up to 16 bytes
            buf[pos : pos + 1 + seed % 16] = rnd.randbytes(1 + seed % 16)
        elif op == 2:  # truncate
            del buf[pos:]
        elif op == 3:  # insert up to 96 bytes
            buf[pos:pos] = rnd.randbytes(1 + seed % 96)
        elif op == 4:  # delete up to a block
            del buf[pos : pos + 1 + k]
        else:  # replace a card's value field with printable text (FITS headers are ASCII)
            start = pos - pos % 80 + 10 if name != "csv" else pos
            buf[start : start + 20] = bytes(rnd.choices(_PRINTABLE, k=20))
    return bytes(buf)


def _random_plan(rnd: random.Random) -> list[tuple[int, bool, int, int, int]]:
    return [
        (rnd.randrange(6), rnd.random() < 0.5, rnd.randrange(2**31), rnd.randrange(2881), rnd.randrange(2**32))
        for _ in range(rnd.randint(1, 4))
    ]


class _Hang(BaseException):
    """Raised by the alarm when one read runs past the limit (BaseException: never swallowed)."""


@contextlib.contextmanager
def _time_limit(seconds: float, what: str):
    """Interrupt a read that hangs (SIGALRM; the main thread on Unix), else just time it."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _alarm(signum, frame):
        raise _Hang(f"{what}: reading did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check(name: str, data: bytes, plan=None) -> None:
    suffix = ".csv" if name == "csv" else ".fits"
    f = io.BytesIO(data)
    f.name = f"fuzz-{name}{suffix}"
    t0 = time.perf_counter()
    try:
        with _time_limit(MAX_SECONDS, f"{name} with plan {plan}"):
            s = read_spectrum(f)
    except ReadError:
        s = None
    except Exception as exc:  # report the plan that broke it, then fail
        raise AssertionError(f"{name} with plan {plan}: {type(exc).__name__}: {exc}") from exc
    elapsed = time.perf_counter() - t0
    assert elapsed < MAX_SECONDS, f"{name} with plan {plan}: reading took {elapsed:.1f} s"
    if s is not None:
        assert isinstance(s, Spectrum)
        n = s.wavelength.shape
        assert s.flux.shape == s.ivar.shape == s.mask.shape == n and len(n) == 1 and n[0] > 0, plan
        assert np.all(np.isfinite(s.wavelength)) and np.all(np.diff(s.wavelength) > 0), plan
        assert np.all(s.ivar[s.mask] == 0) and np.all(s.ivar >= 0), plan
        assert isinstance(s.spec_id, str) and s.spec_id, plan


_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
FILES = ["legacy", "boss", "dr7", "csv"]

# 1,000 structured cases (hypothesis draws and shrinks each mutation plan) ...
N_STRUCTURED = 1000
# ... and 9,000 seeded cases: hypothesis draws a seed, the seed makes READS_PER_SEED plans. Drawing
# structured plans costs ~3 ms of hypothesis time per case on this machine, three times the read.
READS_PER_SEED = 10
SEEDED = {"legacy": 300, "boss": 300, "dr7": 250, "csv": 50}  # examples; x10 reads each


def test_fuzz_case_count():
    assert N_STRUCTURED + READS_PER_SEED * sum(SEEDED.values()) == 10_000


@settings(max_examples=N_STRUCTURED, **_SETTINGS)
@given(st.sampled_from(FILES), PLANS)
def test_fuzz_structured(name, plan):
    _check(name, _mutate(name, plan), plan)


@pytest.mark.parametrize("name", FILES)
def test_fuzz_seeded(name):
    @settings(max_examples=SEEDED[name], **_SETTINGS)
    @given(st.integers(0, 2**64 - 1))
    def run(seed):
        rnd = random.Random(seed)
        for _ in range(READS_PER_SEED):
            plan = _random_plan(rnd)
            _check(name, _mutate(name, plan), plan)

    run()


def test_unmutated_samples_read():
    """The fuzz starts from files that read cleanly."""
    for name in FILES:
        s = read_spectrum(_named(name))
        assert s.wavelength.size > 100


def _named(name: str) -> io.BytesIO:
    f = io.BytesIO(_sample(name)[0])
    f.name = f"sample-{name}{'.csv' if name == 'csv' else '.fits'}"
    return f


def test_hang_guard_interrupts():
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM on this platform")
    with pytest.raises(_Hang, match="did not finish"):
        with _time_limit(0.05, "sleep"):
            time.sleep(2)
