"""agnlens: classify AGN optical spectra and explain every decision.

The package is organised as a one-way flow of stages::

    spectra, lines, grid -> io -> preprocess -> models / explain / embed -> plot -> report -> pipeline -> cli
"""

from agnlens._version import __version__
from agnlens.errors import AgnlensError, AgnlensWarning, ReadError, RejectedSpectrum
from agnlens.grid import Grid
from agnlens.spectra import Spectrum, SpectrumSet

__all__ = [
    "AgnlensError",
    "AgnlensWarning",
    "Grid",
    "ReadError",
    "RejectedSpectrum",
    "Spectrum",
    "SpectrumSet",
    "__version__",
]
