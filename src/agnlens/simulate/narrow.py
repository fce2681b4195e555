"""Narrow emission lines: BPT loci, line ratios, reddening, outflow wings, coronal lines.

Every ratio is drawn from a published locus or a measured catalogue; the source is written beside
each number. Fluxes are returned relative to the *observed* (reddened) [O III] 5008, which the
caller scales to its equivalent width.

BPT diagram (x = log [N II] 6585/Hα, y = log [O III] 5008/Hβ; Baldwin, Phillips & Terlevich 1981):

* Kewley et al. (2001, ApJ 556, 121) maximum starburst line y = 0.61/(x − 0.47) + 1.19;
* Kauffmann et al. (2003, MNRAS 346, 1055) pure star-forming line y = 0.61/(x − 0.05) + 1.30;
* Seyfert/LINER: Schawinski et al. (2007, MNRAS 382, 1415) y = 1.05x + 0.45 in the [N II]
  diagram; Kewley et al. (2006, MNRAS 372, 961) y = 1.89 log([S II]/Hα) + 0.76 and
  y = 1.18 log([O I]/Hα) + 1.30 in the [S II] and [O I] diagrams.
"""

from __future__ import annotations

import numpy as np

from agnlens.simulate.dust import cardelli
from agnlens.simulate.quasar import PRIORS

__all__ = ["INNER_NLR", "NARROW_LINES", "SEYFERT_BRANCH", "draw_narrow", "kewley01", "kauffmann03", "schawinski07"]

#: Narrow emission lines (vacuum Å). High-order Balmer lines at Case B.
NARROW_LINES: dict[str, float] = {
    "H12": 3751.22, "H11": 3771.70, "H10": 3798.98, "H9": 3836.47, "H8": 3890.17, "Hepsilon": 3971.20,
    "NeIII_3968": 3968.59, "OII_3727": 3727.09, "OII_3730": 3729.88, "NeIII_3870": 3869.86,
    "Hdelta": 4102.89, "Hgamma": 4341.68, "OIII_4364": 4364.44, "HeII_4687": 4687.02, "Hbeta": 4862.68,
    "OIII_4960": 4960.30, "OIII_5008": 5008.24, "NI_5200": 5200.53, "FeVII_5722": 5722.30, "NII_5756": 5756.24,
    "HeI_5877": 5877.25,
    "FeVII_6088": 6087.98, "OI_6302": 6302.05, "OI_6365": 6365.54, "FeX_6376": 6376.27,
    "NII_6550": 6549.86, "Halpha": 6564.61, "NII_6585": 6585.27, "SII_6718": 6718.29, "SII_6733": 6732.67,
}
#: Case B (T = 10^4 K, n_e = 10^2 cm^-3) Balmer intensities relative to Hβ (Storey & Hummer 1995,
#: MNRAS 272, 41; Osterbrock & Ferland 2006, Table 4.4). Hα/Hβ = 3.1 is the AGN narrow-line-region
#: value (collisional enhancement at the NLR's temperature: Halpern & Steiner 1983; Gaskell &
#: Ferland 1984), used instead of 2.86.
CASE_B = {"Halpha": 3.1, "Hgamma": 0.469, "Hdelta": 0.259, "Hepsilon": 0.159, "H8": 0.105, "H9": 0.0731,
          "H10": 0.0530, "H11": 0.0397, "H12": 0.0305}
_NAMES = tuple(NARROW_LINES)
_K = dict(zip(_NAMES, cardelli(np.array(list(NARROW_LINES.values())))))
_K_HB_HA = _K["Hbeta"] - _K["Halpha"]  # 1.07 for Cardelli R_V = 3.1

#: The intermediate catalogue (scripts/catalogue_line_stats.py on
#: agnlens/data/catalogs/peruzzi_intermediate_seyferts.csv, 521 Seyferts): mean and covariance of
#: log10 ([O III] 5008/Hβn, Hαn/Hβn, [N II] 6585/Hαn), all as observed (reddened).
CATALOGUE_MEAN = np.array([0.601, 0.635, -0.132])
CATALOGUE_COV = np.array([[0.0924, -0.0001, 0.0089], [-0.0001, 0.0095, 0.0005], [0.0089, 0.0005, 0.0413]])


