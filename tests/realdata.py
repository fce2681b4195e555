"""Where the test suite finds real SDSS spectra: the one place every test takes them from.

``tests/data`` holds a curated 19-spectrum subset in the repository (see its README), laid out as
``../shared/data`` is (``sdss/spectra``, ``sdss/labels.csv``, ``sdss-dr7``), so a plain clone runs
every test that needs real spectra. The full 95-spectrum reference sample lives beside the project
in ``../shared/data``; tests that need all of it are marked :data:`needs_full_set` and skip, with
the reason, when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: In-repository real data (always present).
DATA = ROOT / "tests" / "data"
SDSS = DATA / "sdss"
SPECTRA = SDSS / "spectra"
LABELS = SDSS / "labels.csv"
DR7 = DATA / "sdss-dr7" / "spSpec-51993-0542-631.fit"
LEGACY = SPECTRA / "spec-2208-53880-0105.fits"  # Legacy lite, HDU 2 SPECOBJ, type 1
BOSS = SPECTRA / "spec-7184-56629-0734.fits"  # BOSS lite, HDU 2 SPALL, type 1
FULL = SPECTRA / "spec-4414-55882-0184.fits"  # BOSS full (14 HDUs), type 1
LEGACY_FULL = SPECTRA / "spec-0392-51793-0517.fits"  # Legacy full, type 2
N_SPECTRA = 19

#: Real DESI files (see tests/data/desi/README.md): coadds and a spectra file, two with their redrock file.
DESI = DATA / "desi"
DESI_SF = DESI / "coadd-4-80613-thru20210324.fits.gz"  # one star-forming galaxy, z = 0.3687 (redrock beside)
DESI_FAINT = DESI / "coadd-special-dark-27247.fits.gz"  # one faint galaxy, z = 0.0073 (redrock beside)
DESI_HEALPIX = DESI / "coadd-sv3-dark-26065.fits.gz"  # 2 targets, 1 sky, 2 blank; no redshifts
DESI_TILE = DESI / "coadd-5-169-thru20210419.fits.gz"  # 2 targets (one BADPOSITION), 3 blank; no redshifts
DESI_SPECTRA = DESI / "spectra-sv3-dark-26065.fits.gz"  # per-exposure rows, tile-compressed masks
N_DESI_FILES = 7

#: The full reference sample beside the project (absent on a plain clone).
FULL_DATA = ROOT.parent / "shared" / "data"
FULL_SDSS = FULL_DATA / "sdss"
FULL_SPECTRA = FULL_SDSS / "spectra"
FULL_LABELS = FULL_SDSS / "labels.csv"
FULL_N_SPECTRA = 95
HAVE_FULL_SET = FULL_LABELS.is_file() and len(list(FULL_SPECTRA.glob("spec-*.fits"))) == FULL_N_SPECTRA

#: Marks a test that needs the whole 95-spectrum sample.
needs_full_set = pytest.mark.skipif(
    not HAVE_FULL_SET,
    reason="needs the full 95-spectrum SDSS sample in ../shared/data (not beside this clone; "
    "CI has it); the in-repo subset tests/data covers the rest",
)
