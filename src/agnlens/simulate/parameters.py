"""The physical parameters of one simulated spectrum, and where each distribution comes from.

Notation: ``U(a, b)`` uniform, ``N(m, s)`` normal, ``LN10(m, s)`` = 10**N(m, s), ``Exp(m)``
exponential of mean m. "Catalogue" is the intermediate-Seyfert catalogue of the reference study
(``agnlens/data/catalogs/peruzzi_intermediate_seyferts.csv``, 521 objects; its statistics are
printed by ``scripts/catalogue_line_stats.py`` and copied here). The type 1 priors are fitted to
the labelled real spectra of the project's reference sample (:data:`.quasar.PRIORS`); here only the
unobscured broad/narrow Hα of :data:`UNOBSCURED_BROAD_NARROW` is taken from them (docs/results.md).

Equivalent widths (EW, Å) of the nuclear lines are measured against the AGN continuum at 5100 Å
(as quasar catalogues do); narrow lines of Seyferts (types 2 and intermediate) against the total
(host + AGN) continuum at 5100 Å, as Seyfert samples measure them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agnlens.classes import CLASSES, QUASAR_SUBTYPES, R_THRESHOLDS, class_of_subtype, winkler_subtype
from agnlens.lines import C_KMS, FWHM_PER_SIGMA, line
from agnlens.simulate.agn import HE_I_RATIOS
from agnlens.simulate.host import host_templates
from agnlens.simulate.instrument import DLOGLAM
from agnlens.simulate.narrow import draw_narrow
from agnlens.simulate.quasar import PRIORS, broad_profile, host_fraction, log_l5100, oiii_ew

__all__ = ["DEFAULT_COUNTS", "MAX_SPECTRA", "detectable_flux", "draw_parameters"]

#: The reference study's sample (Peruzzi et al. 2021): 3,346 spectra.
DEFAULT_COUNTS = {"type1": 680, "type2": 2145, "intermediate": 521}
#: The most spectra one call makes: 10^7 spectra are ~650 GB of observed-frame flux, ivar and mask
#: (``simulate``), ~80 GB preprocessed (``simulate_set``), and hours of CPU: past that a call is a
#: mistake; make several calls with different seeds instead.
MAX_SPECTRA = 10_000_000


def _ln10(rng: np.random.Generator, mean: float, sd: float, lo: float = -np.inf, hi: float = np.inf) -> float:
    return min(max(10.0 ** float(rng.normal(mean, sd)), lo), hi)


def _choice(rng: np.random.Generator, shares: Mapping[str, float]) -> str:
    return str(rng.choice(list(shares), p=np.array(list(shares.values())) / sum(shares.values())))


# BPT locus of the narrow lines per class: the study's type 2 are Seyfert 2s selected on the BPT
# diagram, with a few LINER/composite contaminants (assumed shares, not measured); type 1 narrow
# lines sit on the Seyfert branch around a centre fitted to real type 1 (kind "type1",
# :func:`.narrow.draw_narrow`); intermediates draw the catalogue's measured ratios.
BPT_SHARES = {
    "type1": {"type1": 1.0},
    "type2": {"seyfert": 0.85, "liner": 0.10, "composite": 0.05},
    "intermediate": {"catalogue": 1.0},
}
# Host light fraction at 5100 Å, Beta(a, b): the featureless continuum of Seyfert 2s is 0–40 % of
# the light (Cid Fernandes et al. 2004, ApJ 605, 105); intermediates in between. Type 1: from
# their luminosity in the fibre (Shen et al. 2011, ApJS 194, 45, eq. 1; :mod:`.quasar`).
HOST_FRACTION = {"intermediate": (4.0, 3.5), "type2": (8.0, 2.0)}
# Host metallicity [M/H] shares of the templates (−0.71, −0.40, 0, +0.22): AGN hosts are massive
# galaxies, near-solar stellar metallicity (Gallazzi et al. 2005, MNRAS 362, 41).
METALLICITY_SHARES = (0.1, 0.2, 0.4, 0.3)
# Light fractions at 5100 Å of the young / intermediate / old populations, Dirichlet(1, 1.2, 3)
# (means 0.19, 0.23, 0.58): Seyfert 2 nuclei (Cid Fernandes et al. 2004) and type 1 hosts
# (Kauffmann et al. 2003, MNRAS 346, 1055: AGN hosts younger than inactive early types).
POPULATION_DIRICHLET = (1.0, 1.2, 3.0)
# [O III] 5008 EW of the Seyferts (types 2 and intermediate alike: one narrow-line region, no class
# shortcut) against the total continuum, LN10(1.6, 0.45) Å (median 40, 2σ ~320 Å): SDSS Seyfert 2s
# span ~5–1,000 Å (Kauffmann et al. 2003, MNRAS 346, 1055; Kewley et al. 2006, MNRAS 372, 961)
SEYFERT_OIII_EW = (1.6, 0.45)
# Seyfert 1.9s whose broad Hα is the light of a hidden broad-line region scattered into the line of
# sight (Miller & Goodrich 1990, ApJ 355, 456; Tran 1995, ApJ 440, 597): 1–5 % of an unobscured
# nucleus's broad Hα, log-uniform from the fraction the spectrum's S/N sees (:func:`detectable_flux`:
# a 1.9 is a spectrum whose broad Hα is seen) to 5 %; where even 5 % would not be seen the 1.9 stays
# a catalogue one (at low S/N only conspicuous 1.9s are recognised). The unobscured broad/narrow Hα
# is the real type 1's (median 14.1, `agnlens realism` on the 76 of the reference sample; 0.3 dex
# assumed): luminous quasars, whose narrow lines are weaker (Baldwin effect) than a Seyfert's, so it
# errs towards brighter scattered lines. What is seen directly is a Seyfert 2: its host and
# featureless continuum, unreddened. The share of hidden broad-line regions among the 1.9s is not
# measured (the study's catalogue, selected by eye for conspicuous broad wings, holds few): half of
# the draws is assumed, which the S/N condition makes 0.44 of the 1.9s (docs/simulator.md).
HIDDEN_BLR_SHARE = 0.5
SCATTERED_FRACTION = (0.01, 0.05)
UNOBSCURED_BROAD_NARROW = (float(np.log10(14.1)), 0.3)
#: Matched-filter S/N at which a broad Hα counts as seen (:func:`detectable_flux`). An effective value:
#: the estimate leaves out the continuum's shape, the narrow lines' photon noise, the sky and a second
#: broad component, and is off by 0.5–1.5× on simulated spectra; at this threshold the project's line
#: fit counts 85 % of the hidden-BLR 1.9s' broad Hα (docs/simulator.md).
DETECT_SNR = 10.0


def detectable_flux(fwhm: float, snr: float, name: str = "Halpha") -> float:
    """Flux (Å × the continuum at 5100 Å) of a Gaussian line ``name`` of ``fwhm`` km/s that reaches the
    matched-filter S/N :data:`DETECT_SNR` on SDSS pixels (10^-4 dex) at a continuum S/N ``snr`` per
    pixel, the continuum taken as flat from 5100 Å."""
    centre = line(name).wavelength
    sigma = fwhm / FWHM_PER_SIGMA / C_KMS * centre
    pixel = centre * np.log(10.0) * DLOGLAM
    return float(DETECT_SNR * np.sqrt(2.0 * np.sqrt(np.pi) * sigma * pixel) / snr)


def _seyfert2_continuum(rng: np.random.Generator) -> tuple[float, float]:
    """(α_λ, E(B−V)) of a Seyfert 2's featureless continuum (see :func:`draw_parameters`)."""
    return float(rng.normal(-0.5, 0.3)), 0.0


