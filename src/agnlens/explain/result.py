"""The saliency result object: maps with their spectra, grid, targets and provenance; it saves,
loads, subsets, concatenates and plots itself."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from agnlens.atomic import jsonable, replace_folder, temp_sibling, write_csv
from agnlens.classes import CLASS_NAMES

# --------------------------------------------------------------------------------------------
# the result object


#: How the reason a spectrum was explained (:attr:`Saliency.reason`) reads in a figure title.
REASONS = {"misclassified": "misclassified test spectrum", "random": "random test sample",
           "input": "input spectrum"}


def _rows_array(a) -> np.ndarray:
    """Maps or spectra as float64 in memory; a memory map of a saved folder stays on disk."""
    return a if isinstance(a, np.memmap) else np.asarray(a, dtype=np.float64)


def _class_name(label) -> str:
    return CLASS_NAMES.get(str(label), str(label))


#: The per-spectrum fields of a :class:`Saliency` (first axis = spectra).
#: The file beside a saved map's arrays that records its method, options and classes.
INFO_FILE = "saliency.json"
_ROWS = ("values", "flux", "target_index", "probabilities", "spec_id", "labels", "predicted", "reason", "completeness")


class Saliency:
    """Saliency maps of many spectra, with everything needed to read them.

    Attributes
    ----------
    values : ndarray of shape (n_spectra, n_pixels)
        The attribution of every pixel to ``p_target`` (∂p/∂flux for the gradient methods).
    wavelength : ndarray of shape (n_pixels,)
        Rest-frame grid in Å.
    flux : ndarray of shape (n_spectra, n_pixels)
        The explained (preprocessed) spectra.
    target : ndarray of str, shape (n_spectra,)
        The class whose probability is explained, per spectrum.
    target_index : ndarray of int, shape (n_spectra,)
        Its column in ``probabilities`` / index in ``classes``.
    probabilities : ndarray of shape (n_spectra, n_classes)
    classes : ndarray of shape (n_classes,)
    predicted : ndarray of str, shape (n_spectra,)
    labels : ndarray of str, shape (n_spectra,)
        True labels (``""`` when unknown).
    spec_id : ndarray of str, shape (n_spectra,)
    method : str
    options : dict
        The method's options as used (JSON-friendly).
    reason : ndarray of str, shape (n_spectra,)
        Why the spectrum was explained (e.g. ``"misclassified"``, ``"random"``; ``""`` if unset).
    completeness : ndarray of shape (n_spectra,) or None
        Integrated Gradients only: Σ values − (p(x) − p(baseline)).
    """

    def __init__(
        self,
        values: np.ndarray,
        wavelength: np.ndarray,
        flux: np.ndarray,
        target_index: np.ndarray,
        probabilities: np.ndarray,
        classes: ArrayLike,
        method: str,
        options: dict | None = None,
        spec_id: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        predicted: ArrayLike | None = None,
        reason: ArrayLike | None = None,
        completeness: np.ndarray | None = None,
    ) -> None:
        self.values = _rows_array(values)
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        self.flux = _rows_array(flux)
        n, n_pix = self.values.shape
        if self.wavelength.shape != (n_pix,) or self.flux.shape != (n, n_pix):
            raise ValueError(
                f"Saliency: values {self.values.shape}, flux {self.flux.shape} and wavelength "
                f"{self.wavelength.shape} do not match; expected (n, n_pixels) and (n_pixels,)"
            )
        self.classes = np.asarray(classes)
        self.target_index = np.asarray(target_index, dtype=np.int64).reshape(n)
        self.probabilities = np.asarray(probabilities, dtype=np.float64).reshape(n, len(self.classes))
        self.method = str(method)
        self.options = dict(options or {})
        self.spec_id = _strings(spec_id, n, default=[str(i) for i in range(n)])
        self.labels = _strings(labels, n)
        if predicted is None:
            predicted = self.classes[np.argmax(self.probabilities, axis=1)]
        self.predicted = _strings(predicted, n)
        self.reason = _strings(reason, n)
        self.completeness = None if completeness is None else np.asarray(completeness, dtype=float)

    # ---- views
    @property
    def target(self) -> np.ndarray:
        """The explained class per spectrum (as strings)."""
        return self.classes[self.target_index].astype(str)

    @property
    def p_target(self) -> np.ndarray:
        """Probability of the explained class, shape (n_spectra,)."""
        return self.probabilities[np.arange(len(self)), self.target_index]

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, index) -> Saliency:
        """Subset by integer, integer array, boolean mask or slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return self._with_rows({f: None if getattr(self, f) is None else getattr(self, f)[idx] for f in _ROWS})

    @classmethod
    def concat(cls, parts: Sequence[Saliency]) -> Saliency:
        """Stack results of one model and method (e.g. computed chunk by chunk)."""
        if not parts:
            raise ValueError("Saliency.concat needs at least one Saliency")
        first = parts[0]
        return first._with_rows({
            f: None if getattr(first, f) is None else np.concatenate([getattr(p, f) for p in parts])
            for f in _ROWS
        })

    def _with_rows(self, rows: dict) -> Saliency:
        return Saliency(
            wavelength=self.wavelength, classes=self.classes, method=self.method, options=self.options, **rows
        )

    def __repr__(self) -> str:
        return (
            f"Saliency(method={self.method!r}, {len(self)} spectra × {self.wavelength.size} px "
            f"{self.wavelength[0]:.0f}–{self.wavelength[-1]:.0f} Å, classes {[str(c) for c in self.classes]})"
        )

    @property
    def misclassified(self) -> np.ndarray:
        """Boolean (n_spectra,): labelled spectra whose predicted class differs from the label."""
        return (self.labels != "") & (self.labels != self.predicted)

    def study_sample(self, n_random: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The reference study's selection: every misclassified spectrum plus a seeded random
        sample of ``n_random`` of the others.

        Returns
        -------
        rows : ndarray of int
            Misclassified rows first, then the random ones (each group in row order).
        reason : ndarray of str
            ``"misclassified"`` or ``"random"`` per returned row.
        """
        wrong = np.flatnonzero(self.misclassified)
        rest = np.flatnonzero(~self.misclassified)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(rest, size=min(int(n_random), rest.size), replace=False))
        rows = np.concatenate([wrong, pick]).astype(int)
        reason = np.array(["misclassified"] * wrong.size + ["random"] * pick.size, dtype=str)
        return rows, reason

    def index(self, spec_id: str) -> int:
        """Row of the spectrum ``spec_id``."""
        hits = np.flatnonzero(self.spec_id == str(spec_id))
        if hits.size == 0:
            raise KeyError(f"spec_id {spec_id!r} is not among the {len(self)} explained spectra")
        return int(hits[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per spectrum: the index written by :meth:`save`.

        Columns ``row, spec_id, label, predicted_label, target_class, reason`` (as in
        ``docs/results-layout.md``), then ``p_<class>`` per class, ``p_target`` and, for
        Integrated Gradients, ``completeness``.
        """
        frame = pd.DataFrame(
            {
                "row": np.arange(len(self)),
                "spec_id": self.spec_id,
                "label": self.labels,
                "predicted_label": self.predicted,
                "target_class": self.target,
                "reason": self.reason,
            }
        )
        for k, cls in enumerate(self.classes):
            frame[f"p_{cls}"] = self.probabilities[:, k]
        frame["p_target"] = self.p_target
        if self.completeness is not None:
            frame["completeness"] = self.completeness
        return frame

    # ---- figures
    def plot(self, i: int | str = 0, ax=None, **kwargs):
        """Plot spectrum ``i`` (row or spec_id) as a line with its attribution as a colour band.

        Keyword arguments go to :func:`agnlens.plot.saliency.plot_saliency` (``vmax``: a colour
        limit shared with other figures). Returns the Axes.
        """
        from agnlens.plot.saliency import attribution_label, plot_saliency

        row = self.index(i) if isinstance(i, str) else int(i)
        title = kwargs.pop("title", self.figure_title(row))
        kwargs.setdefault("colorbar_label", attribution_label(self.method, self.target[row]))
        return plot_saliency(self.wavelength, self.flux[row], self.values[row], ax=ax, title=title, **kwargs)

    def figure_title(self, row: int, *, short: bool = False, reason: str | None = None) -> str:
        """The title of row ``row``'s figure: what the spectrum is, why it is shown, what is explained.

        Three lines: spec_id and why it was explained (:data:`REASONS`; ``reason`` overrides
        :attr:`reason`); the predicted class with its probability (and the other classes') and
        the catalogue label when known; the explained class, the method and the map's largest
        absolute value (on a colour scale shared by many maps, a small map is nearly white). ``short``
        (a gallery panel) leaves out the other classes' probabilities, and the method and the
        explained class when it is the predicted one (the gallery's title says them).
        """
        why = str(self.reason[row] if reason is None else reason)
        why = REASONS.get(why, why)
        head = f"{self.spec_id[row]}" + (f" · {why}" if why else "")
        pred = str(self.predicted[row])
        hit = np.flatnonzero(self.classes.astype(str) == pred)
        k = int(hit[0]) if hit.size else -1
        p = f", p = {self.probabilities[row, k]:.2f}" if k >= 0 else ""
        label = str(self.labels[row])
        catalogue = ""
        if label:
            catalogue = f" · catalogue: {_class_name(label)}" + (" (disagrees)" if label != pred else "")
        peak = f"largest |value| {np.nanmax(np.abs(self.values[row])):.1e}" if self.values.shape[1] else ""
        target = str(self.target[row])
        if short:
            line3 = (f"explained: p({_class_name(target)}) · " if target != pred else "") + peak
            return f"{head}\npredicted {_class_name(pred)}{p}{catalogue}\n{line3}"
        others = ", ".join(f"{_class_name(c)} {q:.2f}"
                           for j, (c, q) in enumerate(zip(self.classes, self.probabilities[row])) if j != k)
        line2 = f"predicted {_class_name(pred)}{p}" + (f" ({others})" if others else "") + catalogue
        return f"{head}\n{line2}\nexplained: p({_class_name(target)}) by {self.method} · {peak}"

    def to_specutils(self):
        """The maps as a specutils ``Spectrum`` on the model's grid, shape (n_spectra, n_pixels).

        See :func:`agnlens.io.specutils.saliency_to_specutils`; needs ``agnlens[specutils]``.
        """
        from agnlens.io.specutils import saliency_to_specutils

        return saliency_to_specutils(self)

    # ---- persistence
    def save(self, directory: str | os.PathLike, *, reason: Sequence[str] | None = None) -> Path:
        """Write ``values.npy`` (float32), ``wavelength.npy``, ``flux.npy``, ``index.csv`` and
        ``saliency.json`` (method, options, classes) into ``directory``, atomically.

        The files are written into a temporary sibling folder which then replaces ``directory``,
        so an interrupted save never leaves a half-written folder (:class:`SaliencyWriter`, which
        writes the same folder from maps that arrive chunk by chunk).

        Parameters
        ----------
        directory : path-like
        reason : sequence of str, shape (n_spectra,), optional
            Why each spectrum was explained (``"misclassified"``, ``"random"``...); sets
            :attr:`reason` before writing.
        """
        if reason is not None:
            self.reason = _strings(reason, len(self))
        with SaliencyWriter(Path(directory).parent) as writer:
            writer.add(self)
            return writer.close(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, mmap: bool = False) -> Saliency:
        """Read a folder written by :meth:`save`.

        ``mmap=True`` leaves ``values`` and ``flux`` on disk as read-only float32 memory maps (read
        when used: a subset by rows reads those rows only); by default they are read as float64."""
        directory = Path(directory)
        needed = ["values.npy", "wavelength.npy", "index.csv"]
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{directory}: not a saliency folder, missing {', '.join(missing)} "
                f"(write one with Saliency.save or `agnlens explain`)"
            )
        mode: Literal["r"] | None = "r" if mmap else None
        values = np.load(directory / "values.npy", allow_pickle=False, mmap_mode=mode)
        wavelength = np.load(directory / "wavelength.npy", allow_pickle=False)
        index = pd.read_csv(directory / "index.csv", dtype={"spec_id": str}, keep_default_na=False)
        info_path = directory / INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        flux_path = directory / "flux.npy"
        flux = (np.load(flux_path, allow_pickle=False, mmap_mode=mode) if flux_path.is_file()
                else np.full(values.shape, np.nan))
        pcols = [c for c in index.columns if c.startswith("p_") and c != "p_target"]
        classes = np.asarray(info.get("classes") or [c[2:] for c in pcols])
        probs = (
            index[[f"p_{c}" for c in classes]].to_numpy(float) if pcols
            else np.full((len(index), len(classes)), np.nan)
        )
        cls_str = classes.astype(str)
        target_index = np.array([int(np.flatnonzero(cls_str == str(t))[0]) for t in index["target_class"]], dtype=int)
        return cls(
            values=values,
            wavelength=wavelength,
            flux=flux,
            target_index=target_index,
            probabilities=probs,
            classes=classes,
            method=info.get("method", "unknown"),
            options=info.get("options", {}),
            spec_id=index["spec_id"].astype(str).to_numpy(),
            labels=index["label"].astype(str).to_numpy(),
            predicted=index["predicted_label" if "predicted_label" in index else "predicted"].astype(str).to_numpy(),
            reason=index["reason"].astype(str).to_numpy() if "reason" in index else None,
            completeness=index["completeness"].to_numpy(float) if "completeness" in index else None,
        )


