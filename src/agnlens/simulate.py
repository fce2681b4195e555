"""Realistic simulated type 1 / type 2 / intermediate AGN spectra, in the SDSS observed frame.

There is no large labelled three-class sample of real spectra on a typical machine, so simulated
spectra are the default for the demo, the tests and the default model. Every spectrum carries
``simulated = True`` in its metadata and every :class:`~agnlens.spectra.SpectrumSet` made here
carries ``provenance["simulated"] = True``.

What a spectrum is made of
--------------------------
All spectra share the SDSS Legacy observed grid: log10 λ from 3.5802 to 3.9639 in steps of
1e-4 dex (3838 pixels, 3804–9202 Å, 69.0 km/s per pixel). The rest-frame model is

    F(λ) = host(λ)·[1 − absorption(λ)] + AGN(λ) + narrow(λ) + broad(λ) + FeII(λ)

in units of the (host + AGN) continuum at 5100 Å, then redshifted (λ·(1+z), F/(1+z)), multiplied
by a flux scale and by a smooth spectrophotometric tilt, and given noise. Lines are built as
sticks on the log-λ pixel grid (each split linearly between its two nearest pixels: the centroid
and flux are exact, the variance grows by at most 0.25 px², i.e. ≤ 35 km/s added in quadrature
to σ) and convolved by FFT with a Gaussian in velocity of the intrinsic width and the
instrumental resolution; 64 spectra are modelled at once (numpy, vectorised).

Distributions (``U`` uniform, ``N`` normal, ``LN10(m, s)`` = 10**N(m, s), ``Beta(a, b)``):

* **Redshift** — presets (``redshift=``): ``"balmer"`` (default): z ~ U(0.025, 0.30) for all three
  classes, so every spectrum covers both the ``paper`` (3729–5266 Å) and the ``balmer``
  (4000–6700 Å) grids and the classes share one redshift distribution (no redshift-dependent
  shortcut such as sky residuals or the blue edge landing at class-specific rest wavelengths);
  ``"paper"``: the reference study's samples, type 1 quasars z ~ U(0.40, 0.74) and Seyferts
  (type 2, intermediate) z ~ U(0.025, 0.10) — this reproduces the study's continuum shortcut and
  only covers the paper grid. A ``(lo, hi)`` pair or a ``{label: (lo, hi)}`` dict gives U(lo, hi).
* **S/N** (``snr=``, per pixel of the continuum at rest 5100 Å): default LN10(log10 22, 0.25)
  (median 22, 5–95 % about 8–57; the real SDSS set has a median 29 in rest 4800–6600 Å),
  clipped to [3, 100], the same for all classes. A number fixes
  it; a ``(median, sigma_dex)`` pair changes the log-normal.
* **Host galaxy** (fraction ``h`` of the 5100 Å continuum): type 1 Beta(2, 5) (mean 0.29),
  intermediate Beta(4, 3.5) (0.53), type 2 Beta(8, 2) (0.80) — overlapping. Starlight is a mix of
  an old population (blackbody T ~ U(4300, 5000) K with a 4000 Å break of depth U(0.35, 0.55))
  and a young one (T ~ U(8500, 12000) K, break depth 0.08), young share at 5100 Å Beta(1.5, 3)
  (mean 0.33: AGN hosts are younger than inactive galaxies, Kauffmann et al. 2003).
  Absorption features (:data:`HOST_ABSORPTION`, equivalent widths per population mixed by the
  young share, scaled by U(0.7, 1.3)): Ca II K and H, H8, H9, Hε, Hδ, Ca I 4227, the G band,
  Hγ, Fe 4383/4531/5270/5335/5406, Hβ, Mg b triplet, Na D, Ca I 6162, Hα; broadened by a stellar
  velocity dispersion σ* ~ U(100, 250) km/s (the wide features — Balmer, Ca H&K, G band — also by
  an intrinsic 600 km/s).
* **AGN continuum** F_λ ∝ λ^α, α ~ N(−1.1, 0.8) (type 1: some reddened), N(−1.2, 0.6)
  (intermediate), N(−1.0, 0.7) (type 2), clipped to [−3, 1].
* **Narrow lines**, FWHM ~ LN10(2.47, 0.15) km/s clipped to [200, 700] (the catalogue's narrow
  Hβ/[O III] widths, log-mean 2.36–2.47 dex). [O III] 5008/Hβn = R_n: type 1
  LN10(0.80, 0.18) clipped [3, 15], type 2 LN10(0.78, 0.20) clipped [2, 20]; intermediates
  LN10(0.60, 0.30) clipped [1, 20] (catalogue
  ``Fratio_5007``). [O III] 4960 = 5008/2.98; Hαn/Hβn ~ LN10(log10 3.1, 0.06) ≥ 2.86 (Balmer
  decrement with scatter; the catalogue's ``Fratio_6563`` has median 4.2, i.e. some reddening);
  [N II] 6585/Hαn ~ LN10(−0.08, 0.15) clipped [0.5, 2.5] (catalogue ratio 0.8); [N II] 6550 =
  6585/3.05; [S II] 6718+6733 = Hαn·U(0.35, 0.7), 6718/6733 ~ U(0.8, 1.4); [O I] 6302 =
  Hαn·U(0.05, 0.25), 6365 = 6302/3; [O II] 3727+3730 = Hβn·U(1.5, 4.5) (ratio U(0.7, 1.3));
  [Ne III] 3870 = Hβn·U(0.6, 1.4), 3968 = 3870/3.32; [O III] 4364 = Hβn·U(0.05, 0.25);
  He II 4687 = Hβn·U(0.1, 0.4);
  He I 5877 = Hβn·U(0.08, 0.15); Hγn, Hδn = Hβn·0.47, 0.26; Hε, H8…H12 at Case B
  (:data:`_HIGH_BALMER`). Equivalent widths (Å, against the
  5100 Å continuum): [O III] 5008 ~ LN10(log10 25, 0.4) (type 2), LN10(log10 20, 0.35)
  (intermediate); in type 1, Hβn = Hβb·LN10(−1.3, 0.35).
* **Broad lines** (type 1 and intermediate): Gaussian core, FWHM_b of Hβ (``fwhm_broad``) —
  type 1 LN10(3.82, 0.21) clipped [1200, 16000] (median 6,600 km/s, 16–84 % 4,100–10,700, 20 %
  above 10,000: the real SDSS type 1 in ``shared/data/sdss`` have broad Hβ 7,100–7,700 km/s
  median, a quarter above 10,000; DR7 quasars in general are narrower, about 4,500, so the
  distribution spans both); intermediate: broad Hα LN10(3.52, 0.155) clipped [1500, 9000]
  (catalogue ``FWHM_6564``: log-mean 3.52, log-sd 0.155) and Hβ's from the ratio below. Broad Hα
  and He I 5877 are narrower than the blue lines by ``halpha_width_ratio`` LN10(−0.09, 0.06)
  clipped [0.6, 1.05] (median 0.81; Greene & Ho 2005 find about 0.93, the real set here 0.7;
  meta ``fwhm_broad_halpha``). Core shift N(+150, 700) km/s; in 60 % of the spectra a second,
  wider (×U(1.2, 2.2)) and shifted (N(+400, 1500) km/s: red asymmetries dominate) component
  carries a share U(0.1, 0.5) of the broad flux (``broad_wing_fraction``). Type 1: EW(Hβb) ~
  LN10(log10 62, 0.22); Hαb/Hβb ~ U(2.8, 4.0). Intermediate (catalogue ``Fratio_*``, relative to
  narrow Hβ): 37 % are type 1.9 — broad Hα only, Hαb/Hβn ~ LN10(1.0, 0.3); the others have
  Hβb/Hβn ~ LN10(0.50, 0.42) and Hαb/Hβb ~ LN10(0.72, 0.25) clipped [2.8, 20]. Hγb, Hδb =
  Hβb·U(0.35, 0.5), U(0.18, 0.3); He I 5877 = Hβb·U(0.05, 0.12); He II 4687 = Hβb·U(0.02, 0.1);
  the high-order Balmer lines Hε, H8…H12 (which merge into the pseudo-continuum below 4000 Å) =
  Hβb × Case B ratio × U(0.6, 1.2).
* **Subtype** of intermediates from R = [O III] 5008 / Hβ(total) (Osterbrock, Winkler 1992): 1.2
  for R < 1, 1.5 for 1 ≤ R < 4, 1.8 for R ≥ 4, 1.9 when there is no broad Hβ. Type 1 is "1.0",
  type 2 "2".
* **Fe II** (:data:`FEII_LINES`, approximate multiplets 27, 28, 37, 38, 42, 48, 49, 55, 74):
  R_FeII = Fe II(4434–4684) / Hβb ~ LN10(−0.3, 0.25) (type 1), half of that with probability
  0.5 and none otherwise (intermediate 1.2–1.8), none in 1.9 and type 2; FWHM = FWHM_b·U(0.7, 1.0).
* **Instrument and noise**: resolution σ_inst ~ N(69, 4) km/s (R ≈ 1850); flux scale
  LN10(log10 30, 0.3) (×1e-17 erg s⁻¹ cm⁻² Å⁻¹ at 5100 Å); tilt (λ/6000 Å)^δ, δ ~ N(0, 0.08).
  Noise σ(λ) ∝ √(0.5 + 0.5·F(λ)/F(5100) + sky(λ)) / throughput(λ), scaled to the S/N at rest
  5100 Å, Gaussian, with ``ivar = 1/σ²``; the throughput falls at both ends of the range. Sky
  residual pixels at 5579, 5892, 5898, 6302, 6366, 7246, 7822, 8401 and 8829 Å (observed) have
  their variance multiplied by U(4, 40) (the noise there is drawn with that variance, so ivar stays
  consistent). Masked pixels: Poisson(3) isolated ones and, with probability 0.1, a run of 5–30
  (``ivar = 0``).

The catalogue-derived numbers come from ``shared/data/catalogs/peruzzi_intermediate_seyferts.csv``
(521 intermediate Seyferts, SDSS DR7): log10 FWHM_6564 mean 3.522, sd 0.155; log10 Fratio_4862
(broad/narrow Hβ) mean 0.502, sd 0.422; log10 Fratio_5007 mean 0.601, sd 0.304; broad Hβ
measured in 63 %; Fratio_6564/Fratio_4862 median 5.2; Fratio_6564 of the 1.9s median 10.5.

Reproducibility: spectrum ``i`` is drawn from its own streams ``SeedSequence(seed).spawn(n)[i]``
(one child for the physical parameters, one for noise and masks), and the label sequence is a
deterministic interleaving, so ``simulate(n)`` is a prefix of ``simulate(m)`` for ``m > n`` and
a rerun with the same seed is bitwise identical.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from agnlens.lines import C_KMS
from agnlens.spectra import Spectrum, SpectrumSet, format_spec_id

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_COUNTS", "REDSHIFT_PRESETS", "simulate", "simulate_set", "observed_grid"]

#: The reference study's sample (Peruzzi et al. 2021): 3,346 spectra.
DEFAULT_COUNTS = {"type1": 680, "type2": 2145, "intermediate": 521}
CLASSES = ("type1", "type2", "intermediate")

#: Redshift ranges (uniform) per class for the named presets.
REDSHIFT_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "balmer": {"type1": (0.025, 0.30), "type2": (0.025, 0.30), "intermediate": (0.025, 0.30)},
    "paper": {"type1": (0.40, 0.74), "type2": (0.025, 0.10), "intermediate": (0.025, 0.10)},
}

# SDSS Legacy observed grid (as in the real lite files: 3.5802 ... 3.9639, 3838 pixels). The
# values are float32 so that writing loglam as float32 (as SDSS does) round-trips exactly.
LOGLAM0 = 3.5802
N_PIX = 3838
DLOGLAM = 1e-4
KMS_PER_PIXEL = C_KMS * np.log(10.0) * DLOGLAM  # 69.03 km/s
_PAD = 640  # pixels of margin either side, so that lines just outside the range spill in
_NFFT = 5120  # >= N_PIX + 2 * _PAD; 2^10·5 is FFT-friendly
_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))

_AIR = 1.00028  # approximate air -> vacuum factor in the optical (enough for template lines)

# Emission lines (vacuum Å). Narrow and broad sets index into these names.
_EMISSION = {
    "H12": 3751.22, "H11": 3771.70, "H10": 3798.98, "H9": 3836.47, "H8": 3890.17, "Hepsilon": 3971.20,
    "NeIII_3968": 3968.59,
    "OII_3727": 3727.09, "OII_3730": 3729.88, "NeIII_3870": 3869.86, "Hdelta": 4102.89,
    "Hgamma": 4341.68, "OIII_4364": 4364.44, "HeII_4687": 4687.02, "Hbeta": 4862.68,
    "OIII_4960": 4960.30, "OIII_5008": 5008.24, "HeI_5877": 5877.25, "OI_6302": 6302.05,
    "OI_6365": 6365.54, "NII_6550": 6549.86, "Halpha": 6564.61, "NII_6585": 6585.27,
    "SII_6718": 6718.29, "SII_6733": 6732.67,
}
_NARROW_NAMES = tuple(_EMISSION)
_BROAD_NAMES = ("H12", "H11", "H10", "H9", "H8", "Hepsilon", "Hdelta", "Hgamma", "HeII_4687", "Hbeta", "HeI_5877",
                "Halpha")
#: Broad lines of the red complex, whose width is FWHM(Hβ)·``halpha_width_ratio`` (Hα is narrower
#: than Hβ: Greene & Ho 2005, FWHM(Hβ) ≈ 1.07·FWHM(Hα)^1.03 in 10^3 km/s, and more in some samples).
_BROAD_RED = ("HeI_5877", "Halpha")
#: Case B (10^4 K) intensities of the high-order Balmer lines relative to Hβ (Storey & Hummer 1995).
_HIGH_BALMER = {"Hepsilon": 0.159, "H8": 0.105, "H9": 0.0731, "H10": 0.0530, "H11": 0.0397, "H12": 0.0305}

#: Stellar absorption features: (name, vacuum Å, EW old population Å, EW young population Å,
#: wide). "wide" features (Balmer, Ca H&K, G band) get an extra intrinsic 600 km/s.
HOST_ABSORPTION: tuple[tuple[str, float, float, float, bool], ...] = (
    ("H9", 3836.47, 0.5, 4.0, True),
    ("H8", 3890.15, 0.8, 5.0, True),
    ("CaII_K", 3934.78, 9.0, 2.0, True),
    ("CaII_H+Heps", 3969.59, 7.0, 5.0, True),
    ("Hdelta", 4102.89, 1.5, 7.0, True),
    ("CaI_4227", 4227.9, 1.5, 0.2, False),
    ("Gband", 4305.6, 5.0, 0.5, True),
    ("Hgamma", 4341.68, 1.5, 6.0, True),
    ("Fe_4383", 4384.8, 2.5, 0.3, False),
    ("Fe_4531", 4532.5, 1.5, 0.2, False),
    ("Hbeta", 4862.68, 2.0, 6.0, True),
    ("Mgb_5169", 5168.8, 1.5, 0.3, False),
    ("Mgb_5174", 5174.1, 1.5, 0.3, False),
    ("Mgb_5185", 5185.0, 1.5, 0.3, False),
    ("Fe_5270", 5271.4, 2.5, 0.4, False),
    ("Fe_5335", 5336.2, 2.0, 0.3, False),
    ("Fe_5406", 5407.4, 1.2, 0.2, False),
    ("NaD_5892", 5891.58, 1.6, 0.4, False),
    ("NaD_5898", 5897.56, 1.4, 0.3, False),
    ("CaI_6162", 6163.8, 1.0, 0.1, False),
    ("Halpha", 6564.61, 1.5, 4.0, True),
)

#: Optical Fe II lines (air Å from the multiplet tables, converted to vacuum below) with rough
#: relative intensities; an approximation of the Boroson & Green (1992) template's shape.
_FEII_AIR = (
    (4173.5, 0.3), (4178.9, 0.3), (4233.2, 0.4), (4296.6, 0.2), (4303.2, 0.3), (4351.8, 0.4),
    (4385.4, 0.2), (4416.8, 0.3), (4472.9, 0.2), (4489.2, 0.3), (4491.4, 0.4), (4508.3, 0.5),
    (4515.3, 0.4), (4520.2, 0.4), (4522.6, 0.5), (4534.2, 0.2), (4541.5, 0.3), (4549.5, 0.6),
    (4555.9, 0.5), (4576.3, 0.3), (4582.8, 0.4), (4583.8, 0.6), (4620.5, 0.3), (4629.3, 0.5),
    (4666.8, 0.2), (4923.9, 0.8), (5018.4, 1.0), (5169.0, 0.9), (5197.6, 0.6), (5234.6, 0.6),
    (5264.8, 0.4), (5276.0, 0.8), (5284.1, 0.3), (5316.6, 1.0), (5337.7, 0.3), (5362.9, 0.5),
    (5414.1, 0.2), (5425.3, 0.3), (5534.8, 0.3), (6147.7, 0.1), (6238.4, 0.1), (6247.6, 0.2),
    (6416.9, 0.1), (6456.4, 0.2), (6516.1, 0.1),
)
FEII_LINES = tuple((w * _AIR, s) for w, s in _FEII_AIR)
_FEII_WL = np.array([w for w, _ in FEII_LINES])
_FEII_STRENGTH = np.array([s for _, s in FEII_LINES])
# R_FeII is defined on 4434–4684 Å: normalise the template so that band holds unit flux.
_FEII_STRENGTH = _FEII_STRENGTH / _FEII_STRENGTH[(_FEII_WL >= 4434) & (_FEII_WL <= 4684)].sum()

#: Observed-frame (vacuum Å) sky lines whose subtraction leaves noisy residuals.
SKY_LINES = (5578.9, 5891.6, 5897.6, 6302.0, 6365.5, 7246.0, 7821.5, 8401.0, 8829.0)

_GROUPS = ("abs_sharp", "abs_wide", "narrow", "broad", "broad_wing", "feii", "broad_red", "broad_red_wing")


def observed_grid() -> np.ndarray:
    """The simulator's observed wavelengths (Å), shape (3838,): SDSS Legacy log-λ pixels."""
    loglam = (LOGLAM0 + DLOGLAM * np.arange(N_PIX)).astype(np.float32)
    return 10.0 ** loglam.astype(np.float64)


