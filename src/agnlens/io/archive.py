"""The SDSS Science Archive Server (SAS): where a spectrum lives, and one bounded, retried HTTP GET.

Where a spectrum lives on the SAS (DR17)::

    Legacy (SDSS-I/II, run2d 26):   {base}/dr17/sdss/spectro/redux/26/spectra/lite/PPPP/spec-PPPP-MMMMM-FFFF.fits
    Legacy special plates:          {base}/dr17/sdss/spectro/redux/103/... and .../104/...
    BOSS / eBOSS (run2d v5_13_2):   {base}/dr17/eboss/spectro/redux/v5_13_2/spectra/lite/PPPP/spec-....fits

The plate number decides the order in which these are tried: Legacy plates are numbered below
:data:`FIRST_BOSS_PLATE` (3509 is the last SDSS-II plate), BOSS/eBOSS plates from there on.

:func:`fetch` downloads one URL into a file: it retries connection errors and server errors with
exponential backoff and bounds the transfer in size and total time (:class:`Limits`). Only the
standard library's :mod:`urllib` is used. :mod:`agnlens.io.download` builds the catalogue
downloader on it.
"""

from __future__ import annotations

import logging
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from agnlens._version import __version__
from agnlens.errors import AgnlensError

log = logging.getLogger(__name__)

#: The SDSS Science Archive Server.
DEFAULT_BASE_URL = "https://data.sdss.org/sas"

#: First plate number of BOSS; lower numbers are SDSS-I/II Legacy plates.
FIRST_BOSS_PLATE = 3510

#: Reduction versions (run2d) per data release: Legacy ones in the order they are tried, BOSS.
RELEASES: dict[str, tuple[tuple[str, ...], str]] = {
    "dr17": (("26", "103", "104"), "v5_13_2"),
    "dr16": (("26", "103", "104"), "v5_13_0"),
}

#: Largest response accepted per spectrum (bytes): generous for an SDSS spec file (lite ≈ 0.3 MB).
DEFAULT_MAX_BYTES = 50_000_000

#: Total seconds one transfer may take (``timeout`` bounds a single read only).
DEFAULT_DEADLINE = 300.0

USER_AGENT = f"agnlens/{__version__} (+https://github.com/agnlens; polite bulk download)"


class NetworkError(AgnlensError, ConnectionError):
    """The archive cannot be reached at all (no network, wrong base URL)."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one transfer: seconds per read, seconds in total, bytes."""

    timeout: float  # one read
    deadline: float  # one whole transfer
    max_bytes: int


def spectrum_urls(spec_id: str, *, release: str = "dr17", base_url: str = DEFAULT_BASE_URL) -> list[str]:
    """The SAS URLs at which the spectrum ``PLATE-MJD-FIBER`` may be, in the order to try.

    Parameters
    ----------
    spec_id : str
        ``PLATE-MJD-FIBER`` (any zero padding).
    release : str
        One of :data:`RELEASES`.
    base_url : str
        Root of the archive (``https://data.sdss.org/sas`` or a mirror with the same layout).

    Returns
    -------
    list of str
        Legacy locations first for plates below :data:`FIRST_BOSS_PLATE`, BOSS first otherwise.
    """
    plate, mjd, fiber = split_spec_id(spec_id)
    rel = release.lower()
    if rel not in RELEASES:
        raise ValueError(f"unknown SDSS release {release!r}; choose one of {sorted(RELEASES)}")
    legacy_runs, boss_run = RELEASES[rel]
    name = f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"
    root = base_url.rstrip("/")
    legacy = [f"{root}/{rel}/sdss/spectro/redux/{run}/spectra/lite/{plate:04d}/{name}" for run in legacy_runs]
    boss = [f"{root}/{rel}/eboss/spectro/redux/{boss_run}/spectra/lite/{plate:04d}/{name}"]
    return legacy + boss if plate < FIRST_BOSS_PLATE else boss + legacy


