"""DESI ``coadd-*.fits`` and ``spectra-*.fits`` files: the vocabulary and the reader.

A DESI file holds many targets (up to thousands in a healpix coadd), each observed by three
overlapping camera arms (B, R, Z: linear 0.8 Å pixels, 3600–9824 Å) with their own ``X_FLUX``,
``X_IVAR`` and ``X_MASK`` images (one row per target), a ``FIBERMAP`` table (``TARGETID``,
``OBJTYPE``, ``COADD_FIBERSTATUS`` or ``FIBERSTATUS``, target bits) and, in newer files,
``EXP_FIBERMAP`` and ``SCORES``. The redshifts live in a companion ``redrock-*.fits``
(``REDSHIFTS``: ``TARGETID``, ``Z``, ``ZERR``, ``ZWARN``, ``SPECTYPE``) beside the file. Layouts:
``coadd-SURVEY-PROGRAM-HEALPIX.fits`` (healpix) and ``coadd-PETAL-TILEID-thruNIGHT.fits`` (tiles);
``spectra-*`` files have the same HDUs with one row per exposure. The DESI data model:
https://desidatamodel.readthedocs.io.

Each target becomes one :class:`~agnlens.spectra.Spectrum`: its arms merged onto one wavelength
axis (:func:`~agnlens.io.desi_arms.merge_arms`: inverse-variance weighted where arms overlap,
masked pixels excluded, each join checked for a jump between the cameras). Sky and blank fibres are skipped and counted;
a target that cannot be used is a :class:`~agnlens.errors.RejectedSpectrum` naming it, and the
rest of the file is read. The FITS structure is walked by :mod:`agnlens.io.fits`; a large file is
memory-mapped and read one target's rows at a time, so memory follows the target, not the file.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agnlens.errors import ReadError, RejectedSpectrum
from agnlens.io.desi_arms import ArmLayout, merge_arms, merge_rows
from agnlens.io.fits import BinTable, FitsFile, Hdu, image_rows, image_shape, load_bytes, sniff_bytes
from agnlens.io.sdss import ZWARNING_BITS
from agnlens.spectra import Spectrum

log = logging.getLogger(__name__)

__all__ = [
    "ARMS",
    "FATAL_FIBERSTATUS",
    "FIBERSTATUS_BITS",
    "SKIPPED_OBJTYPES",
    "UNRELIABLE_ZWARN_BITS",
    "ZWARN_BITS",
    "SkippedFibres",
    "desi_spec_id",
    "merge_arms",
    "read_desi",
    "zwarn_problem",
]

#: The camera arms, blue to red.
ARMS = ("B", "R", "Z")

#: ``FIBERSTATUS`` / ``COADD_FIBERSTATUS`` bits (desispec ``maskbits.fibermask``).
FIBERSTATUS_BITS: dict[str, int] = {
    "UNASSIGNED": 0,
    "STUCKPOSITIONER": 1,  # informational: may still sit on good sky
    "BROKENFIBER": 2,
    "RESTRICTED": 3,  # informational
    "MISSINGPOSITION": 8,
    "BADPOSITION": 9,
    "POORPOSITION": 10,  # informational for a science target
    "LOWTRANSMISSION": 12,
    "LOWEFFTIME": 15,
    "BADFIBER": 16,
    "BADTRACE": 17,
    "BADFLAT": 18,
    "BADARC": 19,
    "MANYBADCOL": 20,
    "MANYREJECTED": 21,
    "BADAMPB": 22,  # one arm unusable: that arm is masked, the others kept
    "BADAMPR": 23,
    "BADAMPZ": 24,
    "BADPETALPOS": 25,
    "BADPETALSKY": 26,
    "BADPETALSTDSTAR": 27,
    "BADPETALFLUXCAL": 28,
    "BADPETALSNR": 29,
    "BADREADNOISE": 30,
}

#: Bits that make a whole fibre unusable: desispec's ``get_all_nonamp_fiberbitmask_val``.
FATAL_FIBERSTATUS: int = sum(
    1 << FIBERSTATUS_BITS[name]
    for name in ("BROKENFIBER", "MISSINGPOSITION", "BADPOSITION", "BADFIBER", "BADTRACE", "BADARC",
                 "BADFLAT", "MANYBADCOL", "MANYREJECTED")
)

#: The bit that makes one arm unusable.
ARM_FIBERSTATUS: dict[str, int] = {arm: 1 << FIBERSTATUS_BITS[f"BADAMP{arm}"] for arm in ARMS}

#: Redrock ``ZWARN`` bits (redrock ``zwarning.ZWarningMask``); 0–9 mean what SDSS's ZWARNING bits mean.
ZWARN_BITS: dict[str, int] = {**ZWARNING_BITS, "BAD_MINFLUX": 10, "POORDATA": 11}

#: ZWARN bits that make the redshift unreliable: the same choice as SDSS's
#: (:data:`agnlens.io.sdss.UNRELIABLE_Z_BITS`: MANY_OUTLIERS and NEGATIVE_EMISSION are left out, bright
#: broad-line AGN trip them with a good redshift) plus BAD_MINFLUX. POORDATA is informational.
UNRELIABLE_ZWARN_BITS: int = sum(
    1 << ZWARN_BITS[name]
    for name in ("SKY", "LITTLE_COVERAGE", "SMALL_DELTA_CHI2", "Z_FITLIMIT", "UNPLUGGED", "BAD_TARGET",
                 "NODATA", "BAD_MINFLUX")
)

#: Targets read and merged at once: a block of rows of every arm image (about 100 kB a target as
#: stored, ~0.7 MB while merged in float64).
BLOCK_ROWS = 16

#: ``OBJTYPE`` values of fibres that hold no target: skipped and counted, never rejected.
SKIPPED_OBJTYPES: dict[str, str] = {"SKY": "sky", "NON": "unassigned", "BAD": "broken", "": "blank"}

_COMPANION_RE = re.compile(r"^(coadd|spectra)-(.+?\.fits?(?:\.gz)?)$", re.IGNORECASE)


def zwarn_problem(zwarn: int) -> str | None:
    """Say why a Redrock ``ZWARN`` makes the redshift unreliable, or return None if it does not.

    Parameters
    ----------
    zwarn : int

    Returns
    -------
    str or None
        e.g. ``"ZWARN = 4 (SMALL_DELTA_CHI2) makes the redshift unreliable; use
        --allow-zwarning to keep it"``; None when no bit of :data:`UNRELIABLE_ZWARN_BITS` is set.
    """
    zwarn = int(zwarn)
    bad = zwarn & UNRELIABLE_ZWARN_BITS
    if not bad:
        return None
    names = [name for name, bit in ZWARN_BITS.items() if bad & (1 << bit)]
    return f"ZWARN = {zwarn} ({', '.join(names)}) makes the redshift unreliable; use --allow-zwarning to keep it"


def desi_spec_id(survey: str, program: str, targetid: int, expid: int | None = None) -> str:
    """The spec_id of a DESI spectrum: ``SURVEY-PROGRAM-TARGETID`` (``-EXPID`` for one exposure).

    A target observed in two surveys or programs has two coadds, hence two spectra: TARGETID alone
    does not name a spectrum. Tile coadds that do not say their program use ``tileTILEID``.
    """
    base = f"{survey}-{program}-{int(targetid)}"
    return base if expid is None else f"{base}-{int(expid):08d}"


@dataclass
class SkippedFibres:
    """Fibres of a DESI file that hold no target (sky, unassigned, broken): skipped, not rejected."""

    source: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        return f"{self.source}: skipped {self.total} fibre(s) without a target ({kinds})"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_desi(
    path: str | os.PathLike,
    *,
    targets: Sequence[int] | None = None,
    rows: tuple[int, int] | None = None,
    item: str | None = None,
) -> Iterator[Spectrum | RejectedSpectrum | SkippedFibres]:
    """Read the targets of a DESI ``coadd-*`` or ``spectra-*`` file, one at a time.

    Parameters
    ----------
    path : path-like
        The file (``.fits`` or ``.fits.gz``). Its redshifts are read from the ``redrock-*`` file
        of the same name beside it, when there is one.
    targets : sequence of int, optional
        Only these TARGETIDs.
    rows : (start, stop), optional
        Only these FIBERMAP rows.
    item : str, optional
        How the caller names the file in messages (default ``path``).

    Yields
    ------
    Spectrum
        One per target (observed frame, arms merged by :func:`merge_arms`), in file order.
        ``meta``: ``spec_id`` (:func:`desi_spec_id`), ``targetid``, ``survey``, ``program``,
        ``z``, ``z_err``, ``zwarning`` (Redrock's ZWARN), ``spectype``, ``z_source`` (the redrock
        file, ``""`` when none: z is then NaN), ``fiberstatus``, ``camera_jump`` (the flagged joins,
        e.g. ``"B-R"``, or ``""``), ``source`` (``FILE[TARGETID]``, which the input router reads
        back), ``format`` (``"desi-coadd"`` / ``"desi-spectra"``).
    RejectedSpectrum
        A target that cannot be used (a fatal fibre status, no arm with data), naming it.
    SkippedFibres
        Once, at the end, when fibres without a target were skipped.

    Raises
    ------
    ReadError
        When the file itself cannot be read (not DESI, damaged, arms inconsistent).
    """
    data, source = load_bytes(path)
    f = FitsFile(data, source)
    kind = sniff_bytes(data, source)
    if kind != "desi":
        raise ReadError(source, "not a DESI coadd or spectra file (HDU 1 is not FIBERMAP)")
    yield from desi_from_fits(f, Path(os.fspath(path)), targets=targets, rows=rows, item=item or source)


def desi_from_fits(f: FitsFile, path: Path, *, targets=None, rows=None, item: str) -> Iterator[Any]:
    primary = f.primary()
    f.check_complete()  # a file cut short says so here, not as a file with fewer arms
    fm_hdu = f.find(("FIBERMAP",))
    if fm_hdu is None:
        raise f.error("not a DESI coadd or spectra file: no FIBERMAP HDU")
    fibermap = BinTable(f, fm_hdu)
    n = fibermap.n_rows
    if not fibermap.has("TARGETID"):
        raise f.error(f"{fm_hdu.label} has no column 'TARGETID'")
    targetid = fibermap.column("TARGETID").astype(np.int64)
    objtype = fibermap.text("OBJTYPE") if fibermap.has("OBJTYPE") else np.full(n, "TGT")
    status_col = next((c for c in ("COADD_FIBERSTATUS", "FIBERSTATUS") if fibermap.has(c)), None)
    status = fibermap.column(status_col).astype(np.int64) if status_col else np.zeros(n, np.int64)
    is_spectra = fibermap.has("EXPID") and not f.find(("EXP_FIBERMAP",))
    expid = fibermap.column("EXPID").astype(np.int64) if is_spectra else None
    survey, program = _survey_program(primary, fibermap, f)

    arms = []
    for arm in ARMS:
        found = {part: f.find((f"{arm}_{part}",)) for part in ("WAVELENGTH", "FLUX", "IVAR", "MASK")}
        if found["FLUX"] is None:
            continue
        missing = [p for p in ("WAVELENGTH", "IVAR") if found[p] is None]
        if missing:
            raise f.error(f"the {arm} arm has {arm}_FLUX but no {', '.join(arm + '_' + p for p in missing)}")
        hdus: dict[str, Hdu] = {k: h for k, h in found.items() if h is not None}
        wavelength = image_rows(f, hdus["WAVELENGTH"])
        for part in ("FLUX", "IVAR", "MASK"):
            h = hdus.get(part)
            if h is not None and image_shape(f, h) != (n, wavelength.size):
                raise f.error(
                    f"{h.label} is {' × '.join(map(str, image_shape(f, h)[::-1]))}, expected "
                    f"{wavelength.size} wavelengths × {n} FIBERMAP rows"
                )
        arms.append((arm, wavelength, hdus))
    if not arms:
        raise f.error("no camera arm (no B_FLUX, R_FLUX or Z_FLUX image)")

    layout = ArmLayout.build([a for a, _, _ in arms], [w for _, w, _ in arms], f.source)
    redshifts, z_source = _companion_redshifts(path, f)
    selected: Sequence[int]
    if rows is not None:
        selected = range(max(0, rows[0]), min(n, rows[1]))
    elif targets is not None:
        wanted = {int(t) for t in targets}
        selected = [i for i in range(n) if int(targetid[i]) in wanted]
        missing_ids = wanted - {int(targetid[i]) for i in selected}
        for t in sorted(missing_ids):
            yield RejectedSpectrum(f"{item}[{t}]", f"TARGETID {t} is not in this file's FIBERMAP")
    else:
        selected = range(n)
    fmt = "desi-spectra" if is_spectra else "desi-coadd"
    skipped: dict[str, int] = {}
    merged_rows: list = []
    start = stop = 0
    for i in selected:
        tid = int(targetid[i])
        where = f"{item}[{tid}]"
        kind = SKIPPED_OBJTYPES.get(str(objtype[i]).upper())
        if tid < 0 or kind is not None:
            kind = kind or "blank"
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        st = int(status[i])
        if st & FATAL_FIBERSTATUS:
            names = [k for k, b in FIBERSTATUS_BITS.items() if st & FATAL_FIBERSTATUS & (1 << b)]
            yield RejectedSpectrum(where, f"{status_col} = {st} ({', '.join(names)}) marks the fibre unusable")
            continue
        if not start <= i < stop:  # the next block of rows: memory is bounded by BLOCK_ROWS targets
            start, stop = i, min(i + BLOCK_ROWS, n)
            block = [_rows(f, hdus, start, stop) for _, _, hdus in arms]
            if isinstance(f.data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
                # the block is copied out: let the mapped pages go, so the resident size follows the block too
                f.data.madvise(mmap.MADV_DONTNEED)
            merged_rows = merge_rows(
                layout, [b[0] for b in block], [b[1] for b in block],
                [(b[2] != 0) | ((status[start:stop] & ARM_FIBERSTATUS[arm]) != 0)[:, None]  # any mask bit is bad
                 for (arm, _, _), b in zip(arms, block)],
            )
        merged = merged_rows[i - start]
        if merged.mask.all():
            yield RejectedSpectrum(where, "no arm has a usable pixel (every pixel masked or ivar = 0)")
            continue
        z, z_err, zwarn, spectype = redshifts.get(tid, (np.nan, np.nan, 0, ""))
        meta = {
            "spec_id": desi_spec_id(survey, program, tid, None if expid is None else int(expid[i])),
            "targetid": tid,
            "survey": survey,
            "program": program,
            "z": float(z),
            "z_err": float(z_err),
            "zwarning": int(zwarn),
            "spectype": spectype,
            "z_source": z_source if tid in redshifts else "",
            "fiberstatus": st,
            "camera_jump": ";".join(merged.flagged),
            "source": where,
            "format": fmt,
            "simulated": False,
        }
        yield Spectrum(wavelength=merged.wavelength, flux=merged.flux, ivar=merged.ivar, mask=merged.mask,
                       meta=meta, frame="observed")
    if skipped:
        yield SkippedFibres(item, skipped)


def _rows(f: FitsFile, hdus: dict[str, Hdu], start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``start:stop`` of one arm's flux, ivar and mask (zeros without a mask image)."""
    flux = image_rows(f, hdus["FLUX"], start, stop)
    ivar = image_rows(f, hdus["IVAR"], start, stop)
    mask = hdus.get("MASK")
    return flux, ivar, image_rows(f, mask, start, stop) if mask is not None else np.zeros(flux.shape, np.int64)