_LOGLAM = np.log10(observed_grid())
_WAVE = observed_grid()
_FREQ2 = np.fft.rfftfreq(_NFFT) ** 2  # (cycles per pixel)²


def _ln10(rng: np.random.Generator, mean: float, sd: float, lo: float = -np.inf, hi: float = np.inf) -> float:
    return min(max(10.0 ** float(rng.normal(mean, sd)), lo), hi)


def _planck(wave: np.ndarray, temperature: float) -> np.ndarray:
    """Blackbody F_λ shape (arbitrary units) at ``wave`` Å."""
    x = 1.438776877e8 / (wave * temperature)  # hc/(λ k T) with λ in Å
    return wave**-5 / np.expm1(x)


def _label_sequence(n: int, counts: Mapping[str, int]) -> list[str]:
    """Deterministic interleaving: every prefix holds each class within one of its share."""
    names = [c for c in counts if counts[c] > 0]
    total = sum(counts[c] for c in names)
    share = np.array([counts[c] / total for c in names])
    have = np.zeros(len(names))
    out = []
    for i in range(n):
        k = int(np.argmax(share * (i + 1) - have))
        have[k] += 1
        out.append(names[k])
    return out


def _resolve_counts(n: int, counts: Mapping[str, int] | None) -> dict[str, int]:
    if counts is None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"simulate: n must be a positive integer, got {n!r}")
        labels = _label_sequence(int(n), DEFAULT_COUNTS)
        return {c: labels.count(c) for c in DEFAULT_COUNTS}
    if not isinstance(counts, Mapping):
        raise TypeError(f"simulate: counts must be a dict like {DEFAULT_COUNTS}, got {type(counts).__name__}")
    bad = [c for c in counts if c not in CLASSES]
    if bad:
        raise ValueError(f"simulate: unknown class(es) {bad} in counts; use {list(CLASSES)}")
    out = {}
    for c, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"simulate: counts[{c!r}] must be a non-negative integer, got {v!r}")
        out[c] = int(v)
    if sum(out.values()) < 1:
        raise ValueError(f"simulate: counts {dict(counts)} add up to 0; ask for at least one spectrum")
    return out


