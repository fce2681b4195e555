"""
specutils in and out
====================

Hand agnlens a :class:`specutils.Spectrum` (or ``Spectrum1D``, or a list of them) and get the
saliency back as a specutils spectrum on the model's grid. Needs ``pip install 'agnlens[specutils]'``.
"""

# %%
# Read a real spectrum with specutils' own SDSS loader
# ----------------------------------------------------
# specutils keeps no redshift from the file: give it one (here from ``labels.csv``). Inside a
# clone of the repository the spectrum is one of the real SDSS files in ``tests/data/sdss``;
# downloaded on its own, the example writes simulated ones in the same format
# (``agnlens simulate --fits-dir``).
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from astropy.units import UnitsWarning

from agnlens.cli import main
from agnlens.io import as_spectrum_set, from_specutils, to_specutils
from agnlens.io.specutils import specutils_class

here = Path.cwd().resolve()
clone = [p / "tests" / "data" / "sdss" for p in (here, *here.parents) if (p / "tests/data/sdss/labels.csv").is_file()]
folder = clone[0] if clone else Path(tempfile.mkdtemp(prefix="agnlens-example-")) / "sdss"
if not clone and main(["-q", "simulate", "--n", "40", "--seed", "1", "--fits-dir", str(folder)]) != 0:
    raise RuntimeError(f"agnlens simulate --fits-dir {folder} failed")
catalog = pd.read_csv(folder / "labels.csv", dtype={"spec_id": str}).set_index("spec_id")
type1 = catalog.index[catalog["label"] == "type1"]  # a type 1 from the catalogue
path = next(folder.rglob(f"spec-{type1[0]}.fits"))
with warnings.catch_warnings():  # the SDSS header's unit string is not FITS-standard
    warnings.simplefilter("ignore", UnitsWarning)
    spec = specutils_class().read(path, format="SDSS-III/IV spec")
spec_id = from_specutils(spec).spec_id
spec.set_redshift_to(float(catalog.loc[spec_id, "z"]))
print(spec_id, spec.flux.unit, type(spec.uncertainty).__name__, f"z = {float(spec.redshift):.4f}")

# %%
# The three lines
# ---------------
from agnlens.explain.attribution import saliency
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set

train = simulate_set(1200, seed=0, grid="paper")  # SIMULATED training spectra
model = SpectrumSVC(kernel="linear", C=10.0, class_weight="balanced", standardize=True, random_state=0)
model.fit(train.flux, train.labels)
sal = saliency(model, spec)  # classify + explain, on the model's grid
out = sal.to_specutils()  # a specutils Spectrum: saliency on the rest-frame grid
print(f"predicted {sal.predicted[0]} (p = {sal.p_target[0]:.2f});", out.flux.shape, out.spectral_axis.unit)

# %%
# Plot the saliency spectrum beside the preprocessed flux
import matplotlib.pyplot as plt

fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 5), layout="constrained")
top.plot(sal.wavelength, sal.flux[0], lw=0.7, color="k")
top.set_ylabel("normalised flux")
bottom.plot(out.spectral_axis.value, out.flux[0].value, lw=0.7)
bottom.axhline(0, color="0.6", lw=0.5)
bottom.set(xlabel="rest wavelength (Å)", ylabel=f"∂p({sal.target[0]})/∂flux")

# %%
# And back: agnlens containers to specutils and a lossless round trip
import numpy as np

ours = from_specutils(to_specutils(from_specutils(spec)))
print("round trip exact:", np.array_equal(ours.flux, spec.flux.value))
spectra = as_spectrum_set([spec], grid="paper")  # what every stage calls on its input
print(spectra)
