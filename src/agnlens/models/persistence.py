"""Safe model files: skops (never pickle), with provenance, an integrity hash and a type allow-list.

A model file is the zip archive that ``skops.io.dumps(model)`` produces plus one extra member,
``agnlens.json``, holding the metadata: the format marker ``agnlens_model_format: 2``, task,
classes, grid, preprocessing provenance, split seed and sizes, training-data hash, tuning table,
scores, package versions, and ``content_sha256`` — the SHA-256 of every member of the file: each
skops member (name and bytes, in name order) and the metadata itself (canonical JSON, without this
one key). :func:`load_model` refuses a file that is not a zip, declares more than a size limit,
lacks the marker, whose content hash does not match, or that holds a type outside
:data:`ALLOWED_TYPES`.

What the hash is for: it detects corruption and accidents (a truncated copy, a flipped bit, an
edited grid in ``agnlens.json``). It is not a signature: whoever can edit the file can recompute
it. To trust one exact file, pin its SHA-256 (:func:`file_sha256`; ``--model-sha256 HEX`` or
``$AGNLENS_MODEL_SHA256`` on the command line): a file edited in any way, its internal hash
recomputed or not, is then refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from agnlens.atomic import atomic_path, jsonable
from agnlens.errors import ModelFileError, ModelPinError
from agnlens.grid import Grid

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
METADATA_MEMBER = "agnlens.json"
#: The metadata key holding the content hash (the one key the hash does not cover).
HASH_KEY = "content_sha256"
#: Refuse a model file whose members declare more than this many bytes in total, uncompressed
#: (a zip bomb); the default model is ~10 MB. Change with ``max_bytes=`` where a model is loaded.
MAX_MODEL_BYTES = 512 * 2**20
#: Refuse a model file with more members than this.
MAX_MODEL_MEMBERS = 10_000
#: The environment variable that pins the SHA-256 of the model file a user trusts.
SHA256_ENV = "AGNLENS_MODEL_SHA256"
_CHUNK = 2**20
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


def _canonical(meta: dict) -> bytes:
    """The metadata as hashed: sorted keys, no whitespace, without :data:`HASH_KEY`."""
    body = {k: v for k, v in meta.items() if k != HASH_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _content_hash(zf: zipfile.ZipFile, meta: dict) -> str:
    """SHA-256 of every skops member (name and bytes, in name order) and of the metadata."""
    h = hashlib.sha256()
    for name in sorted(n for n in zf.namelist() if n != METADATA_MEMBER):
        h.update(name.encode() + b"\0")
        with zf.open(name) as fh:  # streamed: the declared sizes were checked, memory stays bounded
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    h.update(METADATA_MEMBER.encode() + b"\0")
    h.update(_canonical(meta))
    return "sha256:" + h.hexdigest()


def file_sha256(path) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB blocks: what ``--model-sha256`` pins."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def pinned_sha256(given: str | None = None) -> str | None:
    """The SHA-256 a model file must have: ``given``, else ``$AGNLENS_MODEL_SHA256``, else None.

    Raises
    ------
    ModelPinError
        If the value is not 64 hexadecimal digits.
    """
    value = given if given else os.environ.get(SHA256_ENV) or None
    if value is None:
        return None
    text = value.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        where = "--model-sha256" if given else f"${SHA256_ENV}"
        raise ModelPinError(f"{where} = {value!r} is not a SHA-256 (64 hexadecimal digits); "
                            "get it with `sha256sum MODEL`")
    return text


def _check_sizes(path: Path, zf: zipfile.ZipFile, max_bytes: int) -> None:
    """Refuse a zip whose members declare too much (a zip bomb) before anything is decompressed."""
    infos = zf.infolist()
    if len(infos) > MAX_MODEL_MEMBERS:
        raise ModelFileError(f"{path}: {len(infos)} members, more than a model file has "
                             f"({MAX_MODEL_MEMBERS}); refusing it")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        big = max(infos, key=lambda i: i.file_size)
        raise ModelFileError(
            f"{path}: its members declare {total / 2**20:.0f} MiB uncompressed ({big.filename}: "
            f"{big.file_size / 2**20:.0f} MiB), more than the limit of {max_bytes / 2**20:.0f} MiB; "
            "refusing it without decompressing (a zip bomb or not a model; raise max_bytes if you "
            "trust it)"
        )



def package_versions() -> dict[str, str]:
    """Versions of the packages a model depends on."""
    import scipy
    import sklearn
    import skops

    from agnlens._version import __version__

    return {
        "agnlens": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "python": platform.python_version(),
    }


def training_range(meta) -> dict[str, list[float]]:
    """The redshift and S/N range of a model's training spectra, as saved with it.

    Parameters
    ----------
    meta : DataFrame
        The training spectra's metadata (``z``; ``snr`` from preprocessing, if present).

    Returns
    -------
    dict
        ``{"z": [lo, hi], "snr": [lo, hi]}`` over the finite values (a key is left out when its
        column is absent or has none). :func:`agnlens.models.tuning.train` stores it on the model
        (``training_range_``, inside the skops payload) and in the metadata (``training_range``);
        :func:`agnlens.models.applicability.applicability` flags ``z-out-of-range`` with it. Model
        files written before agnlens recorded it load as before, without the attribute: no check.
    """
    out = {}
    for key in ("z", "snr"):
        if key in meta.columns:
            v = np.asarray(meta[key], dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                out[key] = [float(v.min()), float(v.max())]
    return out


def save_model(model, path, *, metadata: dict) -> Path:
    """Write a fitted model and its metadata to ``path`` atomically.

    Parameters
    ----------
    model : SpectrumSVC
        A fitted model.
    path : str or Path
        Target file (``.skops`` by convention).
    metadata : dict
        Provenance to carry: ``grid`` (``SpectrumSet.grid.to_dict()``), ``preprocessing``,
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
    meta = jsonable(dict(metadata))
    meta.pop(HASH_KEY, None)
    meta.setdefault("task", "binary" if len(model.classes_) == 2 else "multiclass")
    meta["classes"] = jsonable(list(model.classes_))
    meta["versions"] = {**package_versions(), **(meta.get("versions") or {})}
    meta["agnlens_model_format"] = FORMAT_VERSION
    meta = json.loads(json.dumps(meta, allow_nan=False))  # exactly what a reader will parse
    with zipfile.ZipFile(buf) as zf:
        meta[HASH_KEY] = _content_hash(zf, meta)
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(METADATA_MEMBER, text)
    log.info("model written to %s", path)
    return path


