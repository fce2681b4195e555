"""specutils in and out: converters between ``specutils.Spectrum`` and agnlens's containers.

specutils is an optional dependency (``pip install 'agnlens[specutils]'``); it is imported only
when one of these functions needs it. specutils 2 names its class ``Spectrum``; specutils 1 named
it ``Spectrum1D``. Both are accepted.

Conventions of the conversion (both directions):

* spectral axis — vacuum wavelength in Å (any spectral unit is converted on the way in; a
  decreasing axis is reversed);
* flux — a :class:`~agnlens.spectra.Spectrum` is in 1e-17 erg s⁻¹ cm⁻² Å⁻¹ (the SDSS unit), a
  :class:`~agnlens.spectra.SpectrumSet` is normalised and dimensionless;
* uncertainty — :class:`astropy.nddata.InverseVariance` in the flux unit⁻²; standard deviations
  and variances are converted on the way in, no uncertainty becomes ``ivar = 1``;
* mask — ``True`` where a pixel is bad, in both packages;
* redshift — ``meta["z"]`` (exact) and, for observed-frame spectra, the specutils ``redshift``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pandas as pd

from agnlens.grid import Grid
from agnlens.spectra import Spectrum, SpectrumSet, format_spec_id

#: The flux unit of SDSS spectra and of every :class:`~agnlens.spectra.Spectrum`.
SDSS_FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"

_INSTALL = "install it with `pip install 'agnlens[specutils]'`"


def specutils_class() -> type:
    """The installed specutils spectrum class: ``Spectrum`` (specutils ≥ 2) or ``Spectrum1D``.

    Raises
    ------
    ImportError
        When specutils is not installed, with how to install it.
    """
    try:
        import specutils
    except ImportError:
        raise ImportError(f"this needs specutils, which is not installed; {_INSTALL}") from None
    cls = getattr(specutils, "Spectrum", None) or getattr(specutils, "Spectrum1D", None)
    if cls is None:  # pragma: no cover - a specutils without either class
        raise ImportError(f"specutils {specutils.__version__} has neither Spectrum nor Spectrum1D; {_INSTALL}")
    return cls


def is_specutils(obj: Any) -> bool:
    """Whether ``obj`` is a specutils spectrum (``Spectrum`` or ``Spectrum1D``).

    Never imports specutils: an object can only be one if specutils is already loaded.
    """
    module = sys.modules.get("specutils")
    if module is None:
        return False
    classes = tuple(c for c in (getattr(module, "Spectrum", None), getattr(module, "Spectrum1D", None)) if c)
    return isinstance(obj, classes)


def from_specutils(spectrum: Any, *, z: float | None = None, spec_id: str | None = None) -> Spectrum | SpectrumSet:
    """Convert a specutils spectrum to an agnlens :class:`~agnlens.spectra.Spectrum`.

    Parameters
    ----------
    spectrum : specutils.Spectrum or specutils.Spectrum1D
        Flux of shape (n_pixels,), or (n_spectra, n_pixels) for spectra on one common grid (as
        written by :func:`to_specutils` from a :class:`~agnlens.spectra.SpectrumSet`).
    z : float, optional
        Redshift. Default: ``meta["z"]`` or ``meta["redshift"]``, else the header keyword ``Z`` of
        ``meta["header"]`` (specutils' SDSS loaders keep the primary header there), else the
        spectrum's own non-zero ``redshift``, else NaN (preprocessing then rejects the spectrum).
    spec_id : str, optional
        Identifier. Default: ``meta["spec_id"]``, else ``PLATE-MJD-FIBER`` from the header, else "".

    Returns
    -------
    Spectrum or SpectrumSet
        A :class:`~agnlens.spectra.Spectrum` for one-dimensional flux (flux converted to
        1e-17 erg s⁻¹ cm⁻² Å⁻¹ when it has a flux-density unit; dimensionless flux is kept as
        it is); a :class:`~agnlens.spectra.SpectrumSet` for two-dimensional flux.

    Raises
    ------
    TypeError
        If ``spectrum`` is not a specutils spectrum.
    ValueError
        If the flux has more than two dimensions or its unit cannot be converted.
    """
    if not is_specutils(spectrum):
        raise TypeError(
            f"from_specutils expects a specutils Spectrum (or Spectrum1D), got {type(spectrum).__name__}"
        )
    import astropy.units as u

    wavelength = spectrum.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    flux_q = spectrum.flux
    meta = dict(spectrum.meta or {})
    stored = meta.pop("agnlens", None)
    if flux_q.unit.physical_type == "dimensionless":
        unit = flux_q.unit
        flux = flux_q.to_value(u.dimensionless_unscaled)
    else:
        unit = u.Unit(SDSS_FLUX_UNIT)
        try:
            flux = flux_q.to_value(unit, equivalencies=u.spectral_density(spectrum.spectral_axis))
        except u.UnitConversionError:
            raise ValueError(
                f"from_specutils: flux in {flux_q.unit} cannot be converted to a flux density "
                f"({SDSS_FLUX_UNIT}); pass flux per unit wavelength or frequency, or dimensionless flux"
            ) from None
    ivar = _ivar(spectrum.uncertainty, unit, flux.shape)
    mask = np.zeros(flux.shape, dtype=bool) if spectrum.mask is None else np.asarray(spectrum.mask, dtype=bool)
    if flux.ndim not in (1, 2) or flux.shape[-1] != wavelength.size:
        raise ValueError(
            f"from_specutils: flux has shape {flux.shape}, expected (n_pixels,) or (n_spectra, n_pixels) "
            f"with n_pixels = {wavelength.size} along the spectral axis (the last one)"
        )
    if wavelength.size > 1 and wavelength[1] < wavelength[0]:  # e.g. from a frequency axis
        wavelength, flux, ivar, mask = wavelength[::-1], flux[..., ::-1], ivar[..., ::-1], mask[..., ::-1]

    if flux.ndim == 2:
        return _set_from(wavelength, flux, ivar, mask, meta, stored)

    header = meta.pop("header", None)
    out_meta = {k: v for k, v in meta.items() if _is_scalar(v)}
    found_z = _first(z, out_meta.get("z"), out_meta.get("redshift"), _header(header, "Z"), _own_z(spectrum))
    out_meta["z"] = float(found_z) if found_z is not None else float("nan")
    ids = [_header(header, k) for k in ("PLATEID", "MJD", "FIBERID")]
    if ids[0] is None:
        ids[0] = _header(header, "PLATE")
    sid = _first(spec_id, out_meta.get("spec_id"), format_spec_id(*ids) if None not in ids else None)
    out_meta["spec_id"] = str(sid) if sid is not None else ""
    out_meta.setdefault("zwarning", 0)
    out_meta.setdefault("source", out_meta["spec_id"] or "<specutils>")
    frame = out_meta.pop("frame", "observed")
    return Spectrum(wavelength=wavelength, flux=flux, ivar=ivar, mask=mask, meta=out_meta, frame=frame)


def to_specutils(spectra: Spectrum | SpectrumSet) -> Any:
    """Convert an agnlens :class:`~agnlens.spectra.Spectrum` or :class:`~agnlens.spectra.SpectrumSet`
    to a specutils spectrum.

    Parameters
    ----------
    spectra : Spectrum or SpectrumSet
        One spectrum (flux of shape (n_pixels,), in 1e-17 erg s⁻¹ cm⁻² Å⁻¹) or a set (flux of
        shape (n_spectra, n_pixels), normalised, dimensionless).

    Returns
    -------
    specutils.Spectrum (or Spectrum1D)
        Wavelength in Å, uncertainty as :class:`astropy.nddata.InverseVariance`, ``mask`` True
        where bad. A Spectrum's metadata go into ``meta`` (with ``frame``) and, when observed,
        its redshift into ``redshift``. A set's metadata table, grid and provenance go into
        ``meta["agnlens"]`` so that :func:`from_specutils` restores them.
    """
    import astropy.units as u
    from astropy.nddata import InverseVariance

    cls = specutils_class()
    if isinstance(spectra, SpectrumSet):
        unit = u.dimensionless_unscaled
        meta: dict[str, Any] = {
            "agnlens": {"meta": spectra.meta.copy(), "grid": spectra.grid, "provenance": dict(spectra.provenance)},
            "frame": "rest",
        }
        redshift = None
    elif isinstance(spectra, Spectrum):
        unit = u.Unit(spectra.meta.get("flux_unit", SDSS_FLUX_UNIT))
        meta = dict(spectra.meta)
        meta["frame"] = spectra.frame
        observed = spectra.frame == "observed" and math.isfinite(spectra.z)
        redshift = spectra.z if observed else None
    else:
        raise TypeError(f"to_specutils expects an agnlens Spectrum or SpectrumSet, got {type(spectra).__name__}")
    return cls(
        flux=np.asarray(spectra.flux, dtype=np.float64) * unit,
        spectral_axis=np.asarray(spectra.wavelength, dtype=np.float64) * u.AA,
        uncertainty=InverseVariance(np.asarray(spectra.ivar, dtype=np.float64), unit=unit**-2),
        mask=np.asarray(spectra.mask, dtype=bool).copy(),
        redshift=redshift,
        meta=meta,
    )


def saliency_to_specutils(result: Any) -> Any:
    """A :class:`~agnlens.explain.attribution.Saliency` result as a specutils spectrum.

    Parameters
    ----------
    result : Saliency

    Returns
    -------
    specutils.Spectrum (or Spectrum1D)
        ``flux`` of shape (n_spectra, n_pixels) holds the saliency values (dimensionless: ∂p/∂flux
        of normalised flux, or Δp per pixel for occlusion) on the model's rest-frame grid in Å;
        ``meta`` holds ``method``, ``options``, ``classes``, ``spec_id``, ``target``,
        ``predicted``, ``labels`` and ``probabilities`` (shape (n_spectra, n_classes)).
    """
    import astropy.units as u

    cls = specutils_class()
    meta = {
        "method": result.method,
        "options": dict(result.options),
        "classes": [str(c) for c in result.classes],
        "spec_id": list(result.spec_id),
        "target": list(result.target),
        "predicted": list(result.predicted),
        "labels": list(result.labels),
        "probabilities": np.asarray(result.probabilities).copy(),
        "frame": "rest",
    }
    return cls(
        flux=np.asarray(result.values, dtype=np.float64) * u.dimensionless_unscaled,
        spectral_axis=np.asarray(result.wavelength, dtype=np.float64) * u.AA,
        meta=meta,
    )


# ------------------------------------------------------------------------------------------------


def _ivar(uncertainty, unit, shape) -> np.ndarray:
    """Inverse variance in ``unit``⁻² from any astropy NDUncertainty (ones when there is none)."""
    if uncertainty is None:
        return np.ones(shape)
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    # specutils gives uncertainties without a unit the flux's unit; keep the values as they are then
    def value(power: int) -> np.ndarray:
        arr = np.asarray(uncertainty.array, dtype=np.float64)
        if uncertainty.unit is None:
            return arr
        return (arr * uncertainty.unit).to_value(unit**power)

    with np.errstate(divide="ignore"):
        if isinstance(uncertainty, InverseVariance):
            ivar = value(-2)
        elif isinstance(uncertainty, StdDevUncertainty):
            sigma = value(1)
            ivar = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0)
        elif isinstance(uncertainty, VarianceUncertainty):
            var = value(2)
            ivar = np.where(var > 0, 1.0 / np.where(var > 0, var, 1.0), 0.0)
        else:
            raise ValueError(
                f"from_specutils: uncertainty of type {type(uncertainty).__name__} is not supported; "
                "use InverseVariance, StdDevUncertainty or VarianceUncertainty"
            )
    return np.where(np.isfinite(ivar), ivar, 0.0)


def _set_from(wavelength, flux, ivar, mask, meta: dict, stored: dict | None) -> SpectrumSet:
    n = flux.shape[0]
    if stored is not None and len(stored.get("meta", ())) == n:
        table = stored["meta"].copy()
        grid, provenance = stored.get("grid"), dict(stored.get("provenance", {}))
        if isinstance(grid, Grid) and not np.array_equal(grid.wavelength, wavelength):
            grid = grid.name  # the axis was converted (another unit): a grid of that name on these pixels
    else:
        table = pd.DataFrame({"spec_id": [str(i) for i in range(n)]})
        grid, provenance = None, {}
    return SpectrumSet(
        wavelength=wavelength, flux=flux, ivar=ivar, mask=mask, meta=table, grid=grid, provenance=provenance
    )


def _is_scalar(value) -> bool:
    return isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_))


def _header(header, key: str):
    if header is None:
        return None
    try:
        return header[key] if key in header else None
    except (TypeError, KeyError):
        return None


def _own_z(spectrum) -> float | None:
    try:
        z = float(spectrum.redshift)
    except (TypeError, ValueError):  # per-pixel or array redshifts
        return None
    return z if z != 0.0 else None


def _first(*values):
    for v in values:
        if v is None:
            continue
        if isinstance(v, float) and math.isnan(v):
            continue
        return v
    return None
