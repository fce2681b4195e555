"""The report in a real browser: headless Chromium renders it, a self-check script reports back.

No extra Python dependency: Chromium runs twice as a plain subprocess —

1. ``--dump-dom`` on a *copy* of the report with two small scripts added: one at the top of
   ``<head>`` that records console errors, uncaught exceptions and resource fetches before the
   page's own code runs, and one at the end of ``<body>`` that, after the load event, checks every
   section and image, hovers and clicks points of the interactive map through real DOM mouse events
   (hit-tested with ``elementFromPoint``), and writes its findings as JSON into the DOM that
   Chromium dumps;
2. ``--screenshot`` of the unmodified report.

The network is blocked for the browser (``--host-resolver-rules``), so a page that tried to fetch
anything would show it as a failed resource. Needs the Debian packages ``chromium`` (CI installs
them); without them the test FAILS with a message — deselect it with ``-m "not browser"``.
"""

from __future__ import annotations

import html as htmlmod
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agnlens.report import SECTIONS, build_report

from test_report import results_master  # noqa: F401  (the complete results folder, shared fixture)

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Runs first in <head>: record console errors, exceptions and fetched resources.
PROBE = """<script>
window.__agnlens_errors = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__agnlens_errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var where = e.target && e.target !== window ? " (" + (e.target.tagName || "?") + ")" : "";
    window.__agnlens_errors.push("error: " + (e.message || "resource failed") + where);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    window.__agnlens_errors.push("unhandled rejection: " + e.reason);
  });
})();
</script>"""

#: Runs last in <body>: the checks, written as JSON into <pre id="agnlens-selftest">.
SELFTEST = """<script>
window.addEventListener("load", function () {
  var out = {sections: {}, images: [], errors: null, map: {}, resources: []};
  function finish() {
    out.errors = window.__agnlens_errors;
    out.resources = performance.getEntriesByType("resource").map(function (r) { return r.name.slice(0, 60); });
    var pre = document.createElement("pre");
    pre.id = "agnlens-selftest";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  try {
    SECTION_IDS.forEach(function (id) {
      var s = document.getElementById(id);
      out.sections[id] = !!s && s.tagName === "SECTION" && s.offsetHeight > 40 && !!s.querySelector("h2");
    });
    Array.prototype.forEach.call(document.images, function (img) {
      if (img.id === "map-detail-img") return;
      out.images.push({id: img.id || img.alt, complete: img.complete, w: img.naturalWidth, h: img.naturalHeight,
                       shown: img.getBoundingClientRect().width});
    });
    var api = window.agnlensMap, plot = document.getElementById("map-plot");
    var real = document.getElementById("real");
    out.real = {perLabel: !!real && !!real.querySelector("#real-per-label tbody tr"),
                rows: real ? real.querySelectorAll("table.measurements tbody tr").length : 0,
                images: real ? Array.prototype.filter.call(real.querySelectorAll("img"), function (im) {
                  return im.complete && im.naturalWidth > 0 && im.getBoundingClientRect().width > 50; }).length : 0,
                cw: !!real && !!real.querySelector("#cw-test-real"), height: real ? real.offsetHeight : 0};
    out.map.ready = !!api && !!plot && plot.getAttribute("data-ready") === "true";
    if (!out.map.ready) { finish(); return; }
    out.map.n = api.n;
    out.map.circles = plot.querySelectorAll("g.pts circle").length;
    var tooltip = document.getElementById("map-tooltip");
    function fire(type, k) {
      var p = api.clientPosition(k);
      var target = document.elementFromPoint(p.x, p.y);
      var hit = !!target && plot.contains(target);
      (target || plot).dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window,
                                                          clientX: p.x, clientY: p.y}));
      return hit;
    }
    var k = api.firstWithFigure();
    out.map.k = k;
    plot.scrollIntoView({block: "center"});
    out.map.hit = fire("mousemove", k);
    out.map.hoverShown = !tooltip.hidden;
    out.map.hoverText = tooltip.textContent;
    out.map.hoverIndex = plot.getAttribute("data-hover");
    out.map.specId = api.id(k);
    fire("click", k);
    var detail = document.getElementById("map-detail"), img = document.getElementById("map-detail-img");
    out.map.detailShown = !detail.hidden && !img.hidden;
    out.map.selected = plot.getAttribute("data-selected");
    var fig = document.getElementById(plot.getAttribute("data-selected") === null ? "" :
                                      JSON.parse(document.getElementById("map-data").textContent).fig[k]);
    out.map.sameSrc = !!fig && img.getAttribute("src") === fig.getAttribute("src");
    plot.querySelector("svg").dispatchEvent(new MouseEvent("mouseleave", {bubbles: false}));
    out.map.hiddenAfterLeave = tooltip.hidden;
    img.decode().then(function () {
      out.map.detailWidth = img.naturalWidth;
    }, function (e) {
      out.map.detailWidth = -1;
    }).then(finish);
  } catch (e) {
    window.__agnlens_errors.push("selftest: " + e);
    finish();
  }
});
</script>"""


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium not found (looked for " + ", ".join(CHROMIUM_NAMES) + "): install it with "
        "`apt-get install -y chromium chromium-driver`, or deselect this test with -m 'not browser'"
    )