def read_metadata(path, *, sha256: str | None = None, max_bytes: int = MAX_MODEL_BYTES) -> dict:
    """Metadata of a model file, after checking its size, pin, format marker and content hash.

    Parameters
    ----------
    path : str or Path
    sha256 : str, optional
        The SHA-256 (hex) the file must have; default ``$AGNLENS_MODEL_SHA256`` if set.
    max_bytes : int
        Refuse a file whose members declare more bytes than this, uncompressed.

    Returns
    -------
    dict
        The stored metadata plus ``file`` (the path) and ``file_sha256`` (of the whole file), for
        the provenance of results.

    Raises
    ------
    ModelPinError
        The file's SHA-256 is not the pinned one (a :class:`~agnlens.errors.UsageError`).
    ModelFileError
        Missing, not a zip, too large, not ours, or its content hash does not match.
    """
    return _metadata(Path(path), _read_file(Path(path), max_bytes), sha256=sha256, max_bytes=max_bytes)


def _read_file(path: Path, max_bytes: int) -> bytes:
    """The model file's bytes, read once: the pin, the hashes and the loader all see these bytes,
    so the file cannot be swapped between the check and the load."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelFileError(f"{path}: larger than {max_bytes:,} bytes; not an agnlens model file")
    return data


def _metadata(path: Path, data: bytes, *, sha256: str | None, max_bytes: int) -> dict:
    """:func:`read_metadata` of a model file's bytes."""
    pin = pinned_sha256(sha256)
    digest = hashlib.sha256(data).hexdigest()
    if pin is not None and digest != pin:
        raise ModelPinError(
            f"{path}: SHA-256 {digest} is not the pinned {pin} (--model-sha256 / ${SHA256_ENV}); "
            "refusing a model file other than the one you trust"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not an agnlens model file (not a skops zip archive: {exc})") from None
    with zf:
        _check_sizes(path, zf, max_bytes)
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
        try:
            ok = _content_hash(zf, meta) == meta.get(HASH_KEY)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            raise ModelFileError(f"{path}: a member cannot be read ({exc}); the file is corrupted") from None
        if not ok:
            raise ModelFileError(
                f"{path}: the model file's content does not match its recorded SHA-256 — it was "
                "corrupted or edited (tampered with); do not use it, retrain or restore it"
            )
    meta["file"] = str(path)
    meta["file_sha256"] = digest
    return meta


def load_model(path, *, sha256: str | None = None, max_bytes: int = MAX_MODEL_BYTES) -> tuple[Any, dict]:
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or Path
    sha256 : str, optional
        Pin: the SHA-256 (hex) of the exact file you trust (``sha256sum MODEL``); default
        ``$AGNLENS_MODEL_SHA256`` if set. Only a pin guards against a deliberately edited file.
    max_bytes : int
        Refuse a file whose members declare more bytes than this, uncompressed (zip bombs).

    Returns
    -------
    model : SpectrumSVC
    metadata : dict
        As stored, plus ``file`` and ``file_sha256`` (see :func:`read_metadata`).

    Raises
    ------
    ModelPinError
        The file is not the pinned one.
    ModelFileError
        The file is missing, not a zip/skops file, too large, not ours (no format marker),
        corrupted or edited (content hash mismatch) or holds types outside :data:`ALLOWED_TYPES`.
    """
    import skops.io as sio

    from agnlens.models.svm import SpectrumSVC

    path = Path(path)
    data = _read_file(path, max_bytes)
    meta = _metadata(path, data, sha256=sha256, max_bytes=max_bytes)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises various errors on a malformed schema
        raise ModelFileError(f"{path}: unreadable skops payload ({type(exc).__name__}: {exc})") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ModelFileError(
            f"{path}: holds types outside agnlens's allow-list: {refused}; refusing to load it "
            "(only agnlens SpectrumSVC models are accepted)"
        )
    try:
        model = sio.loads(data, trusted=list(untrusted))
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
        With the two grids and how to fix it (re-ingest with ``--grid NAME``). Grids are equal when
        every wavelength, the spacing and the normalisation window are (:class:`agnlens.grid.Grid`).
    """
    grid = grid_from_metadata(metadata)
    if spectra.grid != grid:
        raise ModelFileError(
            f"the spectra are on {spectra.grid.label()} but the model was trained on {grid.label()} (grids are "
            f"equal when every wavelength, the spacing and the normalisation window are); re-ingest the raw "
            f"spectra with `agnlens ingest ... --grid {grid.name}` (or classify the FITS files directly), or train "
            "a model on this grid"
        )


def grid_from_metadata(metadata: dict) -> Grid:
    """The :class:`~agnlens.grid.Grid` a model was trained on, to preprocess raw spectra onto.

    Parameters
    ----------
    metadata : dict
        From :func:`load_model`. Its ``grid`` is :meth:`Grid.to_dict`; agnlens 0.2 wrote a summary
        without the wavelengths, rebuilt by :meth:`Grid.from_dict` (the preset of that name).

    Returns
    -------
    Grid

    Raises
    ------
    ModelFileError
        When the file records no grid, or a custom grid that cannot be rebuilt from its description.
    """
    g = metadata.get("grid")
    if not isinstance(g, dict):
        raise ModelFileError(
            "the model file records no wavelength grid, so its spectra cannot be checked; retrain it with "
            "`agnlens train`"
        )
    try:
        return Grid.from_dict(g)
    except ValueError as exc:
        raise ModelFileError(
            f"the model's grid cannot be rebuilt ({exc}); ingest the spectra onto that grid yourself and classify "
            "the store"
        ) from None
