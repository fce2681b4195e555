"""Safe model files: skops (never pickle), with provenance, an integrity hash and a type allow-list.

A model file is the zip archive that ``skops.io.dumps(model)`` produces plus one extra member,
``agnlens.json``, holding the metadata: the format marker ``agnlens_model_format: 1``, task,
classes, grid, preprocessing provenance, split seed and sizes, training-data hash, tuning table,
scores, package versions, and ``payload_sha256`` — the SHA-256 of every skops member (name and
bytes, in name order). :func:`load_model` refuses a file that is not a zip, lacks the marker, whose
payload hash does not match (tampered) or that holds a type outside :data:`ALLOWED_TYPES`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import platform
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from agnlens.atomic import atomic_path, jsonable
from agnlens.errors import ModelFileError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
METADATA_MEMBER = "agnlens.json"
#: Types a model file may contain beyond what skops trusts by default (checked on load).
ALLOWED_TYPES = frozenset(
    {
        "agnlens.models.svm.SpectrumSVC",
        "agnlens.models.domain.TrainingDomain",
        "sklearn.preprocessing._data.StandardScaler",
    }
)


def training_data_hash(X, y) -> str:
    """``"sha256:<hex>"`` of the training flux bytes (float32, C order) and the labels.

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_pixels)
    y : array-like of shape (n_spectra,)
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(X, dtype=np.float32)).tobytes())
    h.update("\n".join(map(str, np.asarray(y).tolist())).encode())
    return "sha256:" + h.hexdigest()


def _payload_hash(zf: zipfile.ZipFile) -> str:
    h = hashlib.sha256()
    for name in sorted(n for n in zf.namelist() if n != METADATA_MEMBER):
        h.update(name.encode() + b"\0")
        h.update(zf.read(name))
    return "sha256:" + h.hexdigest()



def package_versions() -> dict[str, str]:
    """Versions of the packages a model depends on."""
    import scipy
    import skops
    import sklearn

    from agnlens import __version__

    return {
        "agnlens": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "python": platform.python_version(),
    }


def save_model(model, path, *, metadata: dict) -> Path:
    """Write a fitted model and its metadata to ``path`` atomically.

    Parameters
    ----------
    model : SpectrumSVC
        A fitted model.
    path : str or Path
        Target file (``.skops`` by convention).
    metadata : dict
        Provenance to carry: ``grid`` (``SpectrumSet.provenance["grid"]``), ``preprocessing``,
        ``split_seed``, ``split_sizes``, ``data_hash``, ``tuning`` (table records), ``validation``
        and ``test`` scores... Anything JSON-able (numpy values are converted). ``task``
        ("binary"|"multiclass", default from the number of classes), ``classes``, ``versions``,
        ``agnlens_model_format`` and ``payload_sha256`` are filled in.

    Returns
    -------
    Path
    """
    import skops.io as sio

    from agnlens.models.svm import SpectrumSVC

    if not isinstance(model, SpectrumSVC) or not hasattr(model, "classes_"):
        raise TypeError(f"save_model needs a fitted SpectrumSVC, got {type(model).__name__}")
    if not isinstance(metadata, dict):
        raise TypeError(f"save_model: metadata must be a dict, got {type(metadata).__name__}")
    path = Path(path)
    payload = sio.dumps(model)
    buf = io.BytesIO(payload)
    with zipfile.ZipFile(buf) as zf:
        digest = _payload_hash(zf)
    meta = jsonable(dict(metadata))
    meta.setdefault("task", "binary" if len(model.classes_) == 2 else "multiclass")
    meta["classes"] = jsonable(list(model.classes_))
    meta["versions"] = {**package_versions(), **(meta.get("versions") or {})}
    meta["agnlens_model_format"] = FORMAT_VERSION
    meta["payload_sha256"] = digest
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(METADATA_MEMBER, text)
    log.info("model written to %s", path)
    return path