def _grid_z_range(grid) -> tuple[float, float]:
    """The redshifts at which the observed range covers a rest-frame grid."""
    from agnlens.preprocess import get_grid

    g = get_grid(grid)
    lo = _WAVE[0] / g.wavelength[0] - 1.0
    hi = _WAVE[-1] / g.wavelength[-1] - 1.0
    return lo, hi


def _resolve_redshift(redshift, grid) -> dict[str, tuple[float, float]]:
    if redshift is None:
        ranges = dict(REDSHIFT_PRESETS["balmer"])
    elif isinstance(redshift, str):
        if redshift not in REDSHIFT_PRESETS:
            raise ValueError(
                f"simulate: unknown redshift preset {redshift!r}; use one of {sorted(REDSHIFT_PRESETS)}, "
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
            raise ValueError(
                f"simulate: redshift for {c} must be a (lo, hi) pair of numbers, got {pair!r}"
            ) from None
        if not (0.0 <= lo <= hi) or not np.isfinite(hi):
            raise ValueError(f"simulate: redshift range for {c} must satisfy 0 <= lo <= hi, got ({lo}, {hi})")
        out[c] = (lo, hi)
    if grid is not None:
        zlo, zhi = _grid_z_range(grid)
        for c, (lo, hi) in out.items():
            if lo < zlo - 1e-9 or hi > zhi + 1e-9:
                name = grid if isinstance(grid, str) else getattr(grid, "name", "custom")
                raise ValueError(
                    f"simulate: redshift range {lo}–{hi} for {c} does not keep the {name} grid inside "
                    f"the observed 3802–9204 Å; use z within {max(zlo, 0):.3f}–{zhi:.3f} (e.g. "
                    f"redshift='balmer')"
                )
    return out


def _resolve_snr(snr) -> tuple[float, float]:
    """(median, sd in dex); sd 0 means fixed at the median."""
    if snr is None:
        return 22.0, 0.25
    if np.ndim(snr) == 0:
        value = float(snr)
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"simulate: snr must be a positive number, got {snr!r}")
        return value, 0.0
    try:
        median, sd = (float(v) for v in snr)
    except (TypeError, ValueError):
        raise ValueError(f"simulate: snr must be None, a number or a (median, sigma_dex) pair, got {snr!r}") from None
    if median <= 0 or sd < 0:
        raise ValueError(f"simulate: snr (median, sigma_dex) needs median > 0 and sigma >= 0, got {snr!r}")
    return median, sd


