"""Tests of the SDSS downloader against a local HTTP server with the SAS directory layout."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.io.download import (
    NetworkError,
    download,
    spectrum_urls,
    verify_spectrum_file,
)

from realdata import SPECTRA  # the in-repo real spectra (tests/data)

LEGACY = "0266-51602-0107"  # Legacy plate, served under redux/26
BOSS = "4414-55882-0184"  # BOSS plate, served under eboss/.../v5_13_2
FLAKY = "0332-52367-0639"  # answers 500 once, then the file
TRUNCATED = "0392-51793-0517"  # served cut short (with a matching Content-Length)
MISSING = "0999-51000-0001"  # nowhere: 404 at every location


def _sas_path(spec_id: str) -> str:
    return "/" + spectrum_urls(spec_id, base_url="")[0].lstrip("/")


class _Handler(SimpleHTTPRequestHandler):
    requests: Counter
    failed_once: set

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.requests[self.path] += 1
        name = self.path.rsplit("/", 1)[-1]
        if FLAKY in name and name not in self.failed_once:
            self.failed_once.add(name)
            self.send_error(500, "temporary trouble")
            return
        if TRUNCATED in name:
            data = (SPECTRA / f"spec-{TRUNCATED}.fits").read_bytes()[:100_000]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "sas"
    for spec_id in (LEGACY, FLAKY):
        dest = root / _sas_path(spec_id).lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SPECTRA / f"spec-{spec_id}.fits", dest)
    boss = root / spectrum_urls(BOSS, base_url="")[0].lstrip("/")
    assert "eboss/spectro/redux/v5_13_2" in str(boss)
    boss.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPECTRA / f"spec-{BOSS}.fits", boss)

    handler = type("Handler", (_Handler,), {"requests": Counter(), "failed_once": set()})

    def factory(*args, **kwargs):
        return handler(*args, directory=str(root), **kwargs)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _catalog(tmp_path: Path, spec_ids: list[str]) -> Path:
    rows = [dict(zip(("plate", "mjd", "fiberid"), map(int, s.split("-")), strict=True)) for s in spec_ids]
    path = tmp_path / "catalog.csv"
    pd.DataFrame(rows).to_csv(path, index=False)  # a bare plate-mjd-fiber list, no labels
    return path


def test_urls_follow_the_sas_layout_and_plate_number():
    legacy = spectrum_urls("266-51602-13", base_url="https://data.sdss.org/sas/")
    assert legacy[0] == (
        "https://data.sdss.org/sas/dr17/sdss/spectro/redux/26/spectra/lite/0266/spec-0266-51602-0013.fits"
    )
    assert "eboss/spectro/redux/v5_13_2" in legacy[-1]
    boss = spectrum_urls("4414-55882-0184")
    assert boss[0] == (
        "https://data.sdss.org/sas/dr17/eboss/spectro/redux/v5_13_2/spectra/lite/4414/"
        "spec-4414-55882-0184.fits"
    )
    with pytest.raises(ValueError, match="unknown SDSS release"):
        spectrum_urls(LEGACY, release="dr99")
    with pytest.raises(ValueError, match="not PLATE-MJD-FIBER"):
        spectrum_urls("spec-266.fits")


def test_download_retries_verifies_reports_and_resumes(server, tmp_path):
    url, requests = server
    catalog = _catalog(tmp_path, [LEGACY, BOSS, FLAKY, TRUNCATED, MISSING])
    out = tmp_path / "out"
    report = download(catalog, out, base_url=url, max_workers=3, delay=0.0, backoff=0.01, timeout=10)

    assert report.done == [LEGACY, BOSS, FLAKY]
    assert set(report.failed) == {TRUNCATED, MISSING}
    assert "not kept" in report.failed[TRUNCATED] and "truncated" in report.failed[TRUNCATED]
    assert "HTTP 404" in report.failed[MISSING]
    assert not report.ok
    # The flaky file was retried after its 500 and is byte-identical to the original.
    assert requests[_sas_path(FLAKY)] == 2
    for spec_id in report.done:
        local = out / f"spec-{spec_id}.fits"
        assert local.read_bytes() == (SPECTRA / f"spec-{spec_id}.fits").read_bytes()
        assert verify_spectrum_file(local) is None
    # Nothing half-written is left behind.
    assert sorted(p.name for p in out.iterdir()) == sorted(f"spec-{s}.fits" for s in report.done)
    # The missing spectrum was looked for at every location (Legacy runs, then BOSS).
    assert sum(n for path, n in requests.items() if MISSING in path) == 4

    # Resume: a second run downloads nothing that is already there.
    before = sum(n for path, n in requests.items() if TRUNCATED not in path and MISSING not in path)
    again = download(catalog, out, base_url=url, max_workers=2, delay=0.0, backoff=0.01, timeout=10)
    after = sum(n for path, n in requests.items() if TRUNCATED not in path and MISSING not in path)
    assert again.done == [] and again.skipped == [LEGACY, BOSS, FLAKY]
    assert after == before
    assert set(again.failed) == {TRUNCATED, MISSING}


def test_a_corrupt_local_file_is_fetched_again(server, tmp_path):
    url, _ = server
    out = tmp_path / "out"
    out.mkdir()
    (out / f"spec-{LEGACY}.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    frame = pd.DataFrame({"spec_id": [LEGACY]})
    report = download(frame, out, base_url=url, delay=0.0, timeout=10)
    assert report.done == [LEGACY]
    assert verify_spectrum_file(out / f"spec-{LEGACY}.fits") is None


def test_unreachable_host_fails_fast_with_a_clear_message(tmp_path):
    catalog = _catalog(tmp_path, [LEGACY])
    start = time.monotonic()
    with pytest.raises(NetworkError, match=r"cannot reach http://127\.0\.0\.1:9: .*no network\?"):
        download(catalog, tmp_path / "out", base_url="http://127.0.0.1:9", timeout=30)
    assert time.monotonic() - start < 6.0


def test_catalogue_without_keys_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no spec_id column and no plate, mjd and fiber"):
        download(pd.DataFrame({"ra": [1.0]}), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="catalogue not found"):
        download(tmp_path / "nope.csv", tmp_path / "out")
    with pytest.raises(ValueError, match="max_workers"):
        download(pd.DataFrame({"spec_id": [LEGACY]}), tmp_path / "out", max_workers=0)


def test_cli_download(server, tmp_path, capsys):
    url, _ = server
    # A labelled catalogue in the shared catalogues' format (pmf + label).
    catalog = tmp_path / "labelled.csv"
    pd.DataFrame({"pmf": [LEGACY, BOSS], "label": ["type2", "type1"]}).to_csv(catalog, index=False)
    out = tmp_path / "cli-out"
    assert main(["download", str(catalog), "--out", str(out), "--base-url", url, "--jobs", "2"]) == 0
    assert "2 downloaded" in capsys.readouterr().out

    bad = _catalog(tmp_path, [LEGACY, MISSING])
    status = main(["download", str(bad), "--out", str(out), "--base-url", url, "--retries", "0"])
    captured = capsys.readouterr()
    assert status == 1
    assert f"failed {MISSING}" in captured.err and "1 already present" in captured.out

    status = main(["download", str(bad), "--out", str(tmp_path / "x"), "--base-url", "http://127.0.0.1:9"])
    assert status == 2  # nothing could be fetched: an unusable --base-url (README: exit 2)
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


# ------------------------------------------------------------------ the peruzzi2021 sample
SHARED = SPECTRA.parent


class _ArchiveAndSkyServer(SimpleHTTPRequestHandler):
    """Plays the SAS (real files by name, whatever the run directory) and the SQL search service."""

    queries: list

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        import re
        import urllib.parse

        path, _, query = self.path.partition("?")
        if path.endswith("/SqlSearch"):
            sql = urllib.parse.parse_qs(query)["cmd"][0]
            self.queries.append(sql)
            top = int(re.search(r"TOP (\d+)", sql).group(1))
            lo, hi = map(float, re.search(r"z BETWEEN ([\d.]+) AND ([\d.]+)", sql).groups())
            labels = pd.read_csv(SHARED / "labels.csv", dtype={"spec_id": str})
            rows = labels[(labels.label == "type1") & labels.z.between(lo, hi)].head(top)
            lines = ["#Table1", "plate,mjd,fiberID,z"] + [
                ",".join([str(int(p)) for p in s.split("-")] + [str(z)]) for s, z in zip(rows.spec_id, rows.z)
            ]
            data = ("\n".join(lines) + "\n").encode()
        else:
            local = SPECTRA / path.rsplit("/", 1)[-1]
            if not local.is_file():
                self.send_error(404)
                return
            data = local.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def archive():
    if not (SHARED / "labels.csv").exists():
        pytest.skip(f"the real SDSS spectra are not at {SHARED} (a plain clone has no ../shared)")
    handler = type("H", (_ArchiveAndSkyServer,), {"queries": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.queries
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_sample_end_to_end(archive, tmp_path, capsys):
    url, queries = archive
    labels = pd.read_csv(SHARED / "labels.csv", dtype={"spec_id": str})
    # the shipped catalogues' format, naming real spectra the local archive holds
    type2 = labels[labels.label == "type2"].spec_id
    pd.DataFrame({"plate": [int(s.split("-")[0]) for s in type2], "mjd": [int(s.split("-")[1]) for s in type2],
                  "fiberid": [int(s.split("-")[2]) for s in type2], "pmf": type2, "label": "seyfert2"}
                 ).to_csv(tmp_path / "t2.csv", index=False)
    inter = labels[labels.label == "intermediate"]
    inter_table = pd.DataFrame({"pmf": inter.spec_id, "z": inter.z, "label": "intermediate_seyfert"})
    inter_table.to_csv(tmp_path / "int.csv", index=False)
    out = tmp_path / "peruzzi"
    status = main(["download", "--sample", "peruzzi2021", "--out", str(out), "--quasars", "5",
                   "--skyserver-url", f"{url}/dr17/SkyServerWS/SearchTools/SqlSearch", "--archive-url", f"{url}/sas",
                   "--type2-catalog", str(tmp_path / "t2.csv"), "--intermediate-catalog", str(tmp_path / "int.csv"),
                   "--jobs", "2"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    # what the local archive holds: every type 2 and intermediate named, the quasars the query selects
    quasars = labels[(labels.label == "type1") & labels.z.between(0.4, 0.75)]
    expected = {"intermediate": len(inter), "type1": min(5, len(quasars)), "type2": len(type2)}
    assert expected["type1"] >= 2, "the test data must hold quasars at 0.4 <= z <= 0.75"
    counts = ", ".join(f"{k} {v}" for k, v in sorted(expected.items()))
    assert f"labels for {sum(expected.values())} spectra ({counts})" in printed
    (sql,) = queries
    assert "TOP 5" in sql and "z BETWEEN 0.4 AND 0.75" in sql and "s.class = 'QSO'" in sql
    written = pd.read_csv(out / "labels.csv", dtype={"spec_id": str})
    assert written.groupby("label").size().to_dict() == expected
    assert (written.z[written.label == "type1"] >= 0.4).all()
    for spec_id, name in zip(written.spec_id, written.file):
        assert (out / name).read_bytes() == (SPECTRA / f"spec-{spec_id}.fits").read_bytes()
    # the labels file is what ingest takes: a store to train on (agnlens demo --store)
    store = tmp_path / "peruzzi.zarr"
    assert main(["ingest", str(out), "--labels", str(out / "labels.csv"), "--grid", "paper", "--out", str(store)]) == 0
    from agnlens.io.store import open_store

    stored = open_store(store)
    assert dict(zip(stored.spec_id, stored.labels)) == dict(zip(written.spec_id, written.label))


def test_download_sample_without_network_fails_fast_in_one_line(tmp_path, capsys):
    start = time.monotonic()
    status = main(["download", "--sample", "peruzzi2021", "--out", str(tmp_path / "o"),
                   "--skyserver-url", "http://127.0.0.1:9/SqlSearch", "--archive-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1  # nothing could be done: unusable input
    assert err[0].startswith("agnlens download: error: cannot reach http://127.0.0.1:9:")
    assert time.monotonic() - start < 10.0


def test_shipped_peruzzi_catalogues():
    from agnlens.io.samples import sample_catalog

    catalog, quasars = sample_catalog("peruzzi2021", n_quasars=0)  # no query: the shipped lists only
    counts = catalog.groupby("label").size().to_dict()
    assert counts["type2"] == 2153 and counts["intermediate"] <= 521 and counts["intermediate"] > 500
    assert catalog.spec_id.is_unique and quasars.empty
    assert catalog.spec_id.str.fullmatch(r"\d{4,5}-\d{5}-\d{4}").all()


def test_cli_catalog_or_sample(tmp_path, capsys):
    assert main(["download", "--out", str(tmp_path)]) == 2
    assert "give a CATALOG or --sample" in capsys.readouterr().err