def read_metadata(path) -> dict:
    """Metadata of a model file, after checking the format marker and the payload hash."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not an agnlens model file (not a skops zip archive: {exc})") from None
    with zf:
        names = zf.namelist()
        if METADATA_MEMBER not in names or "schema.json" not in names:
            raise ModelFileError(
                f"{path}: not an agnlens model file (no {METADATA_MEMBER} / schema.json); "
                "save models with agnlens.models.persistence.save_model or `agnlens train`"
            )
        try:
            meta = json.loads(zf.read(METADATA_MEMBER))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path}: unreadable agnlens metadata ({exc})") from None
        if not isinstance(meta, dict) or meta.get("agnlens_model_format") != FORMAT_VERSION:
            found = meta.get("agnlens_model_format") if isinstance(meta, dict) else None
            raise ModelFileError(
                f"{path}: agnlens_model_format is {found!r}, expected {FORMAT_VERSION}; "
                "retrain the model with this version of agnlens (`agnlens train`)"
            )
        if _payload_hash(zf) != meta.get("payload_sha256"):
            raise ModelFileError(
                f"{path}: the model payload does not match its recorded SHA-256 — the file was "
                "tampered with or corrupted; do not use it, retrain or restore it"
            )
    return meta


def load_model(path) -> tuple[Any, dict]:
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    model : SpectrumSVC
    metadata : dict

    Raises
    ------
    ModelFileError
        The file is missing, not a zip/skops file, not ours (no format marker), tampered with
        (payload hash mismatch) or holds types outside :data:`ALLOWED_TYPES`.
    """
    import skops.io as sio

    from agnlens.models.svm import SpectrumSVC

    path = Path(path)
    meta = read_metadata(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises various errors on a malformed schema
        raise ModelFileError(f"{path}: unreadable skops payload ({type(exc).__name__}: {exc})") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ModelFileError(
            f"{path}: holds types outside agnlens's allow-list: {refused}; refusing to load it "
            "(only agnlens SpectrumSVC models are accepted)"
        )
    try:
        model = sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ModelFileError(f"{path}: the skops payload could not be loaded ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, SpectrumSVC):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, expected an agnlens SpectrumSVC")
    return model, meta


def check_grid(metadata: dict, spectra) -> None:
    """Refuse spectra that are not on the grid the model was trained on.

    Parameters
    ----------
    metadata : dict
        From :func:`load_model`.
    spectra : SpectrumSet

    Raises
    ------
    ModelFileError
        With the two grids and how to fix it (re-ingest with ``--grid NAME``).
    """
    grid = metadata.get("grid")
    if not isinstance(grid, dict) or "n_pixels" not in grid:
        raise ModelFileError(
            "the model file records no wavelength grid, so its spectra cannot be checked; retrain it "
            "with `agnlens train`"
        )
    wl = np.asarray(spectra.wavelength, dtype=np.float64)
    name = grid.get("name", "?")
    here = f"grid {spectra.grid!r} ({wl.size} px {wl[0]:.1f}–{wl[-1]:.1f} Å)" if wl.size else "an empty grid"
    there = f"grid {name!r} ({grid['n_pixels']} px {grid['lo']:.1f}–{grid['hi']:.1f} Å)"
    same = (
        wl.size == int(grid["n_pixels"])
        and math.isclose(wl[0], float(grid["lo"]), rel_tol=1e-9, abs_tol=1e-6)
        and math.isclose(wl[-1], float(grid["hi"]), rel_tol=1e-9, abs_tol=1e-6)
    )
    if not same:
        raise ModelFileError(
            f"the spectra are on {here} but the model was trained on {there}; re-ingest the raw "
            f"spectra with `agnlens ingest ... --grid {name}` (or classify the FITS files directly), "
            "or train a model on this grid"
        )


def grid_from_metadata(metadata: dict):
    """The :class:`agnlens.preprocess.Grid` a model was trained on, to preprocess raw spectra onto.

    Parameters
    ----------
    metadata : dict
        From :func:`load_model`.

    Returns
    -------
    Grid

    Raises
    ------
    ModelFileError
        When the file records no grid, or a custom grid that cannot be rebuilt from its description.
    """
    from agnlens.preprocess import GRIDS, Grid, get_grid

    g = metadata.get("grid")
    if not isinstance(g, dict) or "n_pixels" not in g:
        raise ModelFileError("the model file records no wavelength grid; retrain it with `agnlens train`")
    n, lo, hi = int(g["n_pixels"]), float(g["lo"]), float(g["hi"])
    if g.get("name") in GRIDS:
        grid = get_grid(g["name"])
        if grid.wavelength.size == n and math.isclose(grid.wavelength[0], lo) and math.isclose(grid.wavelength[-1], hi):
            return grid
    norm = tuple(g.get("norm_window") or ())
    kw = {"norm_window": norm} if len(norm) == 2 else {}
    if g.get("spacing") == "linear":
        return Grid(str(g.get("name", "custom")), np.linspace(lo, hi, n), spacing="linear", **kw)
    if g.get("spacing") == "log":
        return Grid(str(g.get("name", "custom")), np.logspace(np.log10(lo), np.log10(hi), n), spacing="log", **kw)
    raise ModelFileError(
        f"the model was trained on a custom grid ({n} px {lo:.1f}–{hi:.1f} Å) that cannot be rebuilt from "
        "its description; ingest the spectra onto that grid yourself and classify the store"
    )