def _survey_program(primary: Hdu, fibermap: BinTable, f: FitsFile) -> tuple[str, str]:
    """SURVEY and PROGRAM from the header (healpix files), else from the FIBERMAP's target-bit
    columns (``SV3_DESI_TARGET`` → sv3; plain ``DESI_TARGET`` → main) and ``tileTILEID``."""
    survey = primary.get("SURVEY")
    program = primary.get("PROGRAM") or primary.get("FAPRGRM")
    if not isinstance(survey, str) or not survey.strip():
        survey = "main"
        for prefix in ("sv1", "sv2", "sv3", "cmx"):
            col = "CMX_TARGET" if prefix == "cmx" else f"{prefix.upper()}_DESI_TARGET"
            if fibermap.has(col) and np.any(fibermap.column(col) != 0):
                survey = prefix
                break
    if not isinstance(program, str) or not program.strip():
        tile = primary.get("TILEID")
        program = f"tile{tile}" if isinstance(tile, int) else "unknown"
    return survey.strip().lower(), program.strip().lower()


def companion_path(path: str | os.PathLike) -> Path | None:
    """The ``redrock-*`` file beside a ``coadd-*``/``spectra-*`` file (gzipped or not), if it exists."""
    p = Path(os.fspath(path))
    m = _COMPANION_RE.match(p.name)
    if not m:
        return None
    stem = re.sub(r"\.gz$", "", m.group(2), flags=re.IGNORECASE)
    for name in (f"redrock-{stem}", f"redrock-{stem}.gz"):
        if (p.parent / name).is_file():
            return p.parent / name
    return None