def check_reachable(base_url: str, *, timeout: float = 5.0) -> None:
    """Raise :class:`NetworkError` unless the host of ``base_url`` answers (any HTTP status).

    Raises
    ------
    NetworkError
        ``cannot reach SCHEME://HOST: <reason>; this machine has no network?``
    """
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"base URL {base_url!r} is not an http(s) URL such as {DEFAULT_BASE_URL}")
    host = f"{parsed.scheme}://{parsed.netloc}"
    request = urllib.request.Request(host + "/", method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        exc.close()
        return  # the host answered; a 403/404 on "/" is fine
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"cannot reach {host}: {reason}; this machine has no network?") from None


def file_name(spec_id: str) -> str:
    """``spec-PPPP-MMMMM-FFFF.fits``, the archive's name of the spectrum ``spec_id``."""
    plate, mjd, fiber = split_spec_id(spec_id)
    return f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def split_spec_id(spec_id: str) -> tuple[int, int, int]:
    """``(plate, mjd, fiber)`` of ``PLATE-MJD-FIBER`` (any zero padding)."""
    parts = str(spec_id).strip().split("-")
    try:
        plate, mjd, fiber = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"spec_id {spec_id!r} is not PLATE-MJD-FIBER (e.g. 0266-51602-0013)") from None
    return plate, mjd, fiber


# ----------------------------------------------------------------------------------- internals
class _Retryable(Exception):
    pass


class _Refused(Exception):
    """A response that must not be kept and must not be asked for again (too big, too slow)."""


def fetch(url: str, part: Path, *, retries: int, limits: Limits, delay: float, backoff: float) -> str:
    """Download ``url`` into the file ``part``, retrying what may pass.

    Parameters
    ----------
    url : str
    part : Path
        Written from the start; may hold a partial transfer when this returns anything but ``"ok"``.
    retries : int
        Extra attempts after a connection error, a timeout, an incomplete transfer or an HTTP 5xx
        (waiting ``backoff · 2^attempt`` seconds, jittered); another 4xx or a transfer beyond
        ``limits`` is final.
    limits : Limits
    delay : float
        Pause (s) before each request, to stay polite.
    backoff : float
        Base of the retry wait (s).

    Returns
    -------
    str
        ``"ok"``, or the final status or error (``"HTTP 404"``, ``"... after 4 attempts"``).
    """
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
        if delay > 0:
            time.sleep(delay)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            _transfer(request, part, limits)
            return "ok"
        except _Refused as exc:
            part.unlink(missing_ok=True)
            return str(exc)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            exc.close()
            if exc.code < 500:
                return last
        except (TimeoutError, _Retryable, urllib.error.URLError, ConnectionError, HTTPException) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        log.debug("%s: attempt %d failed (%s)", url, attempt + 1, last)
    return f"{last} after {retries + 1} attempts"


def _create(part: Path):
    """``part`` opened for writing from the start, never through a link planted at its name
    (``O_NOFOLLOW``): a link there would have a hostile server's bytes written into its target."""
    part.unlink(missing_ok=True)  # a leftover of an earlier try (or a planted link: removed, not followed)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "wb")


def _transfer(request, part: Path, limits: Limits) -> None:
    """One GET into ``part`` within ``limits``; raises on anything short of a complete file."""
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=limits.timeout) as response, _create(part) as fh:
        length = (response.headers.get("Content-Length") or "").strip()
        expected = int(length) if length.isdigit() else None
        if expected is not None and expected > limits.max_bytes:
            raise _Refused(
                f"the server announces {expected:,} bytes, more than the limit of "
                f"{limits.max_bytes:,} (max_bytes / --max-bytes)"
            )
        n = 0
        # read1 returns what has arrived (at most one socket read), so a server that drips its
        # bytes cannot hold one call for long and the total deadline is checked between reads.
        while chunk := response.read1(1 << 16):
            n += len(chunk)
            if n > limits.max_bytes:
                raise _Refused(
                    f"the response exceeds the limit of {limits.max_bytes:,} bytes (max_bytes / --max-bytes); cut off"
                )
            fh.write(chunk)
            if time.monotonic() - start > limits.deadline:
                raise _Refused(
                    f"the transfer exceeded the total deadline of {limits.deadline:g} s ({n:,} bytes "
                    f"received; deadline / --deadline); cut off"
                )
    if expected is not None and n != expected:
        raise _Retryable(f"incomplete transfer ({n} of {expected} bytes)")