def _run_chromium(args: list[str], profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--mute-audio", "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: any fetch would fail and be recorded
        f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(report: Path, out: Path, *, width: int = 1280, height: int = 2400) -> Path:
    """Save a PNG screenshot of ``report`` (its first ``height`` pixels) to ``out`` with headless Chromium."""
    out = Path(out).resolve()
    profile = out.parent / ".chromium-profile"
    proc = _run_chromium([f"--window-size={width},{height}", f"--screenshot={out}",
                          Path(report).resolve().as_uri()], profile)
    shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium --screenshot failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return out


def selfcheck(report: Path, workdir: Path, sections=SECTIONS) -> dict:
    """Open a copy of ``report`` with the probe and self-test scripts; return the self-test findings
    (``sections``: the ids of the sections to check)."""
    page = Path(report).read_text(encoding="utf-8")
    assert page.count("<head>") == 1 and page.count("</body>") == 1
    test_js = SELFTEST.replace("SECTION_IDS", json.dumps(list(sections)))
    page = page.replace("<head>", "<head>\n" + PROBE, 1).replace("</body>", test_js + "\n</body>", 1)
    harness = workdir / "selftest.html"
    harness.write_text(page, encoding="utf-8")
    # a second, longer try only when Chromium dumped the page before the self-test wrote its report (seen
    # once on a 2-core machine running two test suites at once); a report that says something failed is final
    for budget in (15000, 60000):
        proc = _run_chromium(["--window-size=1280,1600", f"--virtual-time-budget={budget}", "--dump-dom",
                              harness.resolve().as_uri()], workdir / f"profile-{budget}")
        match = re.search(r'<pre id="agnlens-selftest">(.*?)</pre>', proc.stdout, re.S)
        if match is not None:
            break
    if match is None:
        pytest.fail(f"the self-test did not report (chromium exit {proc.returncode}); stderr:\n{proc.stderr[-3000:]}")
    result = json.loads(htmlmod.unescape(match.group(1)))
    # Chromium also logs uncaught page errors on stderr
    result["stderr_console"] = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    return result


@pytest.fixture(scope="module")
def report(results_master, tmp_path_factory) -> Path:  # noqa: F811  (the fixture imported above, by name)
    return build_report(results_master, output=tmp_path_factory.mktemp("browser") / "report.html")


def test_report_renders_in_chromium(report, tmp_path):
    res = selfcheck(report, tmp_path)
    assert res["errors"] == [], res["errors"]
    assert res["stderr_console"] == []
    assert res["resources"] == [], f"the page fetched resources: {res['resources']}"
    missing = [sid for sid, ok in res["sections"].items() if not ok]
    assert not missing, f"sections not rendered: {missing}"
    assert set(res["sections"]) == set(SECTIONS)
    assert len(res["images"]) >= 8
    broken = [img for img in res["images"] if not (img["complete"] and img["w"] > 0 and img["h"] > 0)]
    assert not broken, f"images not loaded: {broken}"
    assert all(img["shown"] > 50 for img in res["images"]), res["images"]

    real = res["real"]  # the real-data section: per-label table, measurements, figures, centre vs wings
    assert real["perLabel"] and real["cw"] and real["height"] > 400, real
    assert real["rows"] == 5, real
    assert real["images"] >= 2, real  # thumbnails and at least one disagreement map

    m = res["map"]
    assert m["ready"], "the interactive map did not initialise"
    assert m["n"] == m["circles"] == 240
    assert m["hit"], "the hovered point is covered by another element"
    assert m["hoverShown"] and m["hoverIndex"] == str(m["k"])
    assert m["specId"] in m["hoverText"] and "true:" in m["hoverText"] and "P(type 1)" in m["hoverText"]
    assert m["detailShown"] and m["selected"] == str(m["k"]) and m["sameSrc"]
    assert m["detailWidth"] > 0, "the saliency figure shown on click did not decode"
    assert m["hiddenAfterLeave"]


def test_report_screenshot(report, tmp_path):
    from PIL import Image

    out = screenshot(report, tmp_path / "report.png", width=1280, height=2000)
    with Image.open(out) as im:
        assert im.size == (1280, 2000)
        # not a blank page: the banner, text and figures make many distinct colours
        colours = im.convert("RGB").resize((320, 500)).getcolors(maxcolors=1_000_000)
        assert len(colours) > 200
