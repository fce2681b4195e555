/* agnlens report: the interactive t-SNE map.
 *
 * Reads the points from <script type="application/json" id="map-data"> and draws them as SVG.
 * Hover shows a tooltip (spec_id, true and predicted type, class probabilities); a click on a point
 * with a saliency map shows that figure, which is already embedded in the page (<img id="sal-N">).
 * Spectra placed on the map of a training sample (data.new) are drawn on top, larger, outlined and
 * coloured by their predicted class.
 * No network, no libraries; all text is set with textContent (never innerHTML).
 */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg"; // a namespace name, not fetched
  var COLOURS = {}; // class -> colour and class -> name, from the data block (agnlens.classes)
  var OTHER = "#9a9a9a";
  var NAMES = {};
  var ORDER = ["other", "type2", "type1", "intermediate", "new"]; // intermediates, then placed spectra on top

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVGNS, name);
    for (var key in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, attrs[key]);
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function className(label) {
    return Object.prototype.hasOwnProperty.call(NAMES, label) ? NAMES[label] : (label || "unknown");
  }

  function group(label) {
    return Object.prototype.hasOwnProperty.call(COLOURS, label) ? label : "other";
  }

  function fmtP(p) {
    return p === null || p === undefined ? "–" : p.toFixed(2);
  }

  function init() {
    var source = document.getElementById("map-data");
    var host = document.getElementById("map-plot");
    if (!source || !host) return;
    var data = JSON.parse(source.textContent);
    COLOURS = data.colours;
    NAMES = data.names;
    var n = data.x.length;
    var tooltip = document.getElementById("map-tooltip");
    var detail = document.getElementById("map-detail");
    var detailText = document.getElementById("map-detail-text");
    var detailImg = document.getElementById("map-detail-img");
    var legend = document.getElementById("map-legend");

    var W = 600, H = 500, PAD = 14;
    var xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (var i = 0; i < n; i++) {
      if (data.x[i] < xmin) xmin = data.x[i];
      if (data.x[i] > xmax) xmax = data.x[i];
      if (data.y[i] < ymin) ymin = data.y[i];
      if (data.y[i] > ymax) ymax = data.y[i];
    }
    var span = Math.max(xmax - xmin, ymax - ymin) || 1;
    var scale = Math.min((W - 2 * PAD) / (xmax - xmin || span), (H - 2 * PAD) / (ymax - ymin || span));
    var px = new Float64Array(n), py = new Float64Array(n);
    for (i = 0; i < n; i++) {
      px[i] = PAD + (data.x[i] - xmin) * scale + ((W - 2 * PAD) - (xmax - xmin) * scale) / 2;
      py[i] = H - PAD - (data.y[i] - ymin) * scale - ((H - 2 * PAD) - (ymax - ymin) * scale) / 2;
    }

    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "class": "map-svg" }, host);
    el("rect", { x: 0, y: 0, width: W, height: H, fill: "#fff" }, svg);
    var radius = n > 2000 ? 2.2 : n > 500 ? 3 : 4;
    var groups = {}, counts = {}, hidden = {};
    function pointGroup(k) { return data["new"] && data["new"][k] ? "new" : group(data.label[k]); }
    ORDER.forEach(function (g) {
      var attrs = g === "new" ? { "class": "pts pts-new", stroke: "#000", "stroke-width": 1.3 } :
        { "class": "pts pts-" + g, fill: g === "other" ? OTHER : COLOURS[g] };
      groups[g] = el("g", attrs, svg);
      counts[g] = 0;
    });
    var marks = el("g", { "class": "marks" }, svg);
    for (i = 0; i < n; i++) {
      var g = pointGroup(i);
      counts[g]++;
      var attrs = { cx: px[i].toFixed(1), cy: py[i].toFixed(1), r: radius, "data-i": i };
      if (g === "new") {
        attrs.r = radius + 3;
        attrs.fill = COLOURS[group(data.pred[i])] || OTHER;
      }
      el("circle", attrs, groups[g]);
    }
    for (i = 0; i < n; i++) {
      if (data.fig[i]) {
        el("circle", { cx: px[i].toFixed(1), cy: py[i].toFixed(1), r: radius + 2.5, fill: "none",
          stroke: "#000", "stroke-width": 0.9, "class": "mark-fig", "data-g": pointGroup(i) }, marks);
      }
      if (data.mis[i]) {
        var s = radius + 1.5, x0 = px[i], y0 = py[i];
        el("path", { d: "M" + (x0 - s) + " " + (y0 - s) + "L" + (x0 + s) + " " + (y0 + s) + "M" + (x0 - s) + " " +
          (y0 + s) + "L" + (x0 + s) + " " + (y0 - s), stroke: "#000", "stroke-width": 1.2, "class": "mark-mis",
          "data-g": pointGroup(i) }, marks);
      }
    }
    var ring = el("circle", { r: radius + 5, fill: "none", stroke: "#111", "stroke-width": 2, visibility: "hidden",
      "class": "hover-ring" }, svg);

    // legend: one toggle button per class present
    ORDER.forEach(function (g) {
      if (!counts[g]) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "legend-item";
      button.setAttribute("aria-pressed", "true");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = g === "other" || g === "new" ? (g === "new" ? "#fff" : OTHER) : COLOURS[g];
      if (g === "new") swatch.style.border = "1.5px solid #000";
      button.appendChild(swatch);
      var name = g === "other" ? "other" : g === "new" ? "these spectra, by prediction" : NAMES[g];
      button.appendChild(document.createTextNode(name + " (" + counts[g] + ")"));
      button.addEventListener("click", function () {
        hidden[g] = !hidden[g];
        groups[g].style.display = hidden[g] ? "none" : "";
        var m = marks.querySelectorAll('[data-g="' + g + '"]');
        for (var k = 0; k < m.length; k++) m[k].style.display = hidden[g] ? "none" : "";
        button.setAttribute("aria-pressed", hidden[g] ? "false" : "true");
      });
      legend.appendChild(button);
    });
    var key = document.createElement("span");
    key.className = "legend-key";
    key.textContent = "× misclassified   ○ has a saliency map";
    legend.appendChild(key);

    function toSvg(evt) {
      var pt = svg.createSVGPoint();
      pt.x = evt.clientX;
      pt.y = evt.clientY;
      var ctm = svg.getScreenCTM();
      return ctm ? pt.matrixTransform(ctm.inverse()) : pt;
    }

    function nearest(evt) {
      var p = toSvg(evt), best = -1, bestD = 64; // within 8 SVG units
      for (var k = 0; k < n; k++) {
        if (hidden[pointGroup(k)]) continue;
        var dx = px[k] - p.x, dy = py[k] - p.y, d = dx * dx + dy * dy;
        if (d < bestD) { bestD = d; best = k; }
      }
      return best;
    }

    function describe(k) {
      var lines = [];
      lines.push(data.id[k] || "(no id)");
      var placed = data["new"] && data["new"][k];
      var truth = placed ? (data.label[k] ? "catalogue: " + className(data.label[k]) : "no catalogue label") :
        "true: " + className(data.label[k]);
      if (data.pred[k]) truth += " · predicted: " + className(data.pred[k]);
      lines.push(truth);
      var probs = [];
      ["type1", "type2", "intermediate"].forEach(function (c) {
        var v = data.p[c] ? data.p[c][k] : null;
        if (v !== null && v !== undefined) probs.push("P(" + NAMES[c] + ") " + fmtP(v));
      });
      if (probs.length) lines.push(probs.join("  "));
      var extra = [];
      if (data.split[k]) extra.push(data.split[k] + " set");
      if (data.mis[k]) extra.push("misclassified");
      if (data.fig[k]) extra.push("click for its saliency map");
      if (extra.length) lines.push(extra.join(", "));
      return lines;
    }

    function showTooltip(k, evt) {
      while (tooltip.firstChild) tooltip.removeChild(tooltip.firstChild);
      describe(k).forEach(function (line, j) {
        var div = document.createElement("div");
        if (j === 0) div.className = "tt-id";
        div.textContent = line;
        tooltip.appendChild(div);
      });
      var box = host.parentNode.getBoundingClientRect();
      tooltip.style.left = (evt.clientX - box.left + 14) + "px";
      tooltip.style.top = (evt.clientY - box.top + 14) + "px";
      tooltip.hidden = false;
      ring.setAttribute("cx", px[k]);
      ring.setAttribute("cy", py[k]);
      ring.setAttribute("visibility", "visible");
      host.setAttribute("data-hover", String(k));
    }

    function hideTooltip() {
      tooltip.hidden = true;
      ring.setAttribute("visibility", "hidden");
      host.removeAttribute("data-hover");
    }

    function select(k) {
      detail.hidden = false;
      var text = describe(k).slice(0, 2).join(" — ");
      var source = data.fig[k] ? document.getElementById(data.fig[k]) : null;
      if (source && source.getAttribute("src")) {
        detailImg.src = source.getAttribute("src");
        detailImg.alt = "saliency map of " + (data.id[k] || "the selected spectrum");
        detailImg.hidden = false;
        detailText.textContent = text;
      } else {
        detailImg.hidden = true;
        detailImg.removeAttribute("src");
        detailText.textContent = text + " — no saliency map was computed for this spectrum.";
      }
      host.setAttribute("data-selected", String(k));
    }

    svg.addEventListener("mousemove", function (evt) {
      var k = nearest(evt);
      if (k < 0) { hideTooltip(); svg.style.cursor = ""; return; }
      showTooltip(k, evt);
      svg.style.cursor = data.fig[k] ? "pointer" : "";
    });
    svg.addEventListener("mouseleave", hideTooltip);
    svg.addEventListener("click", function (evt) {
      var k = nearest(evt);
      if (k >= 0) select(k);
    });

    // for readers' scripts and the browser test: where a point is on screen
    window.agnlensMap = {
      n: n,
      clientPosition: function (k) {
        var ctm = svg.getScreenCTM(), pt = svg.createSVGPoint();
        pt.x = px[k];
        pt.y = py[k];
        var q = pt.matrixTransform(ctm);
        return { x: q.x, y: q.y };
      },
      firstWithFigure: function () {
        for (var k = 0; k < n; k++) if (data.fig[k]) return k;
        return -1;
      },
      id: function (k) { return data.id[k]; }
    };
    host.setAttribute("data-ready", "true");
  }

  // saliency gallery: a click on a thumbnail shows it at full width (and back)
  function initGallery() {
    var thumbs = document.querySelectorAll(".thumb img.saliency");
    for (var i = 0; i < thumbs.length; i++) {
      thumbs[i].addEventListener("click", function (evt) {
        evt.currentTarget.parentNode.classList.toggle("zoom");
      });
    }
  }

  function start() {
    initGallery();
    init();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
