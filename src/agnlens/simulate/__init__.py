"""Simulated type 1 / type 2 / intermediate AGN spectra, built from real ingredients.

There is no large labelled three-class sample of real spectra on a typical machine, so simulated
spectra are the default for the demo, the tests and the default model. Every spectrum carries
``simulated = True`` in its metadata and every :class:`~agnlens.spectra.SpectrumSet` made here
carries ``provenance["simulated"] = True``.

The ingredients (each module says where its numbers come from):

* :mod:`.parameters` — the distributions of every physical parameter, with their sources; the
  Winkler subtype of each spectrum from its own [O III]/Hβ and broad lines
  (:func:`agnlens.classes.winkler_subtype`);
* :mod:`.host` — host starlight from real E-MILES stellar populations (Vazdekis et al. 2016),
  mixed in age and metallicity, reddened (Calzetti et al. 2000), broadened by σ*;
* :mod:`.agn` — broad lines (Balmer, He I, He II), the Balmer continuum, high-order Balmer lines
  and the Boroson & Green (1992) Fe II template;
* :mod:`.narrow` — narrow-line ratios on the BPT loci (Kewley 2001, Kauffmann 2003, Kewley 2006)
  and from the intermediate catalogue, reddened (Cardelli et al. 1989), outflow wings shared by
  every narrow line, coronal and auroral lines;
* :mod:`.model` — the spectrum itself (FFT convolution of lines and populations);
* :mod:`.noise` — real SDSS noise: error spectra, sky and masks of 60 real SDSS spectra (Legacy
  and BOSS), telluric and sky-line residuals measured on 95;
* :mod:`.instrument` — the SDSS observed grid (3600–10,400 Å; each spectrum is cut to the coverage
  of the real spectrum whose noise it takes).

The shipped data (``agnlens/data``: E-MILES subset, Fe II template, SDSS noise library) are
described, with their sources, terms and regenerating scripts, in ``agnlens/data/README.md``.

Class conventions (``convention=``, :data:`agnlens.classes.CONVENTIONS`): the simulator draws
the study's samples and labels them in the study's convention (``"study"``, the default);
``"spectroscopic"`` relabels them by subtype alone (the Winkler 1.2/1.5 intermediates become
``type1``), keeping the study's class in ``label_study`` (:func:`relabel`). The spectra are the same.

Redshift presets (``redshift=``): ``"balmer"`` (default) z ~ U(0.025, 0.30) for all classes, so
every spectrum covers both the ``paper`` and ``balmer`` grids and the classes share one redshift
distribution; ``"paper"``: the reference study's samples (type 1 quasars U(0.40, 0.74), Seyferts
U(0.025, 0.10)) — the study's continuum shortcut, paper grid only; ``"full"``: U(0.025, z_max) for
all classes, the whole range over which the grid stays inside a real SDSS or BOSS spectrum of the
noise library (``balmer`` to z ≈ 0.55, ``paper`` to z ≈ 0.97; the ``balmer`` grid's range when no
grid is given): the default models are trained on it. A ``(lo, hi)`` pair or a
``{label: (lo, hi)}`` dict gives U(lo, hi).

Reproducibility: spectrum ``i`` is drawn from its own streams ``SeedSequence(seed).spawn(n)[i]``
(one child for the physical parameters, one for noise and masks), and the label sequence is a
deterministic interleaving, so ``simulate(n)`` is a prefix of ``simulate(m)`` for ``m > n`` and
a rerun with the same seed is bitwise identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from agnlens.classes import CLASSES, CONVENTIONS, SDSS_CLASS, class_under
from agnlens.simulate.instrument import observed_grid
from agnlens.simulate.model import models
from agnlens.simulate.noise import add_noise, coverage, noise_library, usable_z_range
from agnlens.simulate.parameters import (
    DEFAULT_COUNTS,
    MAX_SPECTRA,
    draw_parameters,
    label_sequence,
    resolve_counts,
    resolve_snr,
)
from agnlens.spectra import Spectrum, SpectrumSet, format_spec_id

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_COUNTS", "MAX_SPECTRA", "REDSHIFT_PRESETS", "grid_z_range", "observed_grid", "relabel", "simulate",
           "simulate_set"]

#: Redshift ranges (uniform) per class for the named presets (and ``"full"``, see :func:`grid_z_range`).
REDSHIFT_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "balmer": {"type1": (0.025, 0.30), "type2": (0.025, 0.30), "intermediate": (0.025, 0.30)},
    "paper": {"type1": (0.40, 0.74), "type2": (0.025, 0.10), "intermediate": (0.025, 0.10)},
}

_WAVE = observed_grid()
_BLOCK = 64  # spectra modelled together (vectorised); a row never depends on its block
_resolve_counts = resolve_counts  # kept for the tests and older callers


#: The lowest redshift of the ``"full"`` preset (the study's Seyferts start there).
Z_MIN = 0.025


def grid_z_range(grid) -> tuple[float, float]:
    """The redshifts at which a rest-frame grid stays inside some real spectrum of the noise
    library, at most 5 % of it masked (the simulated spectra take their coverage and masks from it).

    Parameters
    ----------
    grid : str or Grid

    Returns
    -------
    (float, float)
        Lowest and highest such z (the lowest may be negative).
    """
    from agnlens.grid import get_grid

    g = get_grid(grid)
    return usable_z_range(_WAVE, float(g.wavelength[0]), float(g.wavelength[-1]))


def _full_range(grid) -> tuple[float, float]:
    zlo, zhi = grid_z_range("balmer" if grid is None else grid)
    if zhi <= Z_MIN:
        raise ValueError(f"simulate: redshift='full' needs a grid that fits in the observed range above z = {Z_MIN}")
    return max(zlo, Z_MIN), zhi * (1.0 - 1e-6)


def _resolve_redshift(redshift, grid) -> dict[str, tuple[float, float]]:
    if redshift is None:
        ranges = dict(REDSHIFT_PRESETS["balmer"])
    elif redshift == "full":
        ranges = {c: _full_range(grid) for c in CLASSES}
    elif isinstance(redshift, str):
        if redshift not in REDSHIFT_PRESETS:
            raise ValueError(
                f"simulate: unknown redshift preset {redshift!r}; use one of {sorted(REDSHIFT_PRESETS) + ['full']}, "
                f"a (lo, hi) pair or a dict of pairs per class"
            )
        ranges = dict(REDSHIFT_PRESETS[redshift])
    elif isinstance(redshift, Mapping):
        ranges = dict(REDSHIFT_PRESETS["balmer"])
        for c, pair in redshift.items():
            if c not in CLASSES:
                raise ValueError(f"simulate: unknown class {c!r} in redshift; use {list(CLASSES)}")
            ranges[c] = pair
    else:
        ranges = {c: redshift for c in CLASSES}
    out = {}
    for c, pair in ranges.items():
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"simulate: redshift for {c} must be a (lo, hi) pair of numbers, got {pair!r}") from None
        if not (0.0 <= lo <= hi) or not np.isfinite(hi):
            raise ValueError(f"simulate: redshift range for {c} must satisfy 0 <= lo <= hi, got ({lo}, {hi})")
        out[c] = (lo, hi)
    if grid is not None:
        zlo, zhi = grid_z_range(grid)
        for c, (lo, hi) in out.items():
            if lo < zlo - 1e-9 or hi > zhi + 1e-9:
                name = grid if isinstance(grid, str) else getattr(grid, "name", "custom")
                raise ValueError(
                    f"simulate: redshift range {lo}–{hi} for {c} does not keep the {name} grid inside "
                    f"the observed range of a real SDSS or BOSS spectrum; use z within {max(zlo, 0):.3f}–"
                    f"{zhi:.3f} (e.g. redshift='full')"
                )
    return out


def _meta(i: int, p: dict[str, Any], seed: int, noise_source: str) -> dict[str, Any]:
    plate, fiber = 9000 + i // 640, i % 640 + 1
    mjd = 55000 + int(seed) % 10000
    label = p["label"]
    sdss_class, sdss_subclass = SDSS_CLASS[label]
    return {
        "spec_id": format_spec_id(plate, mjd, fiber), "plate": plate, "mjd": mjd, "fiber": fiber,
        "z": p["z"], "zwarning": 0, "label": label, "subtype": p["subtype"],
        "fwhm_broad": p["fwhm_broad"], "fwhm_broad_halpha": p["fwhm_broad_halpha"],
        "fwhm_narrow": p["fwhm_narrow"], "snr_target": p["snr_target"],
        "host_fraction": p["host_fraction"], "oiii_hbeta": p["oiii_hbeta"],
        "oiii_hbeta_total": p["oiii_hbeta_total"], "oiii_ew": p["oiii_ew"], "feii_ratio": p["feii_ratio"],
        "broad_wing_fraction": float(p["broad_wing"][0]), "broad_halpha_hbeta": p["broad_halpha_hbeta"],
        "nii_halpha": p["nii_halpha"], "narrow_balmer_decrement": p["narrow_balmer_decrement"],
        "ebv_narrow": p["ebv_narrow"], "ebv_agn": p["ebv_agn"], "bpt": p["bpt"],
        "narrow_wing_fraction": float(p["narrow_wing"][0]), "narrow_shift": p["narrow_shift"], "coronal": p["coronal"],
        "scattered_fraction": p["scattered_fraction"],
        "host_age_weights": ",".join(f"{w:.3f}" for w in p["host_weights"]),
        "alpha": p["alpha"], "sigma_star": p["sigma_star"], "sigma_inst": p["sigma_inst"],
        "noise_source": noise_source,
        "source": f"simulated:seed={seed}:{i}", "sdss_class": sdss_class, "sdss_subclass": sdss_subclass,
        "survey": "sdss", "simulated": True,
    }


def simulate(
    n: int = 3346,
    *,
    counts: Mapping[str, int] | None = None,
    seed: int = 0,
    redshift: str | tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    snr: float | tuple[float, float] | None = None,
    flux: float | None = None,
    noise: bool = True,
    grid: Any = None,
    progress: Callable[[int], Any] | None = None,
    convention: str = "study",
) -> list[Spectrum]:
    """Simulate observed-frame SDSS-like AGN spectra (type 1, type 2, intermediate).

    Parameters
    ----------
    n : int, default 3346
        Number of spectra (at most :data:`MAX_SPECTRA`); the classes keep the reference study's
        shares (680 : 2145 : 521). Ignored when ``counts`` is given.
    counts : dict, optional
        Spectra per class, e.g. ``{"type1": 10, "type2": 5}``; overrides ``n``.
    seed : int, default 0
        Same seed, same spectra (bitwise). Spectrum ``i`` does not depend on ``n``.
    redshift : str or (float, float) or dict, optional
        ``"balmer"`` (default: z ~ U(0.025, 0.30) for all classes, covers both preset grids on
        SDSS Legacy spectra), ``"paper"`` (the reference study's per-class ranges), ``"full"``
        (U(0.025, z_max) with z_max the highest redshift at which ``grid`` fits in a real SDSS or
        BOSS spectrum, :func:`grid_z_range`), a ``(lo, hi)`` range for all classes or
        ``{label: (lo, hi)}``.
    snr : float or (float, float), optional
        S/N per pixel of the continuum at rest 5100 Å: default log-normal (median 22); a number
        fixes it; ``(median, sigma_dex)`` sets the log-normal.
    flux : float, optional
        Rest-frame continuum flux density at 5100 Å, 1e-17 erg/s/cm²/Å (what preprocessing records
        as ``norm_flux``): default log-normal, median 30; a number fixes it. With the redshift it
        sets the luminosity, and through it a type 1's host share in the fibre and its [O III] strength.
    noise : bool, default True
        False returns the noise-free model (same parameters, same ivar, nothing masked): for tests.
    grid : str or Grid, optional
        If given, check that every redshift keeps this rest-frame grid inside the observed range,
        and give each spectrum the noise of a real spectrum that covers the grid at its redshift.
    progress : callable, optional
        Called with the number of spectra just made, after every block of 64 (a progress bar's
        ``update``).
    convention : {"study", "spectroscopic"}, default "study"
        The class convention of ``label`` (see :func:`relabel`).

    Returns
    -------
    list of Spectrum
        Observed frame, SDSS log-λ pixels over the range of the real spectrum whose noise each
        took (Legacy ~3800–9200 Å, BOSS ~3600–10,400 Å). ``meta`` holds ``spec_id`` (fake but valid
        PLATE-MJD-FIBER, plates from 9000), ``plate``, ``mjd``, ``fiber``, ``z``, ``zwarning`` (0),
        ``label`` (the sample class), ``subtype`` (Winkler, from the spectrum's own R and broad
        lines), ``fwhm_broad`` (broad Hβ, km/s, 0 if none), ``fwhm_broad_halpha`` (broad Hα),
        ``fwhm_narrow``, ``snr_target``, ``host_fraction``, ``oiii_hbeta`` ([O III] 5008/narrow Hβ,
        observed), ``oiii_hbeta_total``, ``oiii_ew`` (Å), ``feii_ratio``, ``broad_wing_fraction``,
        ``broad_halpha_hbeta``, ``nii_halpha``, ``narrow_balmer_decrement``, ``ebv_narrow``,
        ``ebv_agn``, ``bpt`` (locus of the narrow lines), ``narrow_wing_fraction``, ``narrow_shift`` (km/s, the
        narrow lines' offset from ``z``), ``coronal``, ``scattered_fraction`` (a 1.9 whose broad Hα is
        scattered light of a hidden broad-line region: its share of the unobscured broad Hα; else 0),
        ``host_age_weights`` (young, intermediate, old light fractions), ``alpha``,
        ``sigma_star``, ``sigma_inst``, ``noise_source`` (the real SDSS file whose noise, sky and
        mask were used), ``source`` (``"simulated:seed=S:i"``), ``sdss_class``,
        ``sdss_subclass``, ``survey``, ``simulated`` (True).

    Raises
    ------
    ValueError, TypeError
        For impossible counts, redshift ranges or S/N settings.
    """
    _check_convention(convention)
    spectra = list(_generate(n, counts, seed, redshift, snr, noise, grid, progress, flux))
    if convention != "study":
        for s in spectra:
            s.meta["label_study"] = s.meta["label"]
            s.meta["label"] = class_under(s.meta["label"], s.meta["subtype"], convention)
    log.debug("simulated %d spectra (seed %d)", len(spectra), seed)
    return spectra


def _generate(n, counts, seed, redshift, snr, noise, grid, progress=None, flux=None) -> Iterator[Spectrum]:
    """Validate the settings, then yield the spectra block by block (see :func:`simulate`)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"simulate: seed must be a non-negative integer, got {seed!r}")
    cnt = resolve_counts(n, counts)
    total = sum(cnt.values())
    # The interleaving uses the shares (the study's by default), not this n's rounded counts, so
    # that spectrum i is the same whatever n; its prefix counts are within one of each share.
    labels = label_sequence(total, DEFAULT_COUNTS if counts is None else cnt)
    zranges = _resolve_redshift(redshift, grid)
    snr_ln = resolve_snr(snr)
    if flux is not None and (isinstance(flux, bool) or not isinstance(flux, (int, float, np.integer, np.floating))
                             or not np.isfinite(flux) or flux <= 0):
        raise ValueError(f"simulate: flux must be a positive number (1e-17 erg/s/cm²/Å), got {flux!r}")
    rest = None
    if grid is not None:
        from agnlens.grid import get_grid

        wl = get_grid(grid).wavelength
        rest = (float(wl[0]), float(wl[-1]))
    return _blocks(labels, np.random.SeedSequence(int(seed)).spawn(total), zranges, snr_ln, noise, int(seed), progress,
                   rest, flux)


