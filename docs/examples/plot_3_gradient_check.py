"""
The exact gradient against finite differences
=============================================

Saliency in agnlens is the closed-form derivative of a class probability with respect to every
pixel. Here it is checked against central finite differences of ``predict_proba`` for the three
kernels, as the test suite does — see :doc:`/saliency` for the formulas.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from agnlens.explain.gradient import finite_difference_gradient, proba_gradient, verify
from agnlens.models.svm import SpectrumSVC
from agnlens.simulate import simulate_set

train = simulate_set(240, seed=3, grid="paper")  # SIMULATED spectra
check = train.flux[:3].astype(np.float64)
models = {
    "linear": SpectrumSVC(kernel="linear", C=1.0, standardize=True, random_state=0),
    "rbf": SpectrumSVC(kernel="rbf", C=10.0, standardize=True, random_state=0),
    "poly": SpectrumSVC(kernel="poly", degree=2, C=1.0, standardize=True, random_state=0),
}
for name, model in models.items():
    model.fit(train.flux, train.labels)
    report = verify(model, check)
    print(f"{name:>6}: max relative error {report['max_rel_error']:.1e}, mean {report['mean_rel_error']:.1e}")

# %%
# The two gradients of the RBF model, pixel by pixel
model = models["rbf"]
exact = proba_gradient(model, check[:1])[0]
numeric = finite_difference_gradient(model, check[:1])[0]
fig, ax = plt.subplots(figsize=(9, 3.5), layout="constrained")
ax.plot(train.wavelength, numeric, lw=3, color="0.75", label="central finite differences")
ax.plot(train.wavelength, exact, lw=0.8, color="C3", label="exact gradient")
ax.set(xlabel="rest wavelength (Å)", ylabel="∂p/∂flux")
ax.legend()
