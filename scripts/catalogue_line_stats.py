"""Print the intermediate-Seyfert catalogue statistics that ``agnlens.simulate.parameters`` uses.

Source: ``../shared/data/catalogs/peruzzi_intermediate_seyferts.csv`` — 521 intermediate-type
Seyferts (SDSS DR7, 0.02 < z < 0.10) of the Padova group used by Peruzzi et al. (2021, A&A 652,
A19), with flux ratios relative to narrow Hβ (``Fratio_*``) and FWHMs (km/s); −999 = not
measured. A published catalogue, not the labels of ``../shared/data/sdss``.

Usage (from the project root)::

    python scripts/catalogue_line_stats.py [CSV]

The numbers are copied by hand into ``src/agnlens/simulate/parameters.py`` (next to each
distribution), so the package never reads the catalogue at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs" / "peruzzi_intermediate_seyferts.csv"


def main(path: str = str(CSV)) -> int:
    d = pd.read_csv(path).replace(-999.0, np.nan)
    n = len(d)
    print(f"{n} objects")
    ok = d[["Fratio_5007", "Fratio_6563", "Fratio_6584"]].gt(0).all(axis=1)
    o3, ha, n2 = (d.loc[ok, f"Fratio_{line}"] for line in (5007, 6563, 6584))
    x = np.log10(np.c_[o3, ha, n2 / ha])
    print(f"log10 ([OIII]/Hbn, Han/Hbn, [NII]/Han), n = {ok.sum()}: mean {np.round(x.mean(0), 3).tolist()}")
    print(f"  covariance {np.round(np.cov(x.T), 4).tolist()}")
    has_hb = d["Fratio_4862"] > 0
    print(f"broad Hbeta measured: {has_hb.mean():.3f} (n = {has_hb.sum()})")
    print(f"log10 Fratio_4862 (broad Hb / narrow Hb): mean {np.log10(d.loc[has_hb, 'Fratio_4862']).mean():.3f}, "
          f"sd {np.log10(d.loc[has_hb, 'Fratio_4862']).std():.3f}")
    for name, sel in (("with broad Hb", has_hb), ("without (1.9)", ~has_hb)):
        v = np.log10(d.loc[sel & (d["Fratio_6564"] > 0), "Fratio_6564"])
        print(f"log10 Fratio_6564 (broad Ha / narrow Hb), {name}: mean {v.mean():.3f}, sd {v.std():.3f}, n {v.size}")
    v = np.log10(d.loc[d["FWHM_6564"] > 0, "FWHM_6564"])
    print(f"log10 FWHM_6564 (broad Ha): mean {v.mean():.3f}, sd {v.std():.3f}, n {v.size}; "
          f"1/5/50 % {np.round(10 ** np.percentile(v, [1, 5, 50])).tolist()}")
    # the catalogue stops at 2,000 km/s: the log-normal whose part above it the catalogue measures
    for name, sel in (("with broad Hb", has_hb), ("without (1.9)", ~has_hb)):
        mu, sd = _truncated_lognormal(np.log10(d.loc[sel & (d["FWHM_6564"] > 0), "FWHM_6564"]), np.log10(1990.0))
        print(f"log10 FWHM_6564, {name}, truncated below 1,990 km/s: log-mean {mu:.3f}, sd {sd:.3f}")
    both = (d["FWHM_4862"] > 0) & (d["FWHM_6564"] > 0)
    r = np.log10(d.loc[both, "FWHM_4862"] / d.loc[both, "FWHM_6564"])
    print(f"FWHM(Hb broad)/FWHM(Ha broad): median {10 ** r.median():.3f}, log sd {r.std():.3f}, n {both.sum()}")
    for col in ("FWHM_4861", "FWHM_5007"):
        v = np.log10(d.loc[d[col] > 0, col])
        print(f"log10 {col} (narrow): mean {v.mean():.3f}, sd {v.std():.3f}")
    return 0


def _truncated_lognormal(v, lo: float) -> tuple[float, float]:
    """Maximum-likelihood (mean, sd) of a normal seen only above ``lo``."""
    from scipy import optimize, stats

    v = np.asarray(v, dtype=float)

    def nll(p):
        mu, sd = p[0], np.exp(p[1])
        return -(stats.norm.logpdf(v, mu, sd).sum() - v.size * stats.norm.logsf(lo, mu, sd))

    fit = optimize.minimize(nll, [v.mean(), np.log(v.std())], method="Nelder-Mead")
    return float(fit.x[0]), float(np.exp(fit.x[1]))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