def _blocks(labels, children, zranges, snr_ln, noise, seed, progress, rest=None, flux_5100=None) -> Iterator[Spectrum]:
    sources = noise_library()["source"]
    total = len(labels)
    for b0 in range(0, total, _BLOCK):
        idx = range(b0, min(b0 + _BLOCK, total))
        params, noise_rngs = [], []
        for i in idx:
            param_ss, noise_ss = children[i].spawn(2)
            rng = np.random.Generator(np.random.PCG64(param_ss))
            params.append(draw_parameters(rng, labels[i], zranges[labels[i]], snr_ln, flux_5100))
            noise_rngs.append(np.random.Generator(np.random.PCG64(noise_ss)))
        model = models(params)
        z = np.array([p["z"] for p in params])
        snr = np.array([p["snr_target"] for p in params])
        need = None if rest is None else np.outer(1.0 + z, rest)
        flux, ivar, mask, rows = add_noise(noise_rngs, model, _WAVE, z, snr, noise, need)
        first, last = coverage()
        for k, (i, p) in enumerate(zip(idx, params)):
            cut = slice(first[rows[k]], last[rows[k]] + 1)  # the real spectrum's own range
            yield Spectrum(wavelength=_WAVE[cut].copy(), flux=flux[k, cut], ivar=ivar[k, cut], mask=mask[k, cut],
                           meta=_meta(i, p, seed, sources[rows[k]]))
        if progress is not None:
            progress(len(idx))


