"""Write spectra as SDSS DR8+ "lite" ``spec-PLATE-MJD-FIBER.fits`` files.

Made for simulated spectra, so that the whole read path (reader → preprocessing → store) is
exercised on files of the real layout:

* HDU 0: primary header with ``PLATEID``, ``MJD``, ``FIBERID``, ``SIMULATE = T`` when the spectrum
  is simulated;
* HDU 1 ``COADD``: ``flux``, ``loglam``, ``ivar``, ``and_mask``, ``or_mask``, ``wdisp``, ``sky``,
  ``model`` (float32, masks int32), as in SDSS;
* HDU 2 ``SPECOBJ``: ``PLATE``, ``MJD``, ``FIBERID``, ``Z``, ``Z_ERR``, ``ZWARNING``, ``CLASS``,
  ``SUBCLASS``, ``SURVEY``, ``SIMULATED`` (logical) and, for simulated spectra, the simulator's
  truth (``LABEL``, ``SUBTYPE``, ``FWHM_BROAD`` ...) and ``SOURCE``.

Masked pixels get ``and_mask`` bit 18 (FULLREJECT) and ``ivar = 0``. Files are written to a
temporary name in the target directory and renamed, so a crash never leaves half a file. The
bytes are formatted by :mod:`agnlens.io.fits`'s writer; the tests read every kind of column back
with astropy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agnlens.atomic import write_bytes, write_csv
from agnlens.io.fits import Column, bintable_hdu, header_block, header_card
from agnlens.io.sdss import SPPIXMASK_BITS
from agnlens.spectra import Spectrum

log = logging.getLogger(__name__)

__all__ = ["write_sdss", "write_sdss_many", "write_labels", "sdss_filename"]

# Simulator truth carried in SPECOBJ: meta key -> (column, FITS format)
_EXTRA_COLUMNS = {
    "label": ("LABEL", "16A"),
    "subtype": ("SUBTYPE", "8A"),
    "fwhm_broad": ("FWHM_BROAD", "E"),
    "fwhm_narrow": ("FWHM_NARROW", "E"),
    "snr_target": ("SNR_TARGET", "E"),
    "host_fraction": ("HOST_FRACTION", "E"),
    "oiii_hbeta": ("OIII_HBETA", "E"),
    "oiii_hbeta_total": ("OIII_HBETA_TOTAL", "E"),
    "feii_ratio": ("FEII_RATIO", "E"),
    "broad_wing_fraction": ("BROAD_WING_FRACTION", "E"),
    "broad_halpha_hbeta": ("BROAD_HALPHA_HBETA", "E"),
    "alpha": ("ALPHA", "E"),
    "sigma_star": ("SIGMA_STAR", "E"),
    "sigma_inst": ("SIGMA_INST", "E"),
    "source": ("SOURCE", "64A"),
}


def _ids(spectrum: Spectrum) -> tuple[int, int, int]:
    meta = spectrum.meta
    if all(k in meta for k in ("plate", "mjd", "fiber")):
        return int(meta["plate"]), int(meta["mjd"]), int(meta["fiber"])
    parts = str(meta.get("spec_id", "")).split("-")
    try:
        plate, mjd, fiber = (int(x) for x in parts)
    except ValueError:
        raise ValueError(
            f"write_sdss: spectrum {spectrum.spec_id!r} has no plate/mjd/fiber; expected meta "
            f"'plate', 'mjd', 'fiber' or a spec_id like '9000-55000-0001'"
        ) from None
    return plate, mjd, fiber


def sdss_filename(spectrum: Spectrum) -> str:
    """The SDSS file name ``spec-PLATE-MJD-FIBER.fits`` (4-5-4 digits) of ``spectrum``."""
    plate, mjd, fiber = _ids(spectrum)
    return f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}.fits"


def _fits_bytes(spectrum: Spectrum, model: np.ndarray | None, sky: np.ndarray | None) -> bytes:
    if spectrum.frame != "observed":
        raise ValueError(
            f"write_sdss: spectrum {spectrum.spec_id!r} is in the {spectrum.frame} frame; SDSS files "
            f"hold observed wavelengths, write the spectrum before to_rest_frame"
        )
    wave = spectrum.wavelength
    if wave.size == 0 or np.any(wave <= 0) or not np.all(np.isfinite(wave)):
        raise ValueError(f"write_sdss: spectrum {spectrum.spec_id!r} needs positive finite wavelengths")
    n = wave.size
    for name, arr in {"model": model, "sky": sky}.items():
        if arr is not None and np.shape(arr) != (n,):
            raise ValueError(f"write_sdss: {name} has shape {np.shape(arr)}, expected the spectrum's ({n},)")
    meta = spectrum.meta
    plate, mjd, fiber = _ids(spectrum)
    simulated = bool(meta.get("simulated", False))
    mask = spectrum.mask | ~np.isfinite(spectrum.flux)
    ivar = np.where(mask, 0.0, spectrum.ivar)
    bits = np.where(mask, 1 << SPPIXMASK_BITS["FULLREJECT"], 0)
    wdisp = float(meta.get("sigma_inst", 69.0)) / 69.03  # instrumental σ in pixels (1e-4 dex)
    zeros = np.zeros(n)
    coadd = [
        ("flux", "E", np.where(np.isfinite(spectrum.flux), spectrum.flux, 0.0)),
        ("loglam", "E", np.log10(wave)),
        ("ivar", "E", ivar),
        ("and_mask", "J", bits),
        ("or_mask", "J", bits),
        ("wdisp", "E", np.full(n, wdisp)),
        ("sky", "E", zeros if sky is None else np.asarray(sky, dtype=float)),
        ("model", "E", zeros if model is None else np.asarray(model, dtype=float)),
    ]
    z = float(meta.get("z", np.nan))
    specobj: list[Column] = [
        ("PLATE", "J", [plate]), ("MJD", "J", [mjd]), ("FIBERID", "J", [fiber]),
        ("Z", "E", [z]),
        ("Z_ERR", "E", [float(meta.get("z_err", 1e-5 if simulated else np.nan))]),
        ("ZWARNING", "J", [int(meta.get("zwarning", 0) or 0)]),
        ("CLASS", "6A", [str(meta.get("sdss_class", "") or "")]),
        ("SUBCLASS", "21A", [str(meta.get("sdss_subclass", "") or "")]),
        ("SURVEY", "8A", [str(meta.get("survey", "sdss") or "sdss")]),
        ("SIMULATED", "L", [simulated]),
    ]
    for key, (col, fmt) in _EXTRA_COLUMNS.items():
        if key in meta and meta[key] is not None:
            value = meta[key]
            specobj.append((col, fmt, [str(value)] if fmt.endswith("A") else [float(value)]))
    sim_card = header_card("SIMULATE", simulated, "simulated by agnlens, not observed")
    primary = [
        header_card("SIMPLE", True, "conforms to FITS standard"), header_card("BITPIX", 8),
        header_card("NAXIS", 0), header_card("EXTEND", True), header_card("PLATEID", plate, "plate"),
        header_card("MJD", mjd, "MJD of observation"), header_card("FIBERID", fiber, "fiber"),
        header_card("TELESCOP", "SIMULATED" if simulated else "SDSS 2.5-M"),
        sim_card, header_card("ORIGIN", "agnlens", "written by agnlens.io.sdss_write"),
    ]
    if simulated:
        primary.append(f"{'COMMENT SIMULATED spectrum written by agnlens; not an SDSS observation.':<80}")
    return header_block(primary) + bintable_hdu("COADD", coadd) + bintable_hdu("SPECOBJ", specobj, [sim_card])


def write_sdss(
    spectrum: Spectrum,
    path: str | os.PathLike,
    *,
    model: np.ndarray | None = None,
    sky: np.ndarray | None = None,
    overwrite: bool = True,
) -> Path:
    """Write one observed-frame spectrum as an SDSS DR8+ lite ``spec-*.fits`` file.

    Parameters
    ----------
    spectrum : Spectrum
        Observed frame; ``meta`` needs ``plate``/``mjd``/``fiber`` or a ``spec_id``.
    path : path-like
        The file to write; a directory means ``directory/spec-PLATE-MJD-FIBER.fits``.
    model, sky : ndarray of shape (n_pixels,), optional
        The ``model`` and ``sky`` columns (zeros if not given).
    overwrite : bool, default True
        If False, an existing file is an error.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the spectrum is not in the observed frame or has no PLATE-MJD-FIBER.
    FileExistsError
        If ``overwrite`` is False and the file exists.
    """
    path = Path(path)
    if path.is_dir():
        path = path / sdss_filename(spectrum)
    if path.exists() and not overwrite:
        raise FileExistsError(f"write_sdss: {path} exists; pass overwrite=True to replace it")
    data = _fits_bytes(spectrum, model, sky)
    write_bytes(path, data)
    log.debug("wrote %s", path)
    return path


def write_sdss_many(spectra: Iterable[Spectrum], directory: str | os.PathLike, *, overwrite: bool = True) -> list[Path]:
    """Write each spectrum as ``directory/spec-PLATE-MJD-FIBER.fits``; returns the paths in order.

    Raises
    ------
    ValueError
        If two spectra share a PLATE-MJD-FIBER (one file would overwrite the other).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    paths = []
    for spectrum in spectra:
        name = sdss_filename(spectrum)
        if name in seen:
            raise ValueError(
                f"write_sdss_many: spectra {seen[name]!r} and {spectrum.spec_id!r} would both be written "
                f"to {directory / name}; give them distinct PLATE-MJD-FIBER ids"
            )
        seen[name] = spectrum.spec_id
        paths.append(write_sdss(spectrum, directory / name, overwrite=overwrite))
    log.info("wrote %d spec-*.fits files to %s", len(paths), directory)
    return paths


#: Columns of the catalogue written by :func:`write_labels` (those present in the metadata).
LABEL_COLUMNS = ("spec_id", "file", "z", "label", "subtype", "fwhm_broad", "snr_target", "simulated", "source")


def write_labels(spectra: Iterable[Spectrum], path: str | os.PathLike) -> Path:
    """Write a label catalogue (CSV keyed by ``spec_id``) for spectra written with :func:`write_sdss_many`.

    ``agnlens ingest DIR --labels PATH`` then recovers the labels (and ``io.read_catalog`` the
    redshifts) of the simulated files. Keep the catalogue outside DIR, so that it is not taken
    for a spectrum.

    Returns
    -------
    Path
        The written CSV (written atomically).
    """
    import pandas as pd

    rows = []
    for spectrum in spectra:
        row = {k: spectrum.meta.get(k) for k in LABEL_COLUMNS if k in spectrum.meta}
        row["spec_id"] = spectrum.spec_id
        row["file"] = sdss_filename(spectrum)
        rows.append(row)
    table = pd.DataFrame(rows)
    return write_csv(path, table)
