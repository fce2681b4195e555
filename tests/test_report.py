"""The HTML report: built from a small but complete results folder made with real computations.

The fixture folder follows docs/results-layout.md: a scikit-learn SVC is tuned and tested on 240
simulated 3-class "spectra", the t-SNE map comes from agnlens.embed.tsne, the saliency of a linear
SVM is its weight vector (exact), and the figures are real matplotlib PNGs.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.report import SECTIONS, ResultsFolderError, build_report

EVIL_ID = '<script>alert("x")</script>&amp;id'
EVIL_LABEL = "<b>odd</b> & label"
CLASSES3 = ["type1", "type2", "intermediate"]


def _save(ax, path: Path, dpi: int = 80) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=dpi, format="png")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def make_results(folder: Path, *, simulated: bool = True, n: int = 240, seed: int = 0) -> Path:
    """Write a small complete results folder (layout of docs/results-layout.md) into ``folder``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
    from sklearn.svm import SVC

    from agnlens.embed import tsne
    from agnlens.plot.embedding import new_axes, plot_embedding
    from agnlens.plot.metrics import plot_confusion

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_pix = 120
    wave = np.linspace(3729.0, 5266.0, n_pix)
    labels = rng.choice(CLASSES3, size=n, p=[0.3, 0.5, 0.2])
    centres = {"type1": 1.0, "type2": -1.0, "intermediate": 0.0}
    profile = np.exp(-0.5 * ((wave - 4862.68) / 60.0) ** 2)
    X = rng.normal(scale=0.8, size=(n, n_pix)) + np.array([centres[c] for c in labels])[:, None] * profile
    spec_ids = np.array([f"{1000 + i:04d}-52000-{i:04d}" for i in range(n)], dtype=object)
    spec_ids[3] = EVIL_ID
    labels = labels.astype(object)
    split = rng.choice(["train", "validation", "test"], size=n, p=[0.6, 0.15, 0.25])
    train, val, test = (split == s for s in ("train", "validation", "test"))

    metrics: dict = {
        "dataset": {"n_spectra": n, "counts": {c: int((labels == c).sum()) for c in CLASSES3},
                    "simulated": simulated, "grid": {"name": "paper", "lo": 3729.0, "hi": 5266.0, "n_pixels": n_pix},
                    "seed": seed, "data_hash": "sha256:" + "ab" * 32},
        "split": {"train": int(train.sum()), "validation": int(val.sum()), "test": int(test.sum()), "seed": seed},
    }
    proba_all = None
    for task, classes in (("binary", ["type1", "type2"]), ("multiclass", CLASSES3)):
        keep = np.isin(labels, classes)
        rows, best = [], None
        for kernel in ("linear", "rbf"):
            for C in (0.01, 0.1, 1.0):
                model = SVC(kernel=kernel, C=C, class_weight="balanced").fit(X[train & keep], labels[train & keep])
                f1 = f1_score(labels[val & keep], model.predict(X[val & keep]), average="macro")
                rows.append({"kernel": kernel, "C": C, "gamma": "scale" if kernel == "rbf" else None,
                             "class_weight": "balanced", "validation_f1": f1, "fit_s": 0.01, "best": False})
                if best is None or f1 > best[0]:
                    best = (f1, kernel, C, len(rows) - 1)
        rows[best[3]]["best"] = True
        pd.DataFrame(rows).to_csv(folder / f"tuning_{task}.csv", index=False)
        model = CalibratedClassifierCV(SVC(kernel=best[1], C=best[2], class_weight="balanced"), ensemble=False)
        model.fit(X[train & keep], labels[train & keep])
        yt, yp = labels[test & keep], model.predict(X[test & keep])
        boots = [f1_score(yt[b], yp[b], average="macro")
                 for b in (rng.integers(0, len(yt), len(yt)) for _ in range(50))]
        metrics[task] = {
            "classes": classes,
            "best_params": {"kernel": best[1], "C": best[2], "gamma": None, "class_weight": "balanced"},
            "validation": {"f1": best[0]},
            "test": {"f1": f1_score(yt, yp, average="macro"),
                     "precision": precision_score(yt, yp, average="macro", zero_division=0),
                     "recall": recall_score(yt, yp, average="macro"), "accuracy": accuracy_score(yt, yp),
                     "confusion_matrix": confusion_matrix(yt, yp, labels=classes).tolist(),
                     "f1_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
                     "n_boot": 50},
            "tuning_s": 0.3,
        }
        ax = plot_confusion(metrics[task]["test"]["confusion_matrix"], classes, title=task)
        _save(ax, folder / "figures" / f"confusion_{task}.png")
        if task == "multiclass":
            predicted = model.predict(X).astype(object)
            proba_all = model.predict_proba(X)
            order = [list(model.classes_).index(c) for c in CLASSES3]
            proba_all = proba_all[:, order]
            linear = SVC(kernel="linear", C=0.1).fit(X[train], labels[train])

    labels[5] = EVIL_LABEL  # an unexpected label must be escaped, and drawn grey
    wrong = np.flatnonzero(test & (predicted != labels))
    random_pick = rng.choice(np.flatnonzero(test & (predicted == labels)), size=4, replace=False)
    explained = np.r_[wrong, random_pick, [3]]  # the evil id gets a saliency figure too
    reasons = ["misclassified"] * len(wrong) + ["random"] * (len(random_pick) + 1)
    # saliency of a linear SVM: the gradient of the one-vs-one decision values is the weight vector
    W = linear.coef_
    values = np.stack([W[i % len(W)] for i in range(len(explained))]).astype(np.float32)
    (folder / "saliency").mkdir(exist_ok=True)
    np.save(folder / "saliency" / "values.npy", values)
    np.save(folder / "saliency" / "wavelength.npy", wave)
    pd.DataFrame({"row": range(len(explained)), "spec_id": spec_ids[explained], "label": labels[explained],
                  "predicted_label": predicted[explained], "target_class": predicted[explained],
                  "reason": reasons}).to_csv(folder / "saliency" / "index.csv", index=False)
    fig_paths = np.full(n, "", dtype=object)
    for row, i in enumerate(explained):
        ax = new_axes((6, 2.4))
        ax.plot(wave, X[i], lw=0.7, color="0.3")
        ax.plot(wave, values[row] * 5, lw=0.8, color="C3")
        ax.set_title(f"saliency ({predicted[i]})")
        rel = f"figures/saliency/{_safe(spec_ids[i])}.png"
        _save(ax, folder / rel, dpi=60)
        fig_paths[i] = rel

    emb = tsne(X, perplexity=20, seed=seed)
    mis = np.zeros(n, bool)
    mis[wrong] = True
    has = fig_paths != ""
    pred_df = pd.DataFrame({"spec_id": spec_ids, "label": labels, "split": split, "predicted_label": predicted,
                            "p_type1": proba_all[:, 0], "p_type2": proba_all[:, 1],
                            "p_intermediate": proba_all[:, 2]})
    pred_df.to_csv(folder / "predictions.csv", index=False)
    pred_df.assign(x=emb.coords[:, 0], y=emb.coords[:, 1], misclassified=mis, has_saliency=has,
                   saliency_figure=fig_paths).to_csv(folder / "embedding.csv", index=False)
    _save(plot_embedding(emb.coords, labels, misclassified=mis, explained=has, simulated=simulated),
          folder / "figures" / "tsne.png")

    lines = [("Hbeta", "broad", 4840.0, 4885.0), ("OIII_5008", "narrow", 4995.0, 5020.0)]
    line_rows = []
    for name, kind, lo, hi in lines:
        sel = (wave >= lo) & (wave <= hi)
        for cls in CLASSES3:
            v = values[:, sel]
            line_rows.append({"line": name, "kind": kind, "lo": lo, "hi": hi, "class": cls,
                              "mean_saliency": float(v.mean()), "mean_abs_saliency": float(np.abs(v).mean()),
                              "share_abs": float(np.abs(v).sum() / np.abs(values).sum())})
    pd.DataFrame(line_rows).to_csv(folder / "line_table.csv", index=False)
    pd.DataFrame([{"line": "Hbeta", "class": c, "centre_mean": 0.1, "wings_mean": -0.05, "contrast": 0.15,
                   "n_spectra": 5} for c in CLASSES3]).to_csv(folder / "centre_wings.csv", index=False)
    pd.DataFrame([{"method": m, "deletion_auc": a, "insertion_auc": 1 - a, "random_deletion_auc": 0.5,
                   "n_spectra": len(explained)} for m, a in (("gradient", 0.2), ("occlusion", 0.3))]
                 ).to_csv(folder / "faithfulness.csv", index=False)
    for name in ("line_table", "centre_wings", "faithfulness"):
        ax = new_axes((5, 3))
        ax.plot(wave, np.abs(values).mean(axis=0))
        ax.set_title(name)
        _save(ax, folder / "figures" / f"{name}.png")

    metrics["saliency"] = {"n_maps": len(explained), "method": "gradient", "target": "predicted class",
                           "max_rel_error_vs_finite_differences": 3.2e-8, "n_misclassified": len(wrong),
                           "n_random": len(random_pick) + 1, "faithfulness_ranking": ["gradient", "occlusion"]}
    metrics["embedding"] = {"knn_accuracy": emb.knn_accuracy(labels), "perplexity": 20, "method": emb.method, "n": n,
                            "trustworthiness": emb.trustworthiness(X, k=10)}
    metrics["timings_s"] = {"simulate": 0.5, "tune_binary": 0.3, "tune_multiclass": 0.4, "embedding": emb.fit_s,
                            "total": 3.0}
    metrics["versions"] = {"agnlens": "0.1.0", "numpy": np.__version__, "python": "3.x <&>"}
    metrics["real"] = add_real_section(folder, seed=seed)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return folder