def simulate_set(
    n: int = 3346,
    *,
    seed: int = 0,
    grid: Any = "paper",
    counts: Mapping[str, int] | None = None,
    redshift: str | tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    snr: float | tuple[float, float] | None = None,
    flux: float | None = None,
    progress: Callable[[int], Any] | None = None,
    convention: str = "study",
) -> SpectrumSet:
    """Simulate spectra and preprocess them onto ``grid`` (rest frame, resampled, normalised).

    Parameters are those of :func:`simulate` (``progress`` and ``convention`` too). The redshifts are
    checked to keep ``grid`` inside the observed range, so no spectrum is rejected for coverage.

    Returns
    -------
    SpectrumSet
        ``provenance`` holds ``simulated: True``, ``seed`` and ``simulator`` (the settings, the
        class ``convention`` among them).

    Raises
    ------
    RuntimeError
        If preprocessing rejected a simulated spectrum (a simulator bug, never expected).
    """
    from agnlens._version import __version__
    from agnlens.grid import get_grid
    from agnlens.preprocess import preprocess

    _check_convention(convention)
    g = get_grid(grid)
    # a generator: preprocessing consumes the spectra block by block, so memory stays small
    spectra = _generate(n, counts, seed, redshift, snr, True, g, progress, flux)
    settings = {
        "n": sum(resolve_counts(n, counts).values()),
        "counts": resolve_counts(n, counts),
        "redshift": redshift if isinstance(redshift, (str, type(None))) else str(redshift),
        "snr": snr if isinstance(snr, (int, float, type(None))) else list(snr),
        "flux": flux,
        "convention": convention,
        "version": f"agnlens {__version__}",
    }
    result, rejected = preprocess(spectra, g, provenance={"simulated": True, "simulator": settings, "seed": int(seed)})
    if rejected:
        raise RuntimeError(
            f"simulate_set: preprocessing rejected {len(rejected)} simulated spectra on the {g.name} "
            f"grid, first: {rejected[0]}; this is a simulator bug, please report it"
        )
    return result if convention == "study" else relabel(result, convention)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"simulate: convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def relabel(spectra: SpectrumSet, convention: str) -> SpectrumSet:
    """The same simulated spectra labelled in another class convention.

    Parameters
    ----------
    spectra : SpectrumSet
        Labelled in the study's convention, with a ``subtype`` column (as :func:`simulate_set`
        makes them; a set already relabelled keeps its ``label_study``).
    convention : {"study", "spectroscopic"}
        See :data:`agnlens.classes.CONVENTIONS` and :func:`agnlens.classes.class_under`.

    Returns
    -------
    SpectrumSet
        The same flux, ivar and mask arrays (shared, not copied) with a new ``meta``: ``label`` in
        ``convention``, ``label_study`` the study's class; ``provenance["simulator"]["convention"]``
        records the convention.
    """
    _check_convention(convention)
    if "subtype" not in spectra.meta.columns:
        raise ValueError("relabel: the spectra have no 'subtype' column; relabel simulated spectra "
                         "(simulate_set), whose metadata holds each Winkler subtype")
    meta = spectra.meta.copy()
    if "label_study" not in meta.columns:
        meta["label_study"] = meta["label"]
    meta["label"] = [class_under(lab, str(sub), convention) for lab, sub in zip(meta["label_study"], meta["subtype"])]
    simulator = {**spectra.provenance.get("simulator", {}), "convention": convention}
    return SpectrumSet(spectra.wavelength, spectra.flux, spectra.ivar, spectra.mask, meta, grid=spectra.grid,
                       provenance={**spectra.provenance, "simulator": simulator})


