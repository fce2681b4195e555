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


@pytest.fixture(scope="session")
def readme_demo(tmp_path_factory):
    """The README's quick start run once per session, exactly as written (see :mod:`readmedoc`):
    ``agnlens demo --out demo-out`` in a fresh working directory. Returns ``(cwd, run)``; the
    results folder is ``cwd / "demo-out"``. Any test that needs the full study's output reuses it."""
    import readmedoc

    cwd = tmp_path_factory.mktemp("readme-quick-start")
    return cwd, readmedoc.run(readmedoc.quick_start_demo(), cwd)
