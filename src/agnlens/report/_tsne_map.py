"""The t-SNE map of a report: its scores, static figure and the points of the interactive map (``map.js``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agnlens.classes import CLASS_COLOURS, CLASS_NAMES, CLASSES
from agnlens.report._folder import as_bool, embed_figure, section_of
from agnlens.results import ResultsFolder

_METHOD_NAMES = {"bh": "openTSNE Barnes-Hut", "fft": "openTSNE FFT"}


def map_context(metrics: dict, folder: Path, embedding: pd.DataFrame | None, figure_ids: dict[str, str]) -> dict:
    """The t-SNE section: the map's scores (``metrics``' embedding entry), its static figure and the
    points of the interactive map (``embedding``), each with the id of its saliency figure."""
    e = section_of(metrics, "embedding")
    method = e.get("method")
    ctx: dict[str, Any] = {
        "knn_accuracy": e.get("knn_accuracy"),
        "trustworthiness": e.get("trustworthiness"),
        "perplexity": e.get("perplexity"),
        "method": _METHOD_NAMES.get(str(method), method),
        "n": e.get("n"),
        "figure": embed_figure(folder, ResultsFolder(folder).figure("tsne"), max_width=900),
        "data_json": None,
        "n_points": 0,
    }
    if embedding is not None and {"x", "y"} <= set(embedding.columns):
        df = embedding
        n = len(df)
        x = pd.to_numeric(df["x"], errors="coerce").to_numpy(float)
        y = pd.to_numeric(df["y"], errors="coerce").to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)

        def col(name: str, default: str = "") -> list:
            if name not in df:
                return [default] * n
            return ["" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in df[name]]

        def prob(name: str) -> list:
            if name not in df:
                return [None] * n
            vals = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
            return [round(float(v), 4) if math.isfinite(v) else None for v in vals]

        spec_ids = col("spec_id")
        data = {
            "x": [round(float(v), 3) for v in x[ok]],
            "y": [round(float(v), 3) for v in y[ok]],
            "id": [s for s, k in zip(spec_ids, ok) if k],
            "label": [s for s, k in zip(col("label"), ok) if k],
            "pred": [s for s, k in zip(col("predicted_label"), ok) if k],
            "split": [s for s, k in zip(col("split"), ok) if k],
            "p": {c: [p for p, k in zip(prob(f"p_{c}"), ok) if k] for c in CLASSES},
            "mis": [bool(b) for b, k in zip(as_bool(df["misclassified"]) if "misclassified" in df
                                            else np.zeros(n, bool), ok) if k],
            "fig": [figure_ids.get(s) for s, k in zip(spec_ids, ok) if k],
            # spectra placed on the map of a training sample (agnlens explain): drawn apart, by prediction
            "new": [bool(b) for b, k in zip(as_bool(df["explained"]) if "explained" in df
                                            else np.zeros(n, bool), ok) if k],
            "colours": CLASS_COLOURS, "names": CLASS_NAMES,  # the figures' own, named once in classes.py
        }
        # JSON inside <script>: escape <, >, & so no text can close the element (autoescape does not apply)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        from markupsafe import Markup

        ctx["data_json"] = Markup(text)
        ctx["n_points"] = int(ok.sum())
        ctx["n_mis"] = int(sum(data["mis"]))
        ctx["n_fig"] = int(sum(f is not None for f in data["fig"]))
    return ctx
