"""A hostile or broken archive: another spectrum's file, an endless response, a server that drips.

Each case is served by a local HTTP server with the SAS layout and real SDSS files; nothing wrong
may be saved under a requested name, and nothing half-written may be left.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from agnlens.cli import main
from agnlens.io.download import download

from realdata import SPECTRA  # the in-repo real spectra (tests/data)

ASKED = "0266-51602-0107"  # the archive answers with OTHER's file for this one
OTHER = "0332-52367-0639"
BIG = "0266-51602-0013"  # an endless response, announced or not
DRIP = "0392-51793-0517"  # one byte every 50 ms
HEADER_DRIP = "0406-51869-0374"  # its headers one byte every 50 ms, never ending
GOOD = "0432-51884-0324"  # served as it is

pytestmark = pytest.mark.skipif(
    not (SPECTRA / f"spec-{ASKED}.fits").exists(),
    reason=f"the real SDSS spectra are not at {SPECTRA} (a plain clone has no ../shared)",
)


class _Hostile(BaseHTTPRequestHandler):
    requests: list
    announce: bool
    rows: list = []  # the SkyServer's answer
    drip: bool = False

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        self.requests.append(name)
        try:
            if name.startswith("SqlSearch"):
                self._skyserver()
            elif HEADER_DRIP in name:
                self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                for _ in range(400):  # 20 s at most
                    self.wfile.write(b"X-Slow: 1\r\n")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif GOOD in name:
                self._send((SPECTRA / f"spec-{GOOD}.fits").read_bytes())
            elif ASKED in name or OTHER in name:
                self._send((SPECTRA / f"spec-{OTHER}.fits").read_bytes())
            elif BIG in name:
                self.send_response(200)
                if self.announce:
                    self.send_header("Content-Length", str(400_000_000))
                self.end_headers()
                block = b"\0" * 65536
                for _ in range(400):  # 26 MB at most, then give up
                    self.wfile.write(block)
            elif DRIP in name:
                self.send_response(200)
                self.send_header("Content-Length", "300000")
                self.end_headers()
                for _ in range(200):  # 10 s at most
                    self.wfile.write(b"S")
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it should

    def _skyserver(self) -> None:
        """The SQL search service: ``rows`` as its CSV answer (whatever TOP asked), dripped
        a byte every 50 ms when ``drip``."""
        data = ("#Table1\nplate,mjd,fiberID,z\n" + "".join(f"{r}\n" for r in self.rows)).encode()
        if not self.drip:
            self._send(data)
            return
        self.send_response(200)
        self.end_headers()
        for byte in data * 100:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hostile(request):
    announce = getattr(request, "param", True)  # does the endless response announce its length?
    handler = type("H", (_Hostile,), {"requests": [], "announce": announce})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(url, out, ids, **kw):
    return download(pd.DataFrame({"spec_id": ids}), out, base_url=url, delay=0.0, backoff=0.01, retries=1,
                    timeout=10, **kw)


def test_another_spectrums_file_is_not_saved_under_the_requested_name(hostile, tmp_path):
    url, _ = hostile
    out = tmp_path / "out"
    report = _get(url, out, [ASKED, OTHER])
    assert report.done == [OTHER]
    assert f"it is the spectrum {OTHER}" in report.failed[ASKED] and "not kept" in report.failed[ASKED]
    assert sorted(p.name for p in out.iterdir()) == [f"spec-{OTHER}.fits"]


def test_a_local_file_of_another_spectrum_is_not_taken_as_present(hostile, tmp_path):
    url, _ = hostile
    out = tmp_path / "out"
    out.mkdir()
    (out / f"spec-{ASKED}.fits").write_bytes((SPECTRA / f"spec-{OTHER}.fits").read_bytes())
    report = _get(url, out, [ASKED])
    assert report.skipped == [] and ASKED in report.failed
    assert not (out / f"spec-{ASKED}.fits").exists()


@pytest.mark.parametrize("hostile", [True, False], ids=["announced", "unannounced"], indirect=True)
def test_an_endless_response_is_cut_off_at_the_size_cap(hostile, tmp_path):
    url, requests = hostile
    out = tmp_path / "out"
    report = _get(url, out, [BIG, OTHER], max_bytes=2_000_000)
    assert report.done == [OTHER]
    assert "2,000,000" in report.failed[BIG] and ("announces" in report.failed[BIG] or "exceeds" in report.failed[BIG])
    assert requests.count(f"spec-{BIG}.fits") == 1  # refused, not retried
    assert sorted(p.name for p in out.iterdir()) == [f"spec-{OTHER}.fits"]


def test_a_dripping_server_is_cut_off_at_the_total_deadline(hostile, tmp_path):
    url, _ = hostile
    out = tmp_path / "out"
    report = _get(url, out, [DRIP], deadline=1.0)
    assert "total deadline of 1 s" in report.failed[DRIP]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("flag", ["--max-bytes", "--deadline", "--timeout"])
def test_cli_limits_must_be_positive(tmp_path, capsys, flag):
    catalog = tmp_path / "c.csv"
    pd.DataFrame({"spec_id": [ASKED]}).to_csv(catalog, index=False)
    assert main(["download", str(catalog), "--out", str(tmp_path / "o"), flag, "0"]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err


def test_cli_reports_the_wrong_file_and_exits_1(hostile, tmp_path, capsys):
    url, _ = hostile
    catalog = tmp_path / "c.csv"
    pd.DataFrame({"spec_id": [ASKED]}).to_csv(catalog, index=False)
    status = main(["download", str(catalog), "--out", str(tmp_path / "o"), "--base-url", url, "--retries", "0",
                   "--max-bytes", "5000000", "--deadline", "20"])
    assert status == 1
    assert f"failed {ASKED}: downloaded from" in capsys.readouterr().err


def test_dripping_headers_are_cut_off_at_the_total_deadline(hostile, tmp_path):
    # urllib's timeout bounds one read: headers dripped faster than it would run for ever
    url, _ = hostile
    start = time.monotonic()
    report = _get(url, tmp_path / "out", [HEADER_DRIP, GOOD], deadline=1.0)
    assert time.monotonic() - start < 15.0
    assert "total deadline of 1 s" in report.failed[HEADER_DRIP]
    assert report.done == [GOOD]


def _sample(url, out, *extra):
    return main(["download", "--sample", "peruzzi2021", "--out", str(out), "--skyserver-url", f"{url}/SqlSearch",
                 "--archive-url", url, "--retries", "0", "--deadline", "3", *extra])


def _no_lists(tmp_path):
    empty = tmp_path / "none.csv"
    empty.write_text("pmf,z\n")
    return ["--type2-catalog", str(empty), "--intermediate-catalog", str(empty)]


def test_sample_rows_the_service_answers_badly_are_left_out_one_by_one(hostile, tmp_path, capsys):
    url, _ = hostile
    good = GOOD.split("-")
    hostile_rows = [f"{good[0]},{good[1]},{good[2]},0.45", ",51602,13,0.5", "abc,51602,13,0.5",
                    "-266,51602,13,0.5", "266,51602,12345678901234567890,0.5", "266.5,51602,13,0.5"]
    with _serving(rows=hostile_rows):
        status = _sample(url, tmp_path / "o", "--quasars", "10", *_no_lists(tmp_path))
    err = capsys.readouterr().err.splitlines()
    assert status == 1  # not everything the answer named is here
    left = [line for line in err if line.startswith("agnlens download: left out")]
    assert len(left) == 5, err
    assert any("row 2: plate '' is not a whole number" in line for line in left)
    assert any("fiber 12345678901234567890 is outside" in line for line in left)
    assert any("plate -266 is outside" in line for line in left)
    assert (tmp_path / "o" / f"spec-{GOOD}.fits").exists()  # the good row is downloaded
    labels = pd.read_csv(tmp_path / "o" / "labels.csv", dtype=str)
    assert list(labels.spec_id) == [GOOD]


def test_sample_takes_at_most_the_quasars_asked_for(hostile, tmp_path, capsys):
    url, _ = hostile
    good = GOOD.split("-")
    rows = [f"{good[0]},{good[1]},{good[2]},0.45"] + [f"{9000 + i},57000,{1 + i % 900},0.5" for i in range(3000)]
    with _serving(rows=rows):
        status = _sample(url, tmp_path / "o", "--quasars", "1", *_no_lists(tmp_path))
    assert status == 0, capsys.readouterr().err
    assert "labels for 1 spectra (type1 1)" in capsys.readouterr().out


def test_a_dripping_query_is_cut_off_at_the_deadline(hostile, tmp_path, capsys):
    url, _ = hostile
    start = time.monotonic()
    with _serving(rows=[f"266,51602,{i + 1},0.5" for i in range(50)], drip=True):
        status = _sample(url, tmp_path / "o", "--quasars", "50", *_no_lists(tmp_path))
    err = capsys.readouterr().err.strip().splitlines()
    assert time.monotonic() - start < 20.0
    assert status == 2 and len(err) == 1, err
    assert "total deadline of 3 s" in err[0]


def test_a_bare_list_with_bad_rows_downloads_the_good_ones(hostile, tmp_path, capsys):
    url, _ = hostile
    good = GOOD.split("-")
    catalog = tmp_path / "bare.csv"
    catalog.write_text(f"plate,mjd,fiber\nx,1,2\n{good[0]},{good[1]},{good[2]}\n266,51602,0\n")
    status = main(["download", str(catalog), "--out", str(tmp_path / "o"), "--base-url", url, "--retries", "0"])
    captured = capsys.readouterr()
    assert status == 1
    assert "1 downloaded" in captured.out and "2 catalogue rows left out" in captured.out
    assert "row 1: plate 'x' is not a whole number" in captured.err
    assert "row 3: fiber 0 is outside" in captured.err


class _serving:  # noqa: N801 (used as a context manager, like a function)
    """Sets what the hostile SkyServer answers for the length of a ``with``."""

    def __init__(self, rows, drip=False):
        self.values = {"rows": rows, "drip": drip}

    def __enter__(self):
        for k, v in self.values.items():
            setattr(_Hostile, k, v)

    def __exit__(self, *exc):
        _Hostile.rows, _Hostile.drip = [], False
