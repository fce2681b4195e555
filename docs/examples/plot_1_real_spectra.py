"""
Real SDSS spectra: ingest, classify, explain, baseline, report
===============================================================

The library's stages, in the order ``agnlens`` runs them, on real SDSS spectra. Each stage is
also a command (``agnlens ingest``, ``classify``, ``explain``, ``baseline``, ``report``); the
commands call exactly these functions.
"""

# %%
# Where the spectra come from
# ---------------------------
# Inside a clone of the repository (as when the documentation is built) the example reads the real
# SDSS spectra the repository ships in ``tests/data/sdss`` with their ``labels.csv``. Downloaded on
# its own, it writes a few simulated spectra as SDSS ``spec-*.fits`` files instead
# (``agnlens simulate --fits-dir``), and every score below says SIMULATED.
import tempfile
from pathlib import Path

from agnlens.cli import main

here = Path.cwd().resolve()
clone = [p / "tests" / "data" / "sdss" for p in (here, *here.parents) if (p / "tests/data/sdss/labels.csv").is_file()]
simulated = not clone
folder = Path(tempfile.mkdtemp(prefix="agnlens-example-")) / "sdss" if simulated else clone[0]
if simulated and main(["-q", "simulate", "--n", "40", "--seed", "1", "--fits-dir", str(folder)]) != 0:
    raise RuntimeError(f"agnlens simulate --fits-dir {folder} failed")
files = sorted(folder.rglob("spec-*.fits"))
kind = "SIMULATED" if simulated else "real"
print(f"{len(files)} {kind} SDSS spectra in {folder.name}/")

# %%
# Ingest
# ------
# Read every file (the format is detected from its content), attach the labels of
# ``labels.csv`` by ``spec_id``, shift to the rest frame, resample flux-conservingly onto the
# reference study's grid (3729–5266 Å, 1000 pixels) and normalise by the median flux at
# 5075–5125 Å. A bad file is named with its reason and the batch goes on.
from agnlens.stages import read_files

spectra, summary = read_files(files, labels=folder / "labels.csv", grid="paper")
print("\n".join(summary.lines()))
print(spectra)

# %%
# Classify
# --------
# ``predict`` is the argmax of ``predict_proba``: the class shown is always the most probable.
# The model here is trained in a few seconds on 1,200 **simulated** spectra (linear kernel, C = 10,
# balanced, as the reference study's best model); ``agnlens demo`` tunes it properly.
import numpy as np
import pandas as pd

from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set

train = simulate_set(1200, seed=0, grid="paper")
model = SpectrumSVC(kernel="linear", C=10.0, class_weight="balanced", standardize=True, random_state=0)
model.fit(train.flux, train.labels)
proba = model.predict_proba(spectra.flux)
predicted = model.classes_[proba.argmax(axis=1)]
label = pd.Series(spectra.labels, name="label")
print(pd.crosstab(label, pd.Series(predicted, name="SVM")))

# %%
# Explain
# -------
# The exact gradient of the predicted class's probability with respect to every pixel, for the
# most confident type 1 and the most confident other spectrum.
import matplotlib.pyplot as plt

from agnlens.explain.attribution import saliency

p_type1 = proba[:, list(model.classes_).index("type1")]
rows = [int(np.argmax(p_type1)), int(np.argmin(p_type1))]
sal = saliency(model, spectra[rows], method="gradient")
fig, axes = plt.subplots(2, 1, figsize=(9, 7), layout="constrained")
for i, ax in enumerate(axes):
    sal.plot(i, ax=ax)

# %%
# Which windows carry the saliency: the share of ``|saliency|`` in each line window and band.
from agnlens.explain.linestats import line_table

lines = line_table(sal)
columns = ["line", "class", "mean_saliency", "share_abs"]
top = lines[lines["class"] != "all"].sort_values("share_abs", ascending=False)
print(top[columns].head(10).round(4))

# %%
# Baseline
# --------
# The physics rule beside the SVM: Gaussian fits of narrow and broad Hβ with [O III], then the
# Osterbrock–Winkler rules (Hα is off this grid; the ``balmer`` grid has it).
from agnlens.models.baseline import PhysicsBaseline

baseline = PhysicsBaseline().fit(spectra)
physics = baseline.predict(spectra)
print(pd.crosstab(label, pd.Series(physics, name="baseline")))
print(f"SVM and baseline agree on {np.mean(physics == predicted):.0%} of the spectra")

# %%
# Report
# ------
# :func:`agnlens.report.build_report` makes one self-contained HTML page from a results folder
# (:doc:`/results-layout`); only ``metrics.json`` is required, anything missing is shown as not
# computed. Here: the scores on the labelled real spectra, the predictions and the saliency maps.
import json
import tempfile
from pathlib import Path

from agnlens.atomic import jsonable
from agnlens.models import evaluate
from agnlens.report import build_report

results = Path(tempfile.mkdtemp(prefix="agnlens-docs-")) / "real"
results.mkdir()
scored = np.isin(spectra.labels, model.classes_)
classes = list(model.classes_)
metrics = {
    "dataset": {
        "n_spectra": len(spectra),
        "counts": pd.Series(spectra.labels).value_counts().to_dict(),
        "simulated": simulated,
        "grid": spectra.provenance.get("grid", {}),
    },
    "multiclass": {
        "classes": classes,
        "test": evaluate(spectra.labels[scored], predicted[scored], proba[scored], classes, n_boot=200),
        "n": {"test": int(scored.sum())},
    },
}
(results / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=1))
frame = pd.DataFrame(
    {"spec_id": spectra.spec_id, "label": spectra.labels, "split": "test", "predicted_label": predicted}
)
for k, c in enumerate(classes):
    frame[f"p_{c}"] = proba[:, k]
frame.to_csv(results / "predictions.csv", index=False)
sal.save(results / "saliency")
page = build_report(results)
print(f"{page.name}: {page.stat().st_size // 1024} KiB, from {sorted(p.name for p in results.iterdir())}")
print(json.dumps(jsonable(metrics["multiclass"]["test"]), indent=None)[:300], "...")
