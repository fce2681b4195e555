"""Issue 23 ("trust at the edges"): flag rates of the default models, measured.

Usage (from the project root)::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/check_edges.py real [--data ../shared/data/sdss]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/check_edges.py sim [--n 600] [--seed 12345]

``real``: the shared real spectra through the classify stage with the physics measurements
(``agnlens classify DIR --labels CSV --measure``): per label, how many are flagged and by which
code, and the status of the three type-2-like ambiguous spectra at z > 0.37.

``sim``: held-out SIMULATED spectra (``simulate_set(n, seed=..., grid="balmer", redshift="full",
convention="spectroscopic")``, a seed the default model never trained on) classified by the
default balmer model with ``measure=True``: the share flagged, per code, split into flags on
correct and on wrong predictions. ``--csv`` keeps the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "sdss"
#: issue 23: type-2-like ambiguous spectra at z > 0.37 that the SVM calls type 1
AMBIGUOUS = ("2347-53757-0513", "9616-58135-0154", "9626-57875-0651")


def _codes(flags: pd.Series) -> dict[str, int]:
    codes = [c for f in flags for c in str(f).split(";") if c]
    return {k: int(v) for k, v in pd.Series(codes, dtype=str).value_counts().items()}


def real_part(data: Path) -> int:
    import tempfile

    from agnlens.cli import main as agnlens

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "real.csv"
        agnlens(["--quiet", "classify", str(data / "spectra"), "--labels", str(data / "labels.csv"), "--measure",
                 "--out", str(out)])
        table = pd.read_csv(out, dtype={"spec_id": str})
    table["flags"] = table["flags"].fillna("")
    rows = []
    for label, sub in table.groupby("label"):
        bad = sub["flags"] != ""
        rows.append({"label": label, "n": len(sub), "flagged": int(bad.sum()), "by code": _codes(sub["flags"])})
    print(pd.DataFrame(rows).to_string(index=False))
    print()
    cols = ["spec_id", "label", "predicted_label", "p_type1", "baseline_label", "hb_delta_bic", "ha_delta_bic", "flags"]
    print(table.loc[table["spec_id"].isin(AMBIGUOUS), cols].to_string(index=False))
    type1 = table[table["label"] == "type1"]
    agn = table[table["label"].isin(["type1", "type2", "intermediate"])]
    checks = [
        (table.loc[table["spec_id"].isin(AMBIGUOUS), "flags"].ne("").sum() == len(AMBIGUOUS),
         "three ambiguous flagged"),
        ((type1["flags"] != "").mean() <= 0.10, f"type 1 flagged {(type1['flags'] != '').sum()}/{len(type1)} ≤ 10 %"),
        (not agn["flags"].str.contains("not-agn").any(), "no labelled AGN not-agn"),
        ((table.loc[table["label"] == "non-agn", "flags"] != "").all(), "every non-AGN flagged"),
    ]
    for ok, text in checks:
        print(f"  {'ok     ' if ok else 'NOT MET'}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


def sim_part(n: int, seed: int, csv: Path | None) -> int:
    from agnlens.models.default import resolve_models
    from agnlens.simulate import simulate_set
    from agnlens.stages import classify
    from agnlens.stages.loading import model_for_grid

    spectra = simulate_set(n, seed=seed, grid="balmer", redshift="full", convention="spectroscopic")
    model, _ = model_for_grid(resolve_models(None), "balmer")
    table = classify(model, spectra, measure=True)
    table["truth"] = np.asarray(spectra.labels).astype(str)
    if csv is not None:
        table.to_csv(csv, index=False)
    flags = table["flags"].fillna("")
    right = table["predicted_label"].to_numpy() == table["truth"].to_numpy()
    print(f"SIMULATED held-out, n {n}, seed {seed}: accuracy {right.mean():.1%}; any flag {(flags != '').mean():.2%} "
          f"({(flags != '').sum()}): on correct predictions {((flags != '') & right).sum()}, "
          f"on wrong ones {((flags != '') & ~right).sum()}")
    for code, _ in sorted(_codes(flags).items(), key=lambda kv: -kv[1]):
        on = flags.str.contains(code, regex=False).to_numpy()
        print(f"  {code:20s} {on.mean():6.2%}  correct {(on & right).sum():3d}  wrong {(on & ~right).sum():3d}  "
              f"truth {table.loc[on, 'truth'].value_counts().to_dict()}")
    pd_type2 = flags.str.contains("physics-disagrees", regex=False).to_numpy() & (
        table["predicted_label"] == "type2").to_numpy()
    print(f"  type 2 calls flagged physics-disagrees: {pd_type2.sum()}, wrong {(pd_type2 & ~right).sum()}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("real", "sim"))
    parser.add_argument("--data", type=Path, default=DATA, help="folder with spectra/ and labels.csv")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--csv", type=Path, default=None, help="write the simulated table here")
    args = parser.parse_args(argv)
    return real_part(args.data) if args.part == "real" else sim_part(args.n, args.seed, args.csv)


if __name__ == "__main__":
    sys.exit(main())
