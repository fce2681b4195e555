"""The simulated instrument: the SDSS observed pixel grid and its resolution.

Spectra are modelled on the log-λ pixels of the real SDSS files, log10 λ = 3.5562 + 1e-4·i, 4609
pixels (3600–10,400 Å, BOSS's range; 69.03 km/s per pixel; SDSS Legacy files start at 3.5802,
pixel 240 of it), then cut to the range of the real spectrum whose noise they take (Legacy
3800–9200 Å, BOSS 3600–10,400 Å; :mod:`.noise`). The loglam values are float32 so that writing
them as float32 (as SDSS does) round-trips exactly.
"""

from __future__ import annotations

import numpy as np

from agnlens.lines import C_KMS

__all__ = ["DLOGLAM", "KMS_PER_PIXEL", "LOGLAM0", "N_PIX", "REST_LOGLAM", "observed_grid"]

LOGLAM0 = 3.5562
N_PIX = 4609
DLOGLAM = 1e-4
KMS_PER_PIXEL = C_KMS * np.log(10.0) * DLOGLAM  # 69.03 km/s


def observed_grid() -> np.ndarray:
    """The simulator's observed wavelengths (Å), shape (4609,): SDSS log-λ pixels, 3600–10,400 Å."""
    loglam = (LOGLAM0 + DLOGLAM * np.arange(N_PIX)).astype(np.float32)
    return 10.0 ** loglam.astype(np.float64)

#: The rest-frame tables (host templates, dust curves, Balmer continuum, Fe II) share one log-λ
#: grid of the same pixel size, 1500–10,000 Å: a spectrum at redshift z reads them at a constant
#: fractional offset, so one index array per spectrum serves them all.
REST_LOGLAM0 = np.log10(1500.0)
REST_N = int(np.ceil((4.0 - REST_LOGLAM0) / DLOGLAM)) + 1
REST_LOGLAM = REST_LOGLAM0 + DLOGLAM * np.arange(REST_N)