def draw_parameters(
    rng: np.random.Generator, label: str, zrange: tuple[float, float], snr: tuple[float, float],
    flux: float | None = None,
) -> dict[str, Any]:
    """Draw one spectrum's physical parameters (see the module docstring for the sources)."""
    p: dict[str, Any] = {"label": label}
    p["z"] = float(rng.uniform(*zrange)) if zrange[1] > zrange[0] else zrange[0]
    p["snr_target"] = _ln10(rng, np.log10(snr[0]), snr[1], 3.0, 100.0) if snr[1] > 0 else float(snr[0])
    # SDSS resolution R ≈ 1,800–2,200 (σ ≈ 60–75 km/s)
    p["sigma_inst"] = float(rng.normal(69.0, 4.0))
    # stellar velocity dispersion of AGN hosts (Greene & Ho 2006, ApJ 641, L21: 60–300 km/s)
    p["sigma_star"] = float(rng.uniform(100.0, 250.0))
    p["flux_scale"] = _ln10(rng, np.log10(30.0), 0.3)  # 1e-17 erg/s/cm²/Å at 5100 Å, SDSS-like
    if flux is not None:  # the flux asked for (the draw above keeps the random stream the same)
        p["flux_scale"] = float(flux)
    # SDSS spectrophotometry good to a few per cent across the range: a tilt (λ/6000 Å)^δ
    p["tilt"] = float(rng.normal(0.0, 0.05))

    # host populations
    t = host_templates()
    p["host_z_index"] = int(rng.choice(len(t["metallicity"]), p=METALLICITY_SHARES))
    p["host_ages"] = [int(rng.choice(t["bins"][b])) for b in ("young", "intermediate", "old")]
    p["host_weights"] = [float(w) for w in rng.dirichlet(POPULATION_DIRICHLET)]
    p["log_l5100"] = log_l5100(p["z"], p["flux_scale"])
    p["host_fraction"] = (host_fraction(rng, p["log_l5100"]) if label == "type1"
                          else float(rng.beta(*HOST_FRACTION[label])))

    # narrow lines
    nl = draw_narrow(rng, _choice(rng, BPT_SHARES[label]))
    # stellar reddening = 0.44 × that of the gas (Calzetti et al. 2000)
    p["ebv_narrow"], p["ebv_star"] = nl["ebv"], 0.44 * nl["ebv"]
    # narrow FWHM: one narrow-line region for every class (the unified model; no class shortcut),
    # its log-mean fitted on the real type 1 (:data:`.quasar.PRIORS`), the catalogue's spread
    p["fwhm_narrow"] = _ln10(rng, *PRIORS["fwhm_narrow"], 150.0, 900.0)
    p["narrow_wing"] = nl["wing"]
    p["narrow_shift"] = 0.0
    p["scattered_fraction"] = 0.0
    if label == "type1":
        # quasars: an outflow wing on every narrow line, its share log-normal (:data:`.quasar.PRIORS`,
        # fitted; luminous AGN carry wings more often, Mullaney et al. 2013, MNRAS 433, 622), and the
        # narrow lines' offset from the catalogue redshift, which SDSS measures for quasars with
        # broad-line templates (Hewett & Wild 2010, MNRAS 405, 2302)
        p["narrow_wing"] = (_ln10(rng, *PRIORS["narrow_wing"], 0.0, 0.7), *nl["wing"][1:])
        p["narrow_shift"] = float(rng.normal(*PRIORS["narrow_shift"]))

    # AGN continuum F_λ ∝ λ^α: quasars α_ν = −0.44 (Vanden Berk et al. 2001, AJ 122, 549), i.e.
    # α_λ = −1.56 (type 1: :data:`.quasar.PRIORS`, fitted to real quasars' optical slopes),
    # individual scatter ~0.3, and a reddened tail E(B−V) ~ Exp(0.05) (Richards et al.
    # 2003, AJ 126, 1131); intermediates redder, Exp(0.15) (Goodrich 1995: many 1.8/1.9 are reddened
    # type 1s); the featureless continuum of Seyfert 2s F_ν ∝ ν^−1.5, α_λ = −0.5 (Cid Fernandes
    # et al. 2004).
    if label == "type2":
        p["alpha"], p["ebv_agn"] = _seyfert2_continuum(rng)
    else:
        p["alpha"] = float(rng.normal(*PRIORS["alpha"])) if label == "type1" else float(rng.normal(-1.56, 0.3))
        p["ebv_agn"] = float(rng.exponential(0.05 if label == "type1" else 0.15))
    agn_5100 = 1.0 - p["host_fraction"]

    broad = {"Hbeta": 0.0, "Halpha": 0.0}
    fwhm_hb = fwhm_ha = 0.0
    if label == "type1":
        # [O III] 5008 EW against the AGN continuum, falling with the AGN's luminosity (Baldwin
        # effect, :func:`.quasar.oiii_ew`)
        oiii = agn_5100 * oiii_ew(rng, p["log_l5100"] + np.log10(max(agn_5100, 1e-3)))
        # broad Hβ FWHM and EW, broad Hα/Hβ: :data:`.quasar.PRIORS` (SDSS quasars, Shen et al. 2011;
        # Dong et al. 2008; fitted to real quasar spectra)
        fwhm_hb = _ln10(rng, *PRIORS["fwhm_hbeta"], 1200.0, 16000.0)
        broad["Hbeta"] = agn_5100 * _ln10(rng, *PRIORS["hbeta_ew"])
        # broad Hα/Hβ = 3.06, 0.03 dex for blue AGN, wider here for the reddened ones (Dong et al.
        # 2008, MNRAS 383, 581)
        broad["Halpha"] = broad["Hbeta"] * _ln10(rng, *PRIORS["halpha_hbeta"], 2.6, 8.0)
        # FWHM(Hβ) = 1.07·10³ (FWHM(Hα)/10³)^1.03 km/s (Greene & Ho 2005, ApJ 630, 122), 0.05 dex
        fwhm_ha = 1e3 * (fwhm_hb / 1.07e3) ** (1 / 1.03) * _ln10(rng, 0.0, 0.05)
        # R_FeII = Fe II(4434–4684)/Hβ_broad: median ~0.4, 0–2 (Boroson & Green 1992; Shen et al. 2011)
        p["feii_ratio"] = _ln10(rng, -0.35, 0.25, 0.0, 3.0)
    elif label == "intermediate":
        oiii = _ln10(rng, *SEYFERT_OIII_EW)
        hb_n = oiii * nl["lines"]["Hbeta"]
        if rng.random() < 0.372:  # catalogue: 194 of 521 without broad Hβ (type 1.9)
            # catalogue Fratio_6564 of the 1.9s: log-mean 0.977, sd 0.285; FWHM_6564 of the 1.9s: the
            # catalogue stops at 2,000 km/s, so the log-normal whose part above it the catalogue
            # measures (truncated fit: log-mean 3.365, sd 0.229; its raw mean 3.508, sd 0.151), down to
            # 1,000 km/s as in low-luminosity broad-line AGN (Greene & Ho 2007, ApJ 667, 131)
            broad["Halpha"] = hb_n * _ln10(rng, 0.977, 0.285)
            fwhm_ha = _ln10(rng, 3.365, 0.229, 1000.0, 9000.0)
            # a hidden broad-line region replaces the catalogue draw above (made either way, so
            # that the draws after it stay the same)
            if rng.random() < HIDDEN_BLR_SHARE:  # a hidden broad-line region, seen in scattered light
                unobscured = _ln10(rng, *UNOBSCURED_BROAD_NARROW) * oiii * nl["lines"]["Halpha"]
                lo, hi = SCATTERED_FRACTION
                lo = max(lo, detectable_flux(fwhm_ha, p["snr_target"]) / unobscured)  # a 1.9 is seen
                if lo < hi:  # else too faint to be seen at this S/N: the catalogue's 1.9 drawn above
                    p["scattered_fraction"] = 10.0 ** rng.uniform(np.log10(lo), np.log10(hi))
                    broad["Halpha"] = p["scattered_fraction"] * unobscured
                    p["host_fraction"] = float(rng.beta(*HOST_FRACTION["type2"]))
                    p["alpha"], p["ebv_agn"] = _seyfert2_continuum(rng)
        else:
            # catalogue: Fratio_4862 log-mean 0.502, sd 0.422; Fratio_6564 log-mean 1.292, sd 0.297
            # (broad Hα ≥ 2.6 × broad Hβ, Dong et al. 2008); FWHM_6564 log-mean 3.431, sd 0.218 (the
            # truncated fit, as for the 1.9s; raw 3.530, 0.157);
            # FWHM_4862/FWHM_6564 median 0.938 (n = 327), sd 0.15 dex (the catalogue's 0.30 dex
            # includes the errors of weak broad Hβ)
            broad["Hbeta"] = hb_n * _ln10(rng, 0.502, 0.422)
            broad["Halpha"] = max(hb_n * _ln10(rng, 1.292, 0.297), 2.6 * broad["Hbeta"])
            fwhm_ha = _ln10(rng, 3.431, 0.218, 1000.0, 9000.0)
            fwhm_hb = fwhm_ha * _ln10(rng, np.log10(0.938), 0.15, 0.6, 1.5)
            # an intermediate is 1.2–1.8: R = [O III]/Hβ(total) stays above 0.3
            broad["Hbeta"] = min(broad["Hbeta"], oiii / (1.05 * R_THRESHOLDS[0]) - hb_n)
        # Fe II in half of them, weaker than in quasars (R_FeII median 0.25)
        p["feii_ratio"] = _ln10(rng, -0.6, 0.25) if rng.random() < 0.5 else 0.0
    else:
        oiii = _ln10(rng, *SEYFERT_OIII_EW)
        p["feii_ratio"] = 0.0
    p["narrow"] = {k: oiii * v for k, v in nl["lines"].items()}
    hb_n = p["narrow"]["Hbeta"]
    if label == "type1":
        # a luminous quasar stays a study type 1 (subtype 1.0–1.5): R = [O III]/Hβ(total) ≤ 4
        c = R_THRESHOLDS[2] / 1.05
        if oiii > c * (hb_n + broad["Hbeta"]):  # scale the narrow lines by f: f·O3 = c·(f·Hβn + Hβb)
            f = c * broad["Hbeta"] / (oiii - c * hb_n)
            p["narrow"] = {k: v * f for k, v in p["narrow"].items()}
            oiii, hb_n = oiii * f, hb_n * f

    has_broad = broad["Halpha"] > 0
    p["balmer_blend"] = 1.0  # the small blue bump's factor (quasars, below)
    if has_broad:
        hb = broad["Hbeta"]
        # Hγ, Hδ, He lines relative to broad Hβ (Vanden Berk et al. 2001 composite; Case B-like); for
        # quasars He I 5877/Hβ and Hγ/Hβ are fitted (:data:`.quasar.PRIORS`), Hδ keeping its ratio to
        # Hγ; the other He I lines follow He I 5877 (:data:`.agn.HE_I_RATIOS`)
        broad.update(Hgamma=hb * rng.uniform(0.35, 0.5), Hdelta=hb * rng.uniform(0.18, 0.3))
        hei = 10.0 ** rng.normal(*PRIORS["hei_hbeta"]) if label == "type1" else rng.uniform(0.05, 0.12)
        broad.update(HeI_5877=hb * hei, HeII_4687=hb * rng.uniform(0.02, 0.1))
        broad.update({k: broad["HeI_5877"] * r for k, r in HE_I_RATIOS.items()})
        if label == "type1":
            gamma = 10.0 ** rng.normal(*PRIORS["hgamma_hbeta"])
            broad.update(Hgamma=gamma * hb, Hdelta=broad["Hdelta"] * (gamma / broad["Hgamma"] * hb))
        p["high_balmer_scale"] = hb * rng.uniform(0.6, 1.2)  # × Case B, n = 7…50
        # Balmer continuum at the edge per Å, tied to broad Hβ (same gas: Grandi 1982; Dietrich et
        # al. 2002 find it a few tens of per cent of the power law at 3646 Å)
        p["balmer_continuum"] = hb * rng.uniform(0.003, 0.012)
        if label == "type1":  # quasars: a small blue bump of varying strength (:data:`.quasar.PRIORS`):
            # the Balmer continuum and the blended lines above H10 (:data:`.agn.BALMER_BLEND`)
            p["balmer_blend"] = 10.0 ** rng.normal(*PRIORS["blue_bump"])
            p["balmer_continuum"] *= p["balmer_blend"]
        # broad Hβ shift N(+100, 500) km/s (Shen et al. 2016, ApJ 831, 7); in 60 % a second, wider
        # (×1.2–2.2), redshifted N(+400, 1500) km/s component with 10–50 % of the flux (population B
        # red asymmetries, Sulentic et al. 2000, ARA&A 38, 521)
        p["broad_shift"] = float(rng.normal(100.0, 500.0))
        wing = (rng.uniform(0.1, 0.5), rng.uniform(1.2, 2.2), rng.normal(400.0, 1500.0))
        p["broad_wing"] = wing if rng.random() < 0.6 else (0.0, 1.0, 0.0)
        if label == "type1":  # quasars: population A or B profiles (:func:`.quasar.broad_profile`)
            p["broad_wing"] = broad_profile(rng, fwhm_hb)
        # Fe II width ~3/4 of broad Hβ (Hu et al. 2008, ApJ 683, L115), at least its template's
        p["feii_fwhm"] = max((fwhm_hb or fwhm_ha) * rng.uniform(0.7, 1.0), 1000.0)
    else:
        for k in ("Hgamma", "Hdelta", "HeI_5877", "HeII_4687", *HE_I_RATIOS):
            broad[k] = 0.0
        p["high_balmer_scale"] = p["balmer_continuum"] = p["broad_shift"] = 0.0
        p["broad_wing"] = (0.0, 1.0, 0.0)
        p["feii_fwhm"] = 0.0
    p["broad"] = broad
    p["fwhm_broad"], p["fwhm_broad_halpha"] = float(fwhm_hb), float(fwhm_ha)

    r_total = oiii / (hb_n + broad["Hbeta"])
    subtype = winkler_subtype(r_total, broad["Hbeta"] > 0, broad["Halpha"] > 0)
    got = class_of_subtype(subtype, quasar=label == "type1")
    if got != label or (label == "type1" and subtype not in QUASAR_SUBTYPES):
        raise RuntimeError(f"simulate: drew a {label} of subtype {subtype} (R = {r_total:.2f}); a simulator bug")
    p.update(
        subtype=subtype, oiii_hbeta=float(oiii / hb_n), oiii_hbeta_total=float(r_total),
        nii_halpha=nl["nii_ha"], narrow_balmer_decrement=nl["ha_hb"], bpt=nl["bpt"], coronal=nl["coronal"],
        oiii_ew=float(oiii), broad_halpha_hbeta=float(broad["Halpha"] / broad["Hbeta"]) if broad["Hbeta"] > 0 else 0.0,
    )
    return p


def label_sequence(n: int, counts: Mapping[str, int]) -> list[str]:
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


def resolve_counts(n: int, counts: Mapping[str, int] | None) -> dict[str, int]:
    """Spectra per class from ``n`` (the study's shares) or an explicit ``counts`` dict."""
    if counts is None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"simulate: n must be a positive integer, got {n!r}")
        _check_total(int(n))
        labels = label_sequence(int(n), DEFAULT_COUNTS)
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
    _check_total(sum(out.values()))
    return out


def _check_total(total: int) -> None:
    if total > MAX_SPECTRA:
        raise ValueError(
            f"simulate: {total:,} spectra asked for, at most {MAX_SPECTRA:,} per call (10^7 already need "
            f"~80–650 GB of memory); split the work into calls with different seeds"
        )


def resolve_snr(snr) -> tuple[float, float]:
    """(median, sd in dex) of the S/N; sd 0 means fixed at the median.

    Default LN10(log10 22, 0.25) clipped to [3, 100] (median 22, 5–95 % about 8–57), the same for
    all classes: SDSS spectra of the study's kind have continuum S/N ~10–40 per pixel.
    """
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