def _companion_redshifts(path: Path, f: FitsFile) -> tuple[dict[int, tuple[float, float, int, str]], str]:
    """TARGETID → (Z, ZERR, ZWARN, SPECTYPE) from the redrock file beside ``path``; ({}, "") if none."""
    rr = companion_path(path)
    if rr is None:
        return {}, ""
    data, source = load_bytes(rr)
    g = FitsFile(data, source)
    hdu = g.find(("REDSHIFTS",))
    if hdu is None:
        raise ReadError(source, "the redrock file has no REDSHIFTS HDU")
    t = BinTable(g, hdu)
    for col in ("TARGETID", "Z"):
        if not t.has(col):
            raise ReadError(source, f"{hdu.label} has no column {col!r}")
    tid = t.column("TARGETID").astype(np.int64)
    z = t.column("Z")
    zerr = t.column("ZERR") if t.has("ZERR") else np.full(tid.size, np.nan)
    zwarn = t.column("ZWARN").astype(np.int64) if t.has("ZWARN") else np.zeros(tid.size, np.int64)
    spectype = t.text("SPECTYPE") if t.has("SPECTYPE") else np.full(tid.size, "")
    out: dict[int, tuple[float, float, int, str]] = {}
    for k in range(tid.size):
        out.setdefault(int(tid[k]), (float(z[k]), float(zerr[k]), int(zwarn[k]), str(spectype[k])))
    log.debug("%s: %d redshifts from %s", f.source, len(out), rr.name)
    return out, rr.name
