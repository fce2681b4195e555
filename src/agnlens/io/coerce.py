"""One way in for every stage: turn what a user hands over into a :class:`~agnlens.spectra.SpectrumSet`.

A stage (``classify``, ``explain``/``saliency``, ``baseline``...) calls :func:`as_spectrum_set` on
its input and from then on sees only a SpectrumSet on the model's grid. Accepted:

* a :class:`~agnlens.spectra.SpectrumSet` (returned as it is);
* an agnlens :class:`~agnlens.spectra.Spectrum` or a list of them (preprocessed onto the grid);
* a specutils ``Spectrum`` / ``Spectrum1D`` or a list of them (a ``SpectrumList`` too), converted
  by :func:`agnlens.io.specutils.from_specutils` and preprocessed onto the grid — or, when its flux
  is two-dimensional, taken as spectra already on a common grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from agnlens.errors import AgnlensWarning
from agnlens.grid import GRIDS, get_grid
from agnlens.io.specutils import from_specutils, is_specutils
from agnlens.spectra import Spectrum, SpectrumSet


def is_spectrum_like(obj: Any) -> bool:
    """Whether ``obj`` is a spectrum object or a non-empty list of them (not an array of flux).

    True for a SpectrumSet, an agnlens Spectrum, a specutils spectrum, or a list/tuple whose
    items are agnlens or specutils spectra.
    """
    if isinstance(obj, (SpectrumSet, Spectrum)) or is_specutils(obj):
        return True
    if isinstance(obj, (list, tuple)) and len(obj) > 0:
        return all(isinstance(o, Spectrum) or is_specutils(o) for o in obj)
    return False


def as_spectrum_set(
    obj: Any,
    grid: Any = None,
    *,
    n_pixels: int | None = None,
    max_bad_fraction: float = 0.1,
) -> SpectrumSet:
    """Coerce spectra of any supported kind into a :class:`~agnlens.spectra.SpectrumSet`.

    Parameters
    ----------
    obj : SpectrumSet, Spectrum, specutils.Spectrum, or a list of Spectrum / specutils.Spectrum
        Single spectra are observed-frame (or rest-frame) spectra with a redshift; they are put
        into the rest frame, resampled flux-conservingly onto ``grid`` and normalised, exactly as
        ``agnlens ingest`` does.
    grid : str, Grid or ndarray of shape (n_pixels,), optional
        The grid to preprocess onto (the model's grid). When None and ``n_pixels`` is given, the
        preset grid (``"paper"``, ``"balmer"``) with that many pixels.
    n_pixels : int, optional
        Pixel count of the model (``model.n_features_in_``), used to pick a preset grid when
        ``grid`` is None.
    max_bad_fraction : float
        Reject a spectrum when a larger share of the grid is bad or uncovered.

    Returns
    -------
    SpectrumSet
        The accepted spectra. Each rejected one is named with its reason in an
        :class:`~agnlens.errors.AgnlensWarning`; the rest go on.

    Raises
    ------
    TypeError
        If ``obj`` is none of the accepted kinds.
    ValueError
        If single spectra come without a grid to put them on, or every spectrum was rejected.
    """
    if isinstance(obj, SpectrumSet):
        return obj
    if is_specutils(obj):
        converted = from_specutils(obj)
        if isinstance(converted, SpectrumSet):
            return converted
        items: Sequence = [converted]
    elif isinstance(obj, Spectrum):
        items = [obj]
    elif is_spectrum_like(obj):
        items = [from_specutils(o) if is_specutils(o) else o for o in obj]
        if any(isinstance(o, SpectrumSet) for o in items):
            raise TypeError("as_spectrum_set: a list of spectra cannot hold two-dimensional specutils spectra")
    else:
        raise TypeError(
            f"expected a SpectrumSet, an agnlens Spectrum, a specutils Spectrum or a list of spectra, "
            f"got {type(obj).__name__}"
        )
    from agnlens.preprocess import preprocess  # io must not import it at module level

    if grid is None:
        matches = [name for name, make in GRIDS.items() if n_pixels is not None and make().wavelength.size == n_pixels]
        if not matches:
            raise ValueError(
                f"{len(items)} spectra need a grid to be resampled onto: pass grid= (the model's grid: "
                f"a name among {sorted(GRIDS)}, a Grid or an array of wavelengths)"
                + (f"; no preset grid has {n_pixels} pixels" if n_pixels is not None else "")
            )
        grid = matches[0]
    spectra, rejected = preprocess(items, get_grid(grid), max_bad_fraction)
    for r in rejected:
        warnings.warn(f"rejected {r}", AgnlensWarning, stacklevel=2)
    if len(spectra) == 0:
        raise ValueError(
            f"none of the {len(items)} spectra could be used: "
            + "; ".join(str(r) for r in rejected[:5])
        )
    if "simulated" in spectra.meta:  # as ingest does: a set is simulated when all its spectra are
        spectra.provenance.setdefault("simulated", bool(spectra.meta["simulated"].fillna(False).astype(bool).all()))
    return spectra
