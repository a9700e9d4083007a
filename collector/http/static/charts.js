// Worklens dashboard charts: small SVG drawn by our own code (no library, no
// build step, nothing from the network). A stacked bar per period (active,
// passive, idle hours) and a line for the productive share of active time.
// Every bar carries a <title> with its numbers in words, and the page puts the
// same numbers in a table beside the chart: colour is never the only carrier.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// A "nice" axis maximum and step for values up to `max`.
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

// points: [{label, short, values: {active, passive, idle} (hours), share (0..1 or null), title}]
// series: [{key, label, cls}]
function trendChart(points, series, { width = 640, height = 220, ariaLabel = "" } = {}) {
  const pad = { left: 62, right: 40, top: 12, bottom: 34 };
  const plotW = Math.max(60, width - pad.left - pad.right);
  const plotH = height - pad.top - pad.bottom;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": ariaLabel, class: "chart" });
  const totals = points.map((p) => series.reduce((s, x) => s + (p.values[x.key] || 0), 0));
  const { top, step } = niceScale(Math.max(0, ...totals));
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(svgEl("line", { x1: pad.left, x2: pad.left + plotW, y1: y(v), y2: y(v),
                               class: "grid" }));
    svg.append(svgEl("text", { x: pad.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" },
                     `${(+v.toFixed(1)).toLocaleString("en-US")} h`));
  }
  for (const share of [0, 0.5, 1]) {
    svg.append(svgEl("text", { x: pad.left + plotW + 6, y: pad.top + plotH - share * plotH + 4,
                               class: "tick share" }, `${share * 100}%`));
  }
  const slot = plotW / Math.max(1, points.length);
  const barW = Math.max(1, Math.min(48, slot * 0.7));
  const labelEvery = Math.max(1, Math.ceil(points.length / Math.max(1, plotW / 56)));
  const line = [];
  points.forEach((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const g = svgEl("g", { class: "bar-group" });
    g.append(svgEl("title", {}, p.title));
    let base = 0;
    for (const s of series) {
      const v = p.values[s.key] || 0;
      if (v > 0) {
        g.append(svgEl("rect", { x, width: barW, y: y(base + v), height: Math.max(0, y(base) - y(base + v)),
                                 class: `tbar ${s.cls}` }));
      }
      base += v;
    }
    svg.append(g);
    if (p.share !== null && p.share !== undefined) {
      line.push([x + barW / 2, pad.top + plotH - p.share * plotH]);
    }
    if (i % labelEvery === 0) {
      svg.append(svgEl("text", { x: x + barW / 2, y: height - pad.bottom + 16, class: "tick",
                                 "text-anchor": "middle" }, p.short || p.label));
    }
  });
  if (line.length > 1) {
    svg.append(svgEl("polyline", { points: line.map((pt) => pt.join(",")).join(" "),
                                   class: "share-line" }));
  }
  for (const [cx, cy] of line) svg.append(svgEl("circle", { cx, cy, r: 2.5, class: "share-dot" }));
  return svg;
}

window.WorklensCharts = { svgEl, trendChart, niceScale };