def _draw_parameters(rng: np.random.Generator, label: str, zrange: tuple[float, float], snr: tuple[float, float]) -> dict[str, Any]:
    """Draw one spectrum's physical parameters (see the module docstring)."""
    p: dict[str, Any] = {}
    p["z"] = float(rng.uniform(*zrange)) if zrange[1] > zrange[0] else zrange[0]
    p["snr_target"] = _ln10(rng, np.log10(snr[0]), snr[1], 3.0, 100.0) if snr[1] > 0 else float(snr[0])
    p["sigma_inst"] = float(rng.normal(69.0, 4.0))
    p["sigma_star"] = float(rng.uniform(100.0, 250.0))
    p["flux_scale"] = _ln10(rng, np.log10(30.0), 0.3)
    p["tilt"] = float(rng.normal(0.0, 0.08))
    p["t_old"] = float(rng.uniform(4300.0, 5000.0))
    p["t_young"] = float(rng.uniform(8500.0, 12000.0))
    p["break_old"] = float(rng.uniform(0.35, 0.55))
    p["young_fraction"] = float(rng.beta(1.5, 3.0))
    p["abs_scale"] = float(rng.uniform(0.7, 1.3))
    host_ab = {"type1": (2.0, 5.0), "intermediate": (4.0, 3.5), "type2": (8.0, 2.0)}[label]
    p["host_fraction"] = float(rng.beta(*host_ab))
    alpha_ms = {"type1": (-1.1, 0.8), "intermediate": (-1.2, 0.6), "type2": (-1.0, 0.7)}[label]
    p["alpha"] = min(max(float(rng.normal(*alpha_ms)), -3.0), 1.0)
    p["fwhm_narrow"] = _ln10(rng, 2.47, 0.15, 200.0, 700.0)

    # narrow-line ratios
    ha_hb = max(_ln10(rng, np.log10(3.1), 0.06), 2.86)
    nii_ha = _ln10(rng, -0.08, 0.15, 0.5, 2.5)
    sii = rng.uniform(0.35, 0.7)
    sii_ratio = rng.uniform(0.8, 1.4)
    oi = rng.uniform(0.05, 0.25)
    oii = rng.uniform(1.5, 4.5)
    oii_ratio = rng.uniform(0.7, 1.3)
    neiii = rng.uniform(0.6, 1.4)
    oiii4364 = rng.uniform(0.05, 0.25)
    heii_n = rng.uniform(0.1, 0.4)
    hei_n = rng.uniform(0.08, 0.15)

    broad = dict.fromkeys(_BROAD_NAMES, 0.0)
    fwhm_b = 0.0
    feii = 0.0
    ha_ratio = _ln10(rng, -0.09, 0.06, 0.6, 1.05)  # FWHM(broad Hα) / FWHM(broad Hβ)
    if label == "type1":
        r_n = _ln10(rng, 0.80, 0.18, 3.0, 15.0)
        fwhm_b = _ln10(rng, 3.82, 0.21, 1200.0, 16000.0)
        hb_b = _ln10(rng, np.log10(62.0), 0.22)
        hb_n = hb_b * _ln10(rng, -1.3, 0.35)
        ha_b = hb_b * rng.uniform(2.8, 4.0)
        feii = _ln10(rng, -0.3, 0.25)
        subtype = "1.0"
    elif label == "intermediate":
        r_n = _ln10(rng, 0.60, 0.30, 1.0, 20.0)
        # the catalogue measured broad Hα: Hβ's width follows from the ratio
        fwhm_b = _ln10(rng, 3.52, 0.155, 1500.0, 9000.0) / ha_ratio
        oiii = _ln10(rng, np.log10(20.0), 0.35)
        hb_n = oiii / r_n
        if rng.random() < 0.37:  # type 1.9: broad Hα only
            hb_b = 0.0
            ha_b = hb_n * _ln10(rng, 1.0, 0.3)
        else:
            hb_b = hb_n * _ln10(rng, 0.50, 0.42)
            ha_b = hb_b * _ln10(rng, 0.72, 0.25, 2.8, 20.0)
        has_feii = rng.random() < 0.5
        feii_draw = 0.5 * _ln10(rng, -0.3, 0.25)
        feii = feii_draw if (has_feii and hb_b > 0) else 0.0
        subtype = ""  # set from R below
    else:
        r_n = _ln10(rng, 0.78, 0.20, 2.0, 20.0)
        oiii = _ln10(rng, np.log10(25.0), 0.4)
        hb_n = oiii / r_n
        hb_b = ha_b = 0.0
        subtype = "2"
    if fwhm_b > 0:
        broad["Hbeta"] = hb_b
        broad["Halpha"] = ha_b
        broad["Hgamma"] = hb_b * rng.uniform(0.35, 0.5)
        broad["Hdelta"] = hb_b * rng.uniform(0.18, 0.3)
        broad["HeI_5877"] = hb_b * rng.uniform(0.05, 0.12)
        broad["HeII_4687"] = hb_b * rng.uniform(0.02, 0.1)
        high = rng.uniform(0.6, 1.2)
        for name, ratio in _HIGH_BALMER.items():
            broad[name] = hb_b * ratio * high
        p["broad_shift"] = float(rng.normal(150.0, 700.0))
        has_wing = rng.random() < 0.6
        wing = (rng.uniform(0.1, 0.5), rng.uniform(1.2, 2.2), rng.normal(400.0, 1500.0))
        p["broad_wing_fraction"] = float(wing[0]) if has_wing else 0.0
        p["broad_wing_width"] = float(wing[1])
        p["broad_wing_shift"] = float(wing[2])
        p["feii_fwhm"] = max(fwhm_b * rng.uniform(0.7, 1.0), 1000.0)
        p["halpha_width_ratio"] = float(ha_ratio)
    else:
        p["halpha_width_ratio"] = 1.0
        p["broad_shift"] = p["broad_wing_fraction"] = p["broad_wing_shift"] = 0.0
        p["broad_wing_width"] = 1.0
        p["feii_fwhm"] = 0.0
    oiii = r_n * hb_n
    ha_n = hb_n * ha_hb
    narrow = {
        "OII_3727": hb_n * oii * oii_ratio / (1 + oii_ratio), "OII_3730": hb_n * oii / (1 + oii_ratio),
        "NeIII_3870": hb_n * neiii, "NeIII_3968": hb_n * neiii / 3.32, "Hdelta": hb_n * 0.26, "Hgamma": hb_n * 0.47,
        **{name: hb_n * ratio for name, ratio in _HIGH_BALMER.items()},
        "OIII_4364": hb_n * oiii4364, "HeII_4687": hb_n * heii_n, "Hbeta": hb_n,
        "OIII_4960": oiii / 2.98, "OIII_5008": oiii, "HeI_5877": hb_n * hei_n,
        "OI_6302": ha_n * oi, "OI_6365": ha_n * oi / 3.0, "NII_6550": ha_n * nii_ha / 3.05,
        "Halpha": ha_n, "NII_6585": ha_n * nii_ha,
        "SII_6718": ha_n * sii * sii_ratio / (1 + sii_ratio), "SII_6733": ha_n * sii / (1 + sii_ratio),
    }
    r_total = oiii / (hb_n + broad["Hbeta"])
    if label == "intermediate":
        subtype = "1.9" if broad["Hbeta"] == 0 else "1.2" if r_total < 1 else "1.5" if r_total < 4 else "1.8"
    p.update(
        subtype=subtype, fwhm_broad=float(fwhm_b), narrow=narrow, broad=broad, feii_ratio=float(feii),
        oiii_hbeta=float(r_n), oiii_hbeta_total=float(r_total),
        broad_halpha_hbeta=float(broad["Halpha"] / broad["Hbeta"]) if broad["Hbeta"] > 0 else 0.0,
    )
    return p


