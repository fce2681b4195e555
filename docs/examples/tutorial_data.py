"""Where the documentation's examples find their spectra — the one place to switch it.

In order of preference:

1. ``../shared/data/sdss`` beside the project: the 95 real SDSS spectra with ``labels.csv``;
2. ``tests/data/sdss`` in the repository: its own small set of real spectra;
3. neither: a few simulated spectra written as SDSS ``spec-*.fits`` files by
   ``agnlens simulate --fits-dir`` (labelled simulated wherever a score is shown).

Set ``AGNLENS_DOCS_SPECTRA`` to a folder with ``labels.csv`` and the spectra to use other spectra,
or to ``simulated`` to force the third choice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT.parent / "shared" / "data" / "sdss", ROOT / "tests" / "data" / "sdss"]


def spectra_folder() -> tuple[Path, bool]:
    """Return ``(folder, simulated)``: a folder holding ``labels.csv`` and the spectra it lists."""
    chosen = os.environ.get("AGNLENS_DOCS_SPECTRA", "")
    candidates = [] if chosen == "simulated" else ([Path(chosen)] if chosen else []) + CANDIDATES
    for folder in candidates:
        if (folder / "labels.csv").is_file():
            return folder, False
    from agnlens.cli import main

    out = Path(tempfile.mkdtemp(prefix="agnlens-docs-")) / "sdss"
    status = main(["-q", "simulate", "--n", "40", "--seed", "1", "--fits-dir", str(out)])
    if status != 0:
        raise RuntimeError(f"agnlens simulate --fits-dir {out} failed with status {status}")
    return out, True


_MODEL = None


def small_model():
    """A three-class SpectrumSVC trained on 1,200 **simulated** spectra (linear kernel, C = 10,
    balanced, as the reference study's best model), built once per documentation build."""
    global _MODEL
    if _MODEL is None:
        from agnlens.models.svm import SpectrumSVC
        from agnlens.simulate import simulate_set

        train = simulate_set(1200, seed=0, grid="paper")
        _MODEL = SpectrumSVC(kernel="linear", C=10.0, class_weight="balanced", standardize=True, random_state=0)
        _MODEL.fit(train.flux, train.labels)
    return _MODEL