#: The Seyfert branch of the [N II] BPT diagram, (mean, sd) of log [N II] 6585/Hα and log
#: [O III] 5008/Hβ, read off the SDSS loci of Kewley et al. (2006), Fig. 4.
SEYFERT_BRANCH = {"nii_halpha": (0.0, 0.15), "oiii_hbeta_narrow": (0.8, 0.22)}
#: Lines of the dense, high-ionisation inner narrow-line region in Seyferts, (mean, sd) of log10:
#: [Ne III] 3870/[O III] 5008 ≈ 0.1 (Ho 2005; Osterbrock & Ferland 2006); [O III] 4364/5008 at
#: T_e ≈ 1.2–1.6·10^4 K and [N II] 5756/6585 ≈ 0.01–0.03 at the same temperatures (Osterbrock &
#: Ferland 2006); [Fe VII] 6088/[O III] 5008 ≈ 0.01–0.1 where coronal lines show (Murayama &
#: Taniguchi 1998, ApJ 497, L9; Gelbord, Mullaney & Ward 2009, MNRAS 397, 172). Type 1, whose inner
#: region is in view (Nagao, Murayama & Taniguchi 2001, ApJ 549, 155), draw the same ratios around
#: means fitted to real quasars (:data:`agnlens.simulate.quasar.PRIORS`).
INNER_NLR = {"neiii_oiii": (-1.0, 0.15), "oiii_4364": (-1.7, 0.2), "nii_5756": (-1.8, 0.2),
             "fevii_oiii": (-1.6, 0.3)}


def kewley01(x):
    """Kewley et al. (2001) maximum-starburst y(x) on the [N II] BPT diagram (x < 0.47)."""
    return 0.61 / (x - 0.47) + 1.19


def kauffmann03(x):
    """Kauffmann et al. (2003) star-forming boundary y(x) (x < 0.05)."""
    return 0.61 / (x - 0.05) + 1.30


def schawinski07(x):
    """Schawinski et al. (2007) Seyfert/LINER line on the [N II] diagram: Seyferts lie above."""
    return 1.05 * x + 0.45


def _clip(v, lo, hi):
    return float(min(max(v, lo), hi))


def _locus(rng: np.random.Generator, kind: str) -> tuple[float, float, float, float]:
    """(log [N II]/Hα, log [O III]/Hβ, log [S II]/Hα, log [O I]/Hα) on one BPT locus, unreddened.

    Centres and spreads are read off the SDSS loci in Kewley et al. (2006), Figs. 4 and 5
    (Seyfert branch near x ≈ 0, y ≈ 0.8; LINERs near x ≈ 0.1, y ≈ 0.2; composites between the
    Kauffmann 2003 and Kewley 2001 curves); every point is put on the right side of the curves.
    """
    if kind in ("seyfert", "type1"):
        # type 1: the Seyfert branch around the centre where the narrow lines of real broad-line AGN
        # lie (:data:`agnlens.simulate.quasar.PRIORS`, fitted), with the branch's spreads
        centre = PRIORS if kind == "type1" else SEYFERT_BRANCH
        x = _clip(rng.normal(*centre["nii_halpha"]), -0.45, 0.40)
        y = max(rng.normal(*centre["oiii_hbeta_narrow"]), kewley01(x) + 0.1, schawinski07(x) + 0.05)
        y = min(y, 1.35)
        s = min(rng.normal(-0.40, 0.12), (y - 0.76) / 1.89 - 0.02)  # above Kewley 2006 [S II] line
        o = min(rng.normal(-1.15, 0.20), (y - 1.30) / 1.18 - 0.02)  # above Kewley 2006 [O I] line
    elif kind == "liner":
        x = _clip(rng.normal(0.10, 0.15), -0.10, 0.45)
        y = _clip(rng.normal(0.15, 0.15), kewley01(x) + 0.05, schawinski07(x) - 0.05)
        s = max(rng.normal(-0.25, 0.12), (y - 0.76) / 1.89 + 0.02)
        o = max(rng.normal(-0.85, 0.20), (y - 1.30) / 1.18 + 0.02)
    else:  # composite: between Kauffmann 2003 and Kewley 2001
        x = _clip(rng.normal(-0.30, 0.08), -0.5, -0.08)
        # the Kauffmann curve plunges towards its asymptote at x = 0.05 (y = −3.4 at x = −0.08);
        # the observed composites stay above y ≈ −0.5 (Kewley et al. 2006, Fig. 4), so does the draw
        lo, hi = max(kauffmann03(x), -0.5), kewley01(x)
        y = lo + rng.uniform(0.1, 0.9) * (hi - lo)
        s = rng.normal(-0.45, 0.10)
        o = rng.normal(-1.40, 0.20)
    return x, float(y), float(s), float(o)