#: Spectra modelled together (vectorised over the block). Each row's arithmetic is elementwise or
#: along its own row, so a spectrum's values do not depend on the block it shares.
_BLOCK = 64

_ABS_WL = np.array([a[1] for a in HOST_ABSORPTION])
_ABS_OLD = np.array([a[2] for a in HOST_ABSORPTION])
_ABS_YOUNG = np.array([a[3] for a in HOST_ABSORPTION])
_ABS_WIDE = np.array([a[4] for a in HOST_ABSORPTION])
_NARROW_WL = np.array([_EMISSION[k] for k in _NARROW_NAMES])
_BROAD_WL = np.array([_EMISSION[k] for k in _BROAD_NAMES])
_RED = np.array([k in _BROAD_RED for k in _BROAD_NAMES])


def _stick_entries(group: int, rest_wl: np.ndarray, values: np.ndarray, z: np.ndarray, shift_kms: np.ndarray):
    """Flat indices and weights of sticks for a block.

    ``values`` (n_block, n_lines) are integrated amounts; each stick is split linearly between
    its two neighbouring log-λ pixels (centroid exact), ``dens = value / Δλ_pixel`` so that the
    integral over rest-frame Å equals ``value``.
    """
    n_block = values.shape[0]
    obs = rest_wl[None, :] * ((1.0 + z) * (1.0 + shift_kms / C_KMS))[:, None]
    pos = (np.log10(obs) - LOGLAM0) / DLOGLAM + _PAD
    dens = values / (rest_wl[None, :] * np.log(10.0) * DLOGLAM)
    i = np.floor(pos).astype(np.int64)
    f = pos - i
    keep = (i >= 0) & (i < _NFFT - 1) & (values != 0)
    base = (np.arange(n_block)[:, None] * len(_GROUPS) + group) * _NFFT
    idx = (base + i)[keep]
    w0 = (dens * (1.0 - f))[keep]
    w1 = (dens * f)[keep]
    return np.concatenate([idx, idx + 1]), np.concatenate([w0, w1])


