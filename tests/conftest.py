"""Suite-wide set-up. Real SDSS spectra come from :mod:`realdata` (this folder is on ``sys.path``
because it holds this conftest, so every test module, ``tests/io`` included, can ``import realdata``)."""

from __future__ import annotations

import pytest

import realdata


@pytest.fixture(scope="session")
def real_labels():
    """The in-repo subset's labels table (``tests/data/sdss/labels.csv``), spec_id as strings."""
    import pandas as pd

    return pd.read_csv(realdata.LABELS, dtype={"spec_id": str})