def _strings(values, n: int, default=None) -> np.ndarray:
    if values is None:
        values = default if default is not None else [""] * n
    arr = np.asarray(values).astype(str)
    if arr.shape != (n,):
        raise ValueError(f"expected {n} entries (one per spectrum), got shape {arr.shape}")
    return arr


def is_array(value) -> bool:
    return isinstance(value, (np.ndarray, list, tuple))


class SaliencyWriter:
    """Write the folder :meth:`Saliency.save` writes from maps that arrive chunk by chunk, holding
    none of them: the arrays go to files in a hidden working folder as they come, and
    :meth:`close` turns it into the saliency folder in one rename.

    Use it as a context manager (the working folder is removed when the block fails or
    :meth:`close` was not reached)::

        with SaliencyWriter(out) as writer:
            for chunk in chunks:
                writer.add(saliency(model, chunk))
            writer.close(out / "saliency")

    Parameters
    ----------
    parent : path-like
        Where the working folder is made: the folder the saliency folder will be in (a rename
        across file systems is not atomic).
    """

    def __init__(self, parent: str | os.PathLike) -> None:
        Path(parent).mkdir(parents=True, exist_ok=True)
        self._tmp = temp_sibling(Path(parent) / "saliency", "tmp")  # a leftover is found by its name
        self._tmp.mkdir()
        self._arrays = {name: open(self._tmp / f"{name}.raw", "wb") for name in ("values", "flux")}
        self._index: list[pd.DataFrame] = []
        self._first: Saliency | None = None
        self.n_spectra = 0

    @property
    def folder(self) -> Path:
        """The hidden working folder (it becomes the saliency folder on :meth:`close`)."""
        return self._tmp

    def add(self, part: Saliency) -> None:
        """Append the maps of ``part`` (of the model, method and grid of the first part)."""
        first = self._first
        if first is None:
            self._first = first = part[:0]
        elif (part.method != first.method or not np.array_equal(part.wavelength, first.wavelength)
              or [str(c) for c in part.classes] != [str(c) for c in first.classes]):
            raise ValueError(f"SaliencyWriter: {part!r} is not of the method, grid and classes of {first!r}")
        for name, fh in self._arrays.items():
            fh.write(np.ascontiguousarray(getattr(part, name), dtype="<f4").tobytes())
        frame = part.to_frame()
        frame["row"] += self.n_spectra
        self._index.append(frame)
        self.n_spectra += len(part)

    def close(self, directory: str | os.PathLike) -> Path:
        """Finish the folder and put it at ``directory`` (files of an old folder there that are not
        agnlens's are kept)."""
        if self._first is None:
            raise ValueError("SaliencyWriter.close: no maps were added")
        first, tmp, n_pixels = self._first, self._tmp, self._first.wavelength.size
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                  "shape": (self.n_spectra, n_pixels)}
        for name, fh in self._arrays.items():
            fh.close()
            with open(tmp / f"{name}.npy", "wb") as out, open(tmp / f"{name}.raw", "rb") as raw:
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(raw, out, 1 << 22)
            (tmp / f"{name}.raw").unlink()
        np.save(tmp / "wavelength.npy", first.wavelength.astype(np.float64))
        write_csv(tmp / "index.csv", pd.concat(self._index, ignore_index=True))  # spreadsheet-safe
        info = {"method": first.method, "options": jsonable(first.options),
                "classes": [jsonable(c) for c in first.classes.tolist()], "n_spectra": self.n_spectra,
                "n_pixels": int(n_pixels)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
        replace_folder(tmp, directory)
        return Path(directory)

    def discard(self) -> None:
        """Remove the working folder (gone already after :meth:`close`)."""
        for fh in self._arrays.values():
            fh.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> SaliencyWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def saved_rows(path: str | os.PathLike, rows: int):
    """The rows of a saved 2-d ``.npy`` array (``values.npy``, ``flux.npy``), ``rows`` at a time, read
    from the file without mapping it (memory holds one chunk)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if len(shape) != 2 or fortran:
            raise ValueError(f"{path}: not a C-ordered 2-d array (shape {shape})")
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            yield np.fromfile(fh, dtype=dtype, count=n * shape[1]).reshape(n, shape[1])
