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

import http.client
import logging
import os
import random
import socket
import threading
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
    """``(plate, mjd, fiber)`` of ``PLATE-MJD-FIBER`` (any zero padding), each in its range
    (:func:`spec_key`)."""
    parts = str(spec_id).strip().split("-")
    if len(parts) != 3:
        raise ValueError(f"spec_id {spec_id!r} is not PLATE-MJD-FIBER (e.g. 0266-51602-0013)")
    try:
        return spec_key(*parts)
    except ValueError as exc:
        raise ValueError(f"spec_id {spec_id!r}: {exc}") from None


#: Ranges of the SDSS spectrum keys: plate and MJD have at most five digits (MJDs of SDSS
#: observations start at 51,000), a plate holds at most 1,000 fibres (BOSS; 640 in SDSS-I/II).
KEY_RANGES = {"plate": (1, 99_999), "mjd": (50_000, 99_999), "fiber": (1, 1_000)}


def spec_key(plate, mjd, fiber) -> tuple[int, int, int]:
    """``(plate, mjd, fiber)`` as integers, or a ValueError naming the value that is not one.

    Accepts what a catalogue or a service's CSV holds: integers, ``"266"``, ``" 0266 "``, ``266.0``.
    Each key must lie in :data:`KEY_RANGES`; a blank, a non-number, a fraction, a negative number or
    a 20-digit fibre is refused, so one bad row can be skipped and named while the others go on.
    """
    out = []
    for name, value in (("plate", plate), ("mjd", mjd), ("fiber", fiber)):
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not text or number != number or number != int(number):
            raise ValueError(f"{name} {text!r} is not a whole number")
        lo, hi = KEY_RANGES[name]
        if not lo <= number <= hi:
            raise ValueError(f"{name} {text} is outside {lo}-{hi}")
        out.append(int(number))
    return out[0], out[1], out[2]


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
    with _create(part) as fh:
        expected, n = _read_bounded(request, limits, fh.write)
    if expected is not None and n != expected:
        raise _Retryable(f"incomplete transfer ({n} of {expected} bytes)")


def get_bytes(url: str, limits: Limits) -> bytes:
    """The body of one GET of ``url`` within ``limits`` (connect, headers and body under one
    deadline); raises ``urllib`` errors, or :class:`AgnlensError` naming the limit it crossed."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    parts: list[bytes] = []
    try:
        _read_bounded(request, limits, parts.append)
    except _Refused as exc:
        raise AgnlensError(f"{urllib.parse.urlsplit(url).netloc}: {exc}") from None
    return b"".join(parts)


def _read_bounded(request, limits: Limits, write) -> tuple[int | None, int]:
    """Send ``request`` and pass its body to ``write``; ``(announced length, bytes read)``.

    ``limits.timeout`` bounds each socket read; ``limits.deadline`` the whole exchange — connect,
    status line, headers and body — through a watchdog that shuts the connection's sockets when it
    expires, so a server dripping its headers one byte at a time is cut off too.
    """
    watch = _Watchdog(limits.deadline)
    opener = urllib.request.build_opener(_WatchedHTTP(watch), _WatchedHTTPS(watch))
    start = time.monotonic()

    def over() -> _Refused:
        return _Refused(f"the transfer exceeded the total deadline of {limits.deadline:g} s (deadline / "
                        f"--deadline); cut off")

    try:
        with watch, opener.open(request, timeout=limits.timeout) as response:
            length = (response.headers.get("Content-Length") or "").strip()
            expected = int(length) if length.isdigit() else None
            if expected is not None and expected > limits.max_bytes:
                raise _Refused(
                    f"the server announces {expected:,} bytes, more than the limit of "
                    f"{limits.max_bytes:,} (max_bytes / --max-bytes)"
                )
            n = 0
            # read1 returns what has arrived (at most one socket read), so a server that drips its
            # bytes cannot hold one call for long and the deadline is also checked between reads.
            while chunk := response.read1(1 << 16):
                n += len(chunk)
                if n > limits.max_bytes:
                    raise _Refused(
                        f"the response exceeds the limit of {limits.max_bytes:,} bytes (max_bytes / "
                        f"--max-bytes); cut off"
                    )
                write(chunk)
                if time.monotonic() - start > limits.deadline:
                    raise over()
    except (OSError, HTTPException) as exc:
        if watch.expired and not isinstance(exc, urllib.error.HTTPError):
            raise over() from None
        raise
    if watch.expired:
        raise over()
    return expected, n


class _Watchdog:
    """Shuts down every socket registered with it once ``seconds`` have passed (a context manager:
    the clock runs inside the ``with``)."""

    def __init__(self, seconds: float) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(float(seconds), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def register(self, sock) -> None:
        with self._lock:
            self.sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self.sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _watched(base: type, watch: _Watchdog):
    class Connection(base):
        def connect(self) -> None:
            super().connect()
            watch.register(self.sock)

    return Connection


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watchdog) -> None:
        super().__init__()
        self._connection = _watched(http.client.HTTPConnection, watch)

    def http_open(self, req):
        return self.do_open(self._connection, req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watchdog) -> None:
        super().__init__()
        self._connection = _watched(http.client.HTTPSConnection, watch)

    def https_open(self, req):
        return self.do_open(self._connection, req, context=self._context)