def _col(params: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([p[key] for p in params], dtype=np.float64)


def _models(params: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free observed flux of a block of spectra.

    Returns
    -------
    model : ndarray of shape (n_block, 3838)
    cont5100 : ndarray of shape (n_block,)
        The observed continuum flux density at rest 5100 Å (sets the noise level).
    """
    nb = len(params)
    z = _col(params, "z")
    zero = np.zeros(nb)
    y = _col(params, "young_fraction")
    ew = ((1.0 - y)[:, None] * _ABS_OLD + y[:, None] * _ABS_YOUNG) * _col(params, "abs_scale")[:, None]
    narrow = np.array([[p["narrow"][k] for k in _NARROW_NAMES] for p in params])
    broad = np.array([[p["broad"][k] for k in _BROAD_NAMES] for p in params])
    wing = _col(params, "broad_wing_fraction")[:, None]
    shift = _col(params, "broad_shift")
    hb_b = broad[:, _BROAD_NAMES.index("Hbeta")]
    feii = (_col(params, "feii_ratio") * hb_b)[:, None] * _FEII_STRENGTH[None, :]
    entries = [
        _stick_entries(0, _ABS_WL[~_ABS_WIDE], ew[:, ~_ABS_WIDE], z, zero),
        _stick_entries(1, _ABS_WL[_ABS_WIDE], ew[:, _ABS_WIDE], z, zero),
        _stick_entries(2, _NARROW_WL, narrow, z, zero),
        _stick_entries(3, _BROAD_WL[~_RED], (broad * (1.0 - wing))[:, ~_RED], z, shift),
        _stick_entries(4, _BROAD_WL[~_RED], (broad * wing)[:, ~_RED], z, shift + _col(params, "broad_wing_shift")),
        _stick_entries(5, _FEII_WL, feii, z, zero),
        _stick_entries(6, _BROAD_WL[_RED], (broad * (1.0 - wing))[:, _RED], z, shift),
        _stick_entries(7, _BROAD_WL[_RED], (broad * wing)[:, _RED], z, shift + _col(params, "broad_wing_shift")),
    ]
    idx = np.concatenate([e[0] for e in entries])
    wts = np.concatenate([e[1] for e in entries])
    sticks = np.bincount(idx, wts, minlength=nb * len(_GROUPS) * _NFFT).reshape(nb, len(_GROUPS), _NFFT)

    s_inst = _col(params, "sigma_inst")
    s_star = _col(params, "sigma_star")
    s_n = _col(params, "fwhm_narrow") / _FWHM
    s_b = _col(params, "fwhm_broad") / _FWHM
    s_r = s_b * _col(params, "halpha_width_ratio")
    sig = np.stack([
        np.hypot(s_star, s_inst),
        np.sqrt(s_star**2 + s_inst**2 + 600.0**2),
        np.hypot(s_n, s_inst),
        np.hypot(s_b, s_inst),
        np.hypot(s_b * _col(params, "broad_wing_width"), s_inst),
        np.hypot(_col(params, "feii_fwhm") / _FWHM, s_inst),
        np.hypot(s_r, s_inst),
        np.hypot(s_r * _col(params, "broad_wing_width"), s_inst),
    ], axis=1) / KMS_PER_PIXEL  # (nb, groups), pixels
    # Convolution is linear: sum the absorption groups and the emission groups in Fourier space
    # and transform back twice.
    spec = np.fft.rfft(sticks, axis=2) * np.exp(-2.0 * np.pi**2 * sig[:, :, None] ** 2 * _FREQ2)
    both = np.stack([spec[:, 0] + spec[:, 1], spec[:, 2:].sum(axis=1)], axis=1)
    conv = np.fft.irfft(both, n=_NFFT, axis=2)[:, :, _PAD : _PAD + N_PIX]
    absorption = np.clip(conv[:, 0], 0.0, 0.95)
    emission = conv[:, 1]

    # continuum (rest frame, normalised to 1 at 5100 Å)
    rest = _WAVE[None, :] / (1.0 + z)[:, None]
    step = 1.0 / (1.0 + np.exp((rest - 4000.0) / 15.0))
    t_old = _col(params, "t_old")[:, None]
    t_young = _col(params, "t_young")[:, None]
    old = _planck(rest, t_old) / _planck(5100.0, t_old) * (1.0 - _col(params, "break_old")[:, None] * step)
    young = _planck(rest, t_young) / _planck(5100.0, t_young) * (1.0 - 0.08 * step)
    host = (1.0 - y)[:, None] * old + y[:, None] * young
    h = _col(params, "host_fraction")[:, None]
    agn = (1.0 - h) * (rest / 5100.0) ** _col(params, "alpha")[:, None]
    rest_flux = h * host * (1.0 - absorption) + agn + emission
    tilt = _col(params, "tilt")
    scale = _col(params, "flux_scale") / (1.0 + z)
    model = rest_flux * scale[:, None] * (_WAVE[None, :] / 6000.0) ** tilt[:, None]
    cont5100 = scale * (5100.0 * (1.0 + z) / 6000.0) ** tilt
    return model, cont5100


def _throughput(wave: np.ndarray) -> np.ndarray:
    """Relative instrumental throughput: falls at the blue and red ends of the SDSS range."""
    return 1.0 / (1.0 + 1.5 * np.exp(-(wave - 3800.0) / 250.0) + 0.8 * np.exp((wave - 9200.0) / 300.0))


_SKY_CONT = 0.15 * (_WAVE / 7000.0) ** 4
_INV_THROUGHPUT2 = 1.0 / _throughput(_WAVE) ** 2
_SKY_PIX = [np.arange(max(j - 2, 0), min(j + 3, N_PIX)) for j in np.searchsorted(_WAVE, SKY_LINES)]


def _noise(rngs: list[np.random.Generator], model: np.ndarray, cont5100: np.ndarray, params: list[dict[str, Any]], noise: bool):
    """Variance model, noisy flux, ivar and mask for a block of spectra."""
    nb = len(params)
    snr = _col(params, "snr_target")
    shape = (0.5 + 0.5 * np.maximum(model / cont5100[:, None], 0.0) + _SKY_CONT) * _INV_THROUGHPUT2
    i5100 = np.clip(np.searchsorted(_WAVE, 5100.0 * (1.0 + _col(params, "z"))), 0, N_PIX - 1)
    var = shape * ((cont5100 / snr) ** 2 / shape[np.arange(nb), i5100])[:, None]
    eps = np.empty((nb, N_PIX))
    mask = np.zeros((nb, N_PIX), dtype=bool)
    for b, rng in enumerate(rngs):
        # sky-line residuals: noisier pixels (±2 px), the noise drawn with the boosted variance
        boost = rng.uniform(4.0, 40.0, size=len(SKY_LINES))
        for pix, factor in zip(_SKY_PIX, boost):
            var[b, pix] *= factor
        eps[b] = rng.standard_normal(N_PIX)
        mask[b, rng.integers(0, N_PIX, size=rng.poisson(3.0))] = True
        if rng.random() < 0.1:
            start = int(rng.integers(0, N_PIX - 30))
            mask[b, start : start + int(rng.integers(5, 31))] = True
    ivar = 1.0 / var
    if not noise:
        return model.copy(), ivar, np.zeros_like(mask)
    flux = model + eps * np.sqrt(var)
    ivar[mask] = 0.0
    return flux, ivar, mask


def _meta(i: int, label: str, p: dict[str, Any], seed: int) -> dict[str, Any]:
    plate, fiber = 9000 + i // 640, i % 640 + 1
    mjd = 55000 + int(seed) % 10000
    return {
        "spec_id": format_spec_id(plate, mjd, fiber), "plate": plate, "mjd": mjd, "fiber": fiber,
        "z": p["z"], "zwarning": 0, "label": label, "subtype": p["subtype"],
        "fwhm_broad": p["fwhm_broad"], "fwhm_broad_halpha": p["fwhm_broad"] * p["halpha_width_ratio"],
        "fwhm_narrow": p["fwhm_narrow"], "snr_target": p["snr_target"],
        "host_fraction": p["host_fraction"], "oiii_hbeta": p["oiii_hbeta"],
        "oiii_hbeta_total": p["oiii_hbeta_total"], "feii_ratio": p["feii_ratio"],
        "broad_wing_fraction": p["broad_wing_fraction"], "broad_halpha_hbeta": p["broad_halpha_hbeta"],
        "alpha": p["alpha"], "sigma_star": p["sigma_star"], "sigma_inst": p["sigma_inst"],
        "source": f"simulated:seed={seed}:{i}",
        "sdss_class": "QSO" if label == "type1" else "GALAXY",
        "sdss_subclass": "BROADLINE" if label == "type1" else "AGN" if label == "type2" else "AGN BROADLINE",
        "survey": "sdss", "simulated": True,
    }


def simulate(
    n: int = 3346,
    *,
    counts: Mapping[str, int] | None = None,
    seed: int = 0,
    redshift: str | tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    snr: float | tuple[float, float] | None = None,
    noise: bool = True,
    grid: Any = None,
) -> list[Spectrum]:
    """Simulate observed-frame SDSS-like AGN spectra (type 1, type 2, intermediate).

    Parameters
    ----------
    n : int, default 3346
        Number of spectra; the classes keep the reference study's shares (680 : 2145 : 521).
        Ignored when ``counts`` is given.
    counts : dict, optional
        Spectra per class, e.g. ``{"type1": 10, "type2": 5}``; overrides ``n``.
    seed : int, default 0
        Same seed, same spectra (bitwise). Spectrum ``i`` does not depend on ``n``.
    redshift : str or (float, float) or dict, optional
        ``"balmer"`` (default: z ~ U(0.025, 0.30) for all classes, covers both preset grids),
        ``"paper"`` (the reference study's per-class ranges), a ``(lo, hi)`` range for all classes
        or ``{label: (lo, hi)}``.
    snr : float or (float, float), optional
        S/N per pixel of the continuum at rest 5100 Å: default log-normal (median 22); a number
        fixes it; ``(median, sigma_dex)`` sets the log-normal.
    noise : bool, default True
        False returns the noise-free model (same parameters, same ivar, nothing masked): for tests.
    grid : str or Grid, optional
        If given, check that every redshift keeps this rest-frame grid inside the observed range.

    Returns
    -------
    list of Spectrum
        Observed frame, 3838 log-λ pixels 3802–9204 Å. ``meta`` holds ``spec_id`` (fake but valid
        PLATE-MJD-FIBER, plates from 9000), ``plate``, ``mjd``, ``fiber``, ``z``, ``zwarning`` (0),
        ``label``, ``subtype``, ``fwhm_broad`` (broad Hβ, km/s, 0 if none), ``fwhm_broad_halpha``
        (broad Hα), ``fwhm_narrow``, ``snr_target``,
        ``host_fraction``, ``oiii_hbeta`` ([O III] 5008/narrow Hβ), ``oiii_hbeta_total``,
        ``feii_ratio``, ``broad_wing_fraction``, ``alpha``, ``sigma_star``, ``sigma_inst``,
        ``source`` (``"simulated:seed=S:i"``), ``sdss_class`` (QSO/GALAXY), ``sdss_subclass``,
        ``survey``, ``simulated`` (True).

    Raises
    ------
    ValueError, TypeError
        For impossible counts, redshift ranges or S/N settings.
    """
    spectra = list(_generate(n, counts, seed, redshift, snr, noise, grid))
    log.debug("simulated %d spectra (seed %d)", len(spectra), seed)
    return spectra


def _generate(n, counts, seed, redshift, snr, noise, grid) -> Iterator[Spectrum]:
    """Validate the settings, then yield the spectra block by block (see :func:`simulate`)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"simulate: seed must be a non-negative integer, got {seed!r}")
    cnt = _resolve_counts(n, counts)
    total = sum(cnt.values())
    # The interleaving uses the shares (the study's by default), not this n's rounded counts, so
    # that spectrum i is the same whatever n; its prefix counts are within one of each share.
    labels = _label_sequence(total, DEFAULT_COUNTS if counts is None else cnt)
    zranges = _resolve_redshift(redshift, grid)
    snr_ln = _resolve_snr(snr)
    return _blocks(labels, np.random.SeedSequence(int(seed)).spawn(total), zranges, snr_ln, noise, int(seed))


def _blocks(labels, children, zranges, snr_ln, noise, seed) -> Iterator[Spectrum]:
    total = len(labels)
    for b0 in range(0, total, _BLOCK):
        idx = range(b0, min(b0 + _BLOCK, total))
        params, noise_rngs = [], []
        for i in idx:
            param_ss, noise_ss = children[i].spawn(2)
            params.append(_draw_parameters(np.random.Generator(np.random.PCG64(param_ss)), labels[i], zranges[labels[i]], snr_ln))
            noise_rngs.append(np.random.Generator(np.random.PCG64(noise_ss)))
        model, cont5100 = _models(params)
        flux, ivar, mask = _noise(noise_rngs, model, cont5100, params, noise)
        for k, (i, p) in enumerate(zip(idx, params)):
            yield Spectrum(wavelength=_WAVE.copy(), flux=flux[k], ivar=ivar[k], mask=mask[k], meta=_meta(i, labels[i], p, seed))


def simulate_set(
    n: int = 3346,
    *,
    seed: int = 0,
    grid: Any = "paper",
    counts: Mapping[str, int] | None = None,
    redshift: str | tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    snr: float | tuple[float, float] | None = None,
) -> SpectrumSet:
    """Simulate spectra and preprocess them onto ``grid`` (rest frame, resampled, normalised).

    Parameters are those of :func:`simulate`. The redshifts are checked to keep ``grid`` inside
    the observed range, so no spectrum is rejected for coverage.

    Returns
    -------
    SpectrumSet
        ``provenance`` holds ``simulated: True``, ``seed`` and ``simulator`` (the settings).

    Raises
    ------
    RuntimeError
        If preprocessing rejected a simulated spectrum (a simulator bug, never expected).
    """
    from agnlens import __version__
    from agnlens.preprocess import get_grid, preprocess

    g = get_grid(grid)
    # a generator: preprocessing consumes the spectra block by block, so memory stays small
    spectra = _generate(n, counts, seed, redshift, snr, True, g)
    settings = {
        "n": sum(_resolve_counts(n, counts).values()),
        "counts": _resolve_counts(n, counts),
        "redshift": redshift if isinstance(redshift, (str, type(None))) else str(redshift),
        "snr": snr if isinstance(snr, (int, float, type(None))) else list(snr),
        "version": f"agnlens {__version__}",
    }
    result, rejected = preprocess(
        spectra, g, provenance={"simulated": True, "simulator": settings, "seed": int(seed)}
    )
    if rejected:
        raise RuntimeError(
            f"simulate_set: preprocessing rejected {len(rejected)} simulated spectra on the {g.name} "
            f"grid, first: {rejected[0]}; this is a simulator bug, please report it"
        )
    return result