from realdata import SDSS  # the in-repo real spectra (tests/data)

#: Real spectra of the fixture's real-data section: type 1, type 2, intermediate, a non-AGN control.
REAL_IDS = ("0332-52367-0639", "0392-51793-0517", "1163-52669-0292", "0266-51602-0107", "0461-51910-0361")


def add_real_section(folder: Path, *, seed: int = 0) -> dict:
    """The real-data section made for real: a linear SpectrumSVC trained on simulated spectra
    classifies real SDSS files, the physics baseline measures them (agnlens.study_real)."""
    from agnlens.atomic import jsonable
    from agnlens.models.svm import SpectrumSVC
    from agnlens.simulate import simulate_set
    from agnlens.stages import read_inputs
    from agnlens.study_real import real_section

    train = simulate_set(150, seed=seed, grid="paper")
    model = SpectrumSVC(C=0.1, class_weight="balanced", calibration_cv=3, random_state=seed)
    model.fit(np.asarray(train.flux, dtype=np.float64), train.labels)
    files = [str(SDSS / "spectra" / f"spec-{sid}.fits") for sid in REAL_IDS]
    real, _ = read_inputs(files, grid="paper", labels=SDSS / "labels.csv")
    balmer, _ = read_inputs(files, grid="balmer", labels=SDSS / "labels.csv")
    return jsonable(real_section(folder, real, model, measure_spectra=balmer, seed=seed, source="shared/data/sdss"))