def draw_narrow(rng: np.random.Generator, kind: str) -> dict:
    """Narrow-line fluxes relative to the observed [O III] 5008 (= 1), and their reddening.

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : {"seyfert", "type1", "liner", "composite", "catalogue"}
        A BPT locus (``"type1"``: the Seyfert branch centred where real type 1 lie), or
        ``"catalogue"``: a joint draw of the intermediate catalogue's log-normal ([O III]/Hβn,
        Hαn/Hβn, [N II]/Hαn), whose Hα/Hβ then sets the reddening.

    Returns
    -------
    dict
        ``lines`` (name → flux relative to [O III] 5008, reddened), ``ebv`` (E(B−V) of the
        narrow-line gas, Cardelli law), ``oiii_hbeta`` (observed [O III] 5008 / Hβn), ``nii_ha``,
        ``ha_hb`` (observed narrow Balmer decrement), ``bpt`` (``kind``), ``wing`` (share,
        FWHM factor, velocity in km/s of the outflow wing shared by every narrow line; share 0 when
        none), ``coronal``.
    """
    # Narrow Balmer decrement: log10 Hα/Hβ ~ N(0.635, 0.097), the catalogue's (median 4.3);
    # E(B−V) = 2.5 / (k(Hβ) − k(Hα)) · log10(D / 3.1), 0 if D < 3.1.
    if kind == "catalogue":
        lo3, lha, lnii = rng.multivariate_normal(CATALOGUE_MEAN, CATALOGUE_COV)
        ebv = max(2.5 / _K_HB_HA * (lha - np.log10(CASE_B["Halpha"])), 0.0)
        # unredden the observed ratios to intrinsic ones (the [N II]/Hα pair is ~unaffected)
        lo3 += 0.4 * ebv * (_K["OIII_5008"] - _K["Hbeta"])
        y, x = lo3, lnii
        s = min(rng.normal(-0.40, 0.12), (y - 0.76) / 1.89 - 0.02)
        o = min(rng.normal(-1.15, 0.20), (y - 1.30) / 1.18 - 0.02)
    else:
        x, y, s, o = _locus(rng, kind)
        ebv = max(2.5 / _K_HB_HA * (rng.normal(0.635, 0.097) - np.log10(CASE_B["Halpha"])), 0.0)
    hb = 1.0
    oiii = 10.0**y * hb
    ha = CASE_B["Halpha"] * hb
    seyfert = kind in ("seyfert", "type1", "catalogue")
    # [O II] 3727+3730 / [O III] 5008: Seyferts ~0.1–0.5, LINERs > 1 (Ho 2005, ApJ 629, 680)
    oii = oiii * 10.0 ** rng.normal(-0.6 if seyfert else 0.1, 0.2)
    oii_ratio = rng.uniform(0.7, 1.3)  # 3727/3730: n_e ~ 10^2–10^3.5 cm^-3 (Osterbrock & Ferland 2006)
    sii_ratio = rng.uniform(0.8, 1.4)  # 6718/6733, same densities
    inner = PRIORS if kind == "type1" else INNER_NLR  # the inner narrow-line region's lines
    neiii = oiii * 10.0 ** rng.normal(*inner["neiii_oiii"])
    lines = {
        "OII_3727": oii * oii_ratio / (1 + oii_ratio), "OII_3730": oii / (1 + oii_ratio),
        "NeIII_3870": neiii, "NeIII_3968": neiii / 3.32,  # transition probabilities
        **{k: v * hb for k, v in CASE_B.items()},
        "OIII_4364": oiii * 10.0 ** rng.normal(*inner["oiii_4364"]),
        # He II 4687/Hβ: 0.1–0.35 in Seyferts, below 0.1 otherwise (Shirazi & Brinchmann 2012)
        "HeII_4687": hb * (rng.uniform(0.1, 0.35) if seyfert else rng.uniform(0.02, 0.1)),
        "Hbeta": hb, "OIII_4960": oiii / 2.98, "OIII_5008": oiii,  # 2.98: Storey & Zeippen 2000
        "HeI_5877": hb * rng.uniform(0.08, 0.15),  # Case B ≈ 0.1 (Osterbrock & Ferland 2006)
        # [N I] 5198+5200 / Hβ ≈ 0.05–0.15 in Seyferts, stronger in LINERs (Ho, Filippenko & Sargent 1997)
        "NI_5200": hb * 10.0 ** rng.normal(-1.1 if seyfert else -0.7, 0.2),
        "OI_6302": ha * 10.0**o, "OI_6365": ha * 10.0**o / 3.0,
        "NII_6550": ha * 10.0**x / 3.05, "NII_6585": ha * 10.0**x,
        "NII_5756": ha * 10.0**x * 10.0 ** rng.normal(*inner["nii_5756"]),
        "SII_6718": ha * 10.0**s * sii_ratio / (1 + sii_ratio), "SII_6733": ha * 10.0**s / (1 + sii_ratio),
    }
    # Coronal lines in ~30 % of Seyferts, in every type 1 (Murayama & Taniguchi 1998: [Fe VII] is
    # stronger in type 1)
    coronal = kind == "type1" or (seyfert and rng.random() < 0.3)
    fe7 = oiii * 10.0 ** rng.normal(*inner["fevii_oiii"])
    fe10 = fe7 * rng.uniform(0.2, 1.0)
    lines.update(FeVII_6088=fe7 if coronal else 0.0, FeVII_5722=0.6 * fe7 if coronal else 0.0,
                 FeX_6376=fe10 if coronal else 0.0)
    # redden (screen, Cardelli R_V = 3.1), normalise to the observed [O III] 5008
    red = {k: v * 10.0 ** (-0.4 * ebv * _K[k]) for k, v in lines.items()}
    o3 = red["OIII_5008"]
    red = {k: v / o3 for k, v in red.items()}
    # Outflow wings: ~40 % of AGN need a second, broader, blueshifted component in [O III] carrying
    # 20–50 % of the flux, FWHM ~2–4× the core, −50 to −400 km/s (Mullaney et al. 2013, MNRAS 433, 622);
    # the same wing on every narrow line (one narrow-line region: in type 1.8–2 Seyferts the wings of
    # Hβ, [O III], Hα, [N II] and [S II] share their widths and shifts, Kovačević-Dojčinović et al.
    # 2022, A&A 659, A130)
    wing = (rng.uniform(0.15, 0.45), rng.uniform(2.0, 4.0), -rng.uniform(50.0, 400.0))
    has_wing = rng.random() < 0.4
    return {
        "lines": red, "ebv": float(ebv), "oiii_hbeta": float(1.0 / red["Hbeta"]),
        "nii_ha": float(red["NII_6585"] / red["Halpha"]), "ha_hb": float(red["Halpha"] / red["Hbeta"]),
        "bpt": kind, "wing": wing if has_wing else (0.0, *wing[1:]), "coronal": bool(coronal),
    }
