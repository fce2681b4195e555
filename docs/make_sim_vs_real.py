"""Make docs/sim_vs_real.png: real SDSS spectra beside simulated ones of the same class, S/N and z.

Run from the project root:  python docs/make_sim_vs_real.py

For each class (type 1, type 2, intermediate) the left panel shows real spectra from
``../shared/data/sdss`` (labels in its ``labels.csv``; only 2 real type 2 and 3 intermediate
spectra exist there, so all of them are used) and the right panel simulated spectra with the same
redshift and S/N (``agnlens.simulate.simulate`` with ``snr`` = the real median S/N in rest
4800–6600 Å). All are shifted to the rest frame and divided by their flux at 5100 Å.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from agnlens.io.sdss import read_sdss
from agnlens.plot.embedding import CLASS_COLOURS, CLASS_NAMES
from agnlens.plot.spectra import plot_spectra
from agnlens.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "sdss"
OUT = ROOT / "docs" / "sim_vs_real.png"
N_TYPE1 = 4  # real type 1 spectra shown (of 78): spread over the S/N range
XLIM = (3700.0, 6800.0)


def pick(labels: pd.DataFrame, label: str) -> pd.DataFrame:
    rows = labels[labels["label"] == label].sort_values("median_snr_4800_6600")
    if len(rows) > N_TYPE1:
        idx = [round(q * (len(rows) - 1)) for q in (0.1, 0.4, 0.7, 0.95)]
        rows = rows.iloc[idx]
    return rows


def main() -> int:
    labels = pd.read_csv(DATA / "labels.csv")
    fig = Figure(figsize=(12.0, 13.0), layout="constrained")
    axes = fig.subplots(3, 2, sharex=True)
    for row, label in enumerate(("type1", "type2", "intermediate")):
        chosen = pick(labels, label)
        real = [read_sdss(DATA / f) for f in chosen["file"]]
        sims = []
        for k, (_, r) in enumerate(chosen.iterrows()):
            z = float(r["z"])
            sims += simulate(counts={label: 1}, seed=100 + 10 * row + k, snr=float(r["median_snr_4800_6600"]),
                             redshift=(z, z))
        real_text = [f"{r.spec_id}  z={r.z:.3f}  S/N={r.median_snr_4800_6600:.0f}" for r in chosen.itertuples()]
        sim_text = [
            f"sim {s.meta['subtype']}  z={s.z:.3f}  S/N={s.meta['snr_target']:.0f}"
            + (f"  FWHM={s.meta['fwhm_broad']:.0f}" if s.meta["fwhm_broad"] else "")
            for s in sims
        ]
        colour = CLASS_COLOURS[label]
        name = CLASS_NAMES[label]
        plot_spectra(real, ax=axes[row, 0], labels=real_text, colors=colour, xlim=XLIM,
                     title=f"real SDSS {name} ({len(real)} of {int((labels['label'] == label).sum())})")
        plot_spectra(sims, ax=axes[row, 1], labels=sim_text, colors=colour, xlim=XLIM,
                     title=f"SIMULATED {name}, same z and S/N")
        for ax in axes[row]:
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_size(8)
            ax.yaxis.label.set_size(8)
    fig.suptitle("Real SDSS spectra (left) and agnlens simulated spectra (right), rest frame, "
                 "normalised at 5100 Å", fontsize=10)
    fig.savefig(OUT, dpi=72)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