_MASTER: dict[str, Path] = {}


@pytest.fixture(scope="session")
def results_master(tmp_path_factory) -> Path:
    """The complete results folder, made once per session (test_report_browser imports this fixture)."""
    if "run" not in _MASTER:
        _MASTER["run"] = make_results(tmp_path_factory.mktemp("results") / "run")
    return _MASTER["run"]


@pytest.fixture(scope="session")
def built(results_master, tmp_path_factory) -> str:
    """The report of the complete folder, built once (read-only tests share it)."""
    return build_report(results_master, output=tmp_path_factory.mktemp("built") / "report.html").read_text("utf-8")


@pytest.fixture()
def results(results_master, tmp_path) -> Path:
    """A private copy of the complete folder (tests may delete or change files)."""
    return Path(shutil.copytree(results_master, tmp_path / "run"))


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.imgs, self.urls, self.scripts, self.text = [], [], [], [], []
        self._in_script = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href", "action", "data", "poster"):
            if a.get(key):
                self.urls.append(a[key])
        if tag == "script":
            self._in_script = a
            self.scripts.append([a, ""])
        if tag == "link":
            self.urls.append(a.get("href", ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data
        else:
            self.text.append(data)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def test_report_sections_images_and_no_external_urls(built):
    html = built
    page = _parse(html)
    for sid in SECTIONS:
        assert sid in page.ids, f"section {sid} missing"
    assert len(page.imgs) >= 8
    for img in page.imgs:
        if img.get("id") == "map-detail-img":
            continue
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            assert im.width == int(img["width"]) and im.height == int(img["height"])
    # self-contained: every src/href is a data: URI or an in-page anchor; no CSS url() fetches
    for url in page.urls:
        assert url.startswith(("data:", "#")), url
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html)
    assert not re.search(r"<(link|iframe|object|embed)\b", html)
    # the only URL-looking text is the SVG namespace name in the map code (never fetched)
    assert "https://" not in html
    assert html.replace('"http://www.w3.org/2000/svg"', "").count("http://") == 0
    # the saliency figures the map refers to exist in the page
    data = json.loads(next(body for attrs, body in page.scripts if attrs.get("id") == "map-data"))
    figs = {f for f in data["fig"] if f}
    assert figs and figs <= set(page.ids)
    assert len(data["x"]) == 240


def test_report_escapes_every_text(built):
    html = built
    assert "<script>alert" not in html
    assert "<b>odd</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;id" in html  # gallery caption
    assert "3.x &lt;&amp;&gt;" in html  # versions table
    page = _parse(html)
    # only the two scripts we put there: the JSON data block and the inlined map code
    assert [attrs.get("type") for attrs, _ in page.scripts] == ["application/json", None]
    data = json.loads(page.scripts[0][1])
    assert EVIL_ID in data["id"] and EVIL_LABEL in data["label"]
    assert "</" not in page.scripts[0][1]


def test_simulated_labels(built, results, tmp_path):
    html = built
    assert "SIMULATED DATA" in html
    assert html.count("(simulated)") >= 10
    # every test score in the results tables carries the label
    for m in re.finditer(r'<span class="score">[^<]*</span>(.{0,40})', html):
        assert '<span class="sim">(simulated)</span>' in m.group(1)

    metrics = json.loads((results / "metrics.json").read_text())
    metrics["dataset"]["simulated"] = False
    (results / "metrics.json").write_text(json.dumps(metrics))
    real = build_report(results, output=tmp_path / "real.html").read_text(encoding="utf-8")
    assert "simulated" not in real.lower()
    assert 'class="score"' in real


def test_missing_optional_files_are_marked_not_computed(results):
    for rel in ("tuning_binary.csv", "line_table.csv", "centre_wings.csv", "faithfulness.csv", "embedding.csv",
                "figures/tsne.png", "figures/confusion_multiclass.png"):
        (results / rel).unlink()
    shutil.rmtree(results / "saliency")
    shutil.rmtree(results / "figures" / "saliency")
    html = build_report(results).read_text(encoding="utf-8")
    page = _parse(html)
    assert all(sid in page.ids for sid in SECTIONS)
    assert html.count("Not computed") >= 3
    assert "map-data" not in page.ids


def test_minimal_metrics_only(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert all(f'id="{sid}"' in html for sid in SECTIONS)
    assert html.count("Not computed") >= 5


def test_metrics_json_missing_or_invalid(tmp_path):
    with pytest.raises(ResultsFolderError, match=r"metrics\.json.*agnlens demo"):
        build_report(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ResultsFolderError, match=r"not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ResultsFolderError, match=r"JSON object"):
        build_report(tmp_path)
    with pytest.raises(ResultsFolderError, match="not a folder"):
        build_report(tmp_path / "nowhere")
    assert not (tmp_path / "report.html").exists()


def test_report_numbers_match_metrics(built, results_master):
    metrics = json.loads((results_master / "metrics.json").read_text())
    html = built
    assert "percentile bootstrap, 50 resamples" in html
    assert f'trustworthiness is <span class="score">{metrics["embedding"]["trustworthiness"]:.3f}</span>' in html
    assert f'<span class="score">{metrics["embedding"]["knn_accuracy"]:.3f}</span>' in html
    assert "openTSNE Barnes-Hut" in html
    for task in ("binary", "multiclass"):
        t = metrics[task]["test"]
        assert f'<span class="score">{t["f1"]:.3f}</span>' in html
        lo, hi = t["f1_ci95"]
        assert f"[{lo:.3f}, {hi:.3f}]" in html
        cm = np.asarray(t["confusion_matrix"])
        share = cm[0, 0] / cm[0].sum() * 100
        assert f"{cm[0, 0]}<br><small>{share:.1f} %</small>" in html


def test_large_gallery_is_capped(built, results_master, tmp_path):
    html = build_report(results_master, max_gallery=1, output=tmp_path / "small.html").read_text("utf-8")
    assert html.count('class="saliency"') == 2
    assert "more figures are in" in html
    assert built.count('class="saliency"') > 10
    assert len(html) < len(built)


def test_cli_report(results, capsys):
    (results / "report.html").unlink(missing_ok=True)
    assert main(["report", str(results)]) == 0
    assert (results / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(results / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["report", str(results), "--max-gallery", "-1"]) == 2


def test_real_data_section(built, results_master):
    """The real-data section: SVM vs baseline per label, flags with reasons, measurements, figures."""
    real = pd.read_csv(results_master / "real" / "predictions.csv", dtype={"spec_id": str, "subtype": str})
    assert sorted(real["spec_id"]) == sorted(REAL_IDS)
    from agnlens.models.baseline import MEASURE_COLUMNS

    assert set(MEASURE_COLUMNS) <= set(real.columns)
    section = built[built.index('<section id="real">'):]
    section = section[: section.index("</section>")]
    assert "SVM vs baseline per label" in section and "Measurements of the real spectra" in section
    # every real prediction carries the classify stage's applicability verdict, and the section says
    # which are flagged (or that none is), never "not computed"
    from agnlens.study_real import TRUST_COLUMNS

    assert set(TRUST_COLUMNS) <= set(real.columns)
    assert 'id="real-trust"' not in section  # the "not computed" note
    flagged = section[section.index("<h3>Flagged predictions</h3>"):section.index("<h3>Centre vs wings")]
    for spec_id in real.loc[~real["applicable"].astype(bool), "spec_id"]:
        row = flagged[flagged.index(f"<td>{spec_id}</td>"):]
        assert "not applicable" in row[: row.index("</tr>")]
    metrics = json.loads((results_master / "metrics.json").read_text())
    for row in metrics["real"]["per_label"]:
        sub = real[real["label"] == row["label"]]
        assert row["n"] == len(sub) and row["svm"].get("type1", 0) == int((sub["predicted_label"] == "type1").sum())
    # every disagreement has its saliency figure, embedded in the page
    shown = real[real["saliency_figure"].notna()]
    disagree = (real["predicted_label"] != real["baseline_label"]) | (
        real["label"].isin(CLASSES3) & (real["predicted_label"] != real["label"]))
    assert set(shown["spec_id"]) == set(real.loc[disagree, "spec_id"])  # 5 spectra: fewer than MAX_FIGURES
    assert section.count('alt="saliency map of ') == len(shown)
    # the baseline finds the type 1's broad Hβ and the intermediate's broad Hα (balmer grid)
    row = real.set_index("spec_id")
    type1 = row.loc["0332-52367-0639"]
    assert type1["hb_fwhm_broad"] > 1200 and type1["baseline_label"] == "type1"
    assert np.isfinite(row.loc["1163-52669-0292", "ha_fwhm_broad"])
    assert "physics" in SECTIONS and "real" in SECTIONS and '<section id="physics">' in built


def test_real_section_reads_applicability_columns(results, tmp_path):
    """When classify's applicability columns are in the table, flagged predictions list their reasons."""
    path = results / "real" / "predictions.csv"
    real = pd.read_csv(path, dtype={"spec_id": str})
    real["applicable"] = [True, True, False, True, True]
    real["flags"] = ["", "", "kernel-collapse", "", "redshift-offset"]
    real["z_offset_kms"] = [10.0, -20.0, float("nan"), 5.0, 4900.0]
    real.to_csv(path, index=False)
    html = build_report(results, output=tmp_path / "r.html").read_text("utf-8")
    section = html[html.index('<section id="real">'):]
    section = section[: section.index("</section>")]
    assert "not computed" not in section.split("Flagged predictions")[1].split("</table>")[0]
    assert "not applicable; kernel-collapse" in section
    assert "redshift-offset; narrow lines at +4,900 km/s" in section


def test_embedded_figures_keep_their_palest_colours(tmp_path):
    """A figure is embedded with a 256-colour palette: a faint trace on white (saliency near zero)
    must stay visible, not merge into the background."""
    from PIL import Image

    from agnlens.report._folder import embed_figure

    pixels = np.full((60, 400, 3), 255, dtype=np.uint8)
    ramp = np.linspace(0, 1, 400)
    pixels[:20] = (255 * np.stack([ramp, ramp ** 2, 1 - ramp], axis=1))[None].astype(np.uint8)  # 400 colours
    faint = (240, 244, 248)  # a pale blue: RdBu_r of a saliency near zero
    pixels[40:44, 50:350] = faint
    Image.fromarray(pixels).save(tmp_path / "fig.png")
    fig = embed_figure(tmp_path, "fig.png", max_width=900)
    import io

    with Image.open(io.BytesIO(base64.b64decode(fig["src"].split(",", 1)[1]))) as im:
        assert im.mode == "P"
        got = np.asarray(im.convert("RGB"), dtype=int)
    assert np.abs(got[40:44, 50:350] - faint).max() <= 6
    assert (got[50:] == 255).all()
