// Worklens day timeline: one agent's day as SVG, zoomable from 24 h down to
// a few minutes (mouse wheel or the buttons; drag or arrow keys to move).
// Spans narrower than a pixel at the current zoom are merged into one mark
// ("12 spans, zoom in"), so a day of thousands of short spans stays readable
// and fast; the tooltip names the app, title, start, end and duration. A thin
// strip under the windows marks their passive stretches (no input, but a video
// or a call), coloured by the class that time counts as: a rule may count it
// apart from its window's own (a call in the chat app as Meetings).
// Data goes on the page as text only (titles are attacker-controlled).
"use strict";

(function () {
  const { svgEl } = window.WorklensCharts;
  const LABEL_W = 74;
  const MIN_VIEW_MS = 5 * 60 * 1000;
  const TICK_STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360];

  function appColour(name) {
    let h = 0;
    for (const ch of name || "") h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return `hsl(${h % 360}, 55%, 50%)`;
  }

  // The value of `key` holding the most time among items[first..last].
  function dominant(items, first, last, key) {
    const time = new Map();
    for (let i = first; i <= last; i += 1) {
      const it = items[i];
      time.set(it[key], (time.get(it[key]) || 0) + (it.end_ms - it.start_ms));
    }
    let best = null, most = -1;
    for (const [k, v] of time) if (v > most) { best = k; most = v; }
    return best;
  }

  function clockFormat(tz, seconds) {
    const opts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (seconds) opts.second = "2-digit";
    try {
      return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone: tz || undefined });
    } catch (_) {
      return new Intl.DateTimeFormat("en-GB", opts);
    }
  }

  class DayTimeline {
    constructor(host, data, { duration }) {
      this.host = host;
      this.data = data;
      this.duration = duration;
      this.d0 = data.start_ms;
      this.d1 = data.end_ms;
      this.v0 = this.d0;
      this.v1 = this.d1;
      this.clock = clockFormat(data.tz, true);
      this.hhmm = clockFormat(data.tz, false);
      this.build();
      this.draw();
    }

    build() {
      const bar = document.createElement("div");
      bar.className = "controls tl-controls";
      const button = (label, text, fn) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = text;
        b.setAttribute("aria-label", label);
        b.addEventListener("click", fn);
        bar.append(b);
        return b;
      };
      button("Zoom in", "Zoom in +", () => this.zoom(0.5));
      button("Zoom out", "Zoom out −", () => this.zoom(2));
      button("Whole day", "Whole day", () => this.setView(this.d0, this.d1));
      this.rangeLabel = document.createElement("span");
      this.rangeLabel.id = "tl-range";
      this.rangeLabel.className = "status";
      this.rangeLabel.setAttribute("aria-live", "polite");
      bar.append(this.rangeLabel);
      this.svg = svgEl("svg", { class: "tl-svg", tabindex: 0, role: "img", height: 96,
                                "aria-label": "Day timeline. Arrow keys move, + and - zoom, " +
                                              "0 shows the whole day." });
      this.tip = document.createElement("div");
      this.tip.className = "tooltip";
      this.tip.id = "tl-tip";
      this.tip.hidden = true;
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.textContent = "Wheel or buttons to zoom, drag or arrow keys to move. Marks " +
        "narrower than a pixel are merged: zoom in to separate them.";
      const wrap = document.createElement("div");
      wrap.className = "tl-wrap";
      wrap.append(this.svg, this.tip);
      this.host.replaceChildren(bar, wrap, hint);
      this.svg.addEventListener("wheel", (ev) => {
        ev.preventDefault();
        if (!ev.deltaY) return;   // a sideways scroll is not a zoom
        this.zoom(ev.deltaY < 0 ? 0.8 : 1.25, this.timeAt(ev.clientX));
      }, { passive: false });
      this.svg.addEventListener("pointerdown", (ev) => this.dragStart(ev));
      this.svg.addEventListener("pointermove", (ev) => this.hover(ev));
      this.svg.addEventListener("pointerleave", () => { this.tip.hidden = true; });
      this.svg.addEventListener("keydown", (ev) => this.key(ev));
      this.resize = () => this.draw();
      window.addEventListener("resize", this.resize);
    }

    get width() { return Math.max(200, this.host.clientWidth || 600); }
    get plotW() { return this.width - LABEL_W - 22; }   // room for the last tick's label

    timeAt(clientX) {
      const box = this.svg.getBoundingClientRect();
      const x = (clientX - box.left) * (this.width / Math.max(1, box.width)) - LABEL_W;
      return this.v0 + (Math.min(Math.max(x, 0), this.plotW) / this.plotW) * (this.v1 - this.v0);
    }

    setView(a, b) {
      let len = Math.max(MIN_VIEW_MS, Math.min(b - a, this.d1 - this.d0));
      a = Math.max(this.d0, Math.min(a, this.d1 - len));
      this.v0 = a;
      this.v1 = a + len;
      this.draw();
    }

    zoom(factor, around) {
      const at = around === undefined ? (this.v0 + this.v1) / 2 : around;
      const len = (this.v1 - this.v0) * factor;
      const frac = (at - this.v0) / (this.v1 - this.v0);
      this.setView(at - frac * len, at - frac * len + len);
    }

    pan(fraction) {
      const len = this.v1 - this.v0;
      this.setView(this.v0 + fraction * len, this.v1 + fraction * len);
    }

    key(ev) {
      const actions = { ArrowLeft: () => this.pan(-0.2), ArrowRight: () => this.pan(0.2),
                        "+": () => this.zoom(0.5), "=": () => this.zoom(0.5),
                        "-": () => this.zoom(2), 0: () => this.setView(this.d0, this.d1) };
      const fn = actions[ev.key];
      if (fn) { ev.preventDefault(); fn(); }
    }

    dragStart(ev) {
      if (ev.button !== 0) return;
      const startX = ev.clientX;
      const v0 = this.v0, v1 = this.v1;
      const box = this.svg.getBoundingClientRect();
      const msPerPx = (v1 - v0) / (this.plotW * (box.width / this.width));
      this.svg.setPointerCapture(ev.pointerId);
      this.svg.classList.add("dragging");
      const move = (e) => {
        const dx = e.clientX - startX;
        this.setView(v0 - dx * msPerPx, v1 - dx * msPerPx);
      };
      const up = () => {
        this.svg.classList.remove("dragging");
        this.svg.removeEventListener("pointermove", move);
        this.svg.removeEventListener("pointerup", up);
        this.svg.removeEventListener("pointercancel", up);
      };
      this.svg.addEventListener("pointermove", move);
      this.svg.addEventListener("pointerup", up);
      this.svg.addEventListener("pointercancel", up);
    }

    // Marks for `items` ({start_ms, end_ms}) between v0 and v1: one per item at least
    // a pixel wide, one merged mark per pixel column of narrower ones (so a busy hour
    // at 24 h is a strip of columns, each coloured by what dominated it).
    marks(items) {
      const k = this.plotW / (this.v1 - this.v0);
      const out = [];
      let pend = null;
      const flush = () => {
        if (pend) out.push(pend);
        pend = null;
      };
      items.forEach((it, i) => {
        if (it.end_ms <= this.v0 || it.start_ms >= this.v1) return;
        const x0 = Math.max(0, (it.start_ms - this.v0) * k);
        const x1 = Math.min(this.plotW, (it.end_ms - this.v0) * k);
        if (x1 - x0 >= 1) {
          flush();
          out.push({ x0, x1, first: i, last: i });
        } else if (pend && x0 < Math.floor(pend.x0) + 1) {
          pend.x1 = Math.max(pend.x1, x1);
          pend.last = i;
        } else {
          flush();
          pend = { x0, x1, first: i, last: i };
        }
      });
      flush();
      return out;
    }

    draw() {
      const W = this.width;
      this.svg.setAttribute("viewBox", `0 0 ${W} 96`);
      this.svg.setAttribute("width", W);
      this.svg.replaceChildren();
      const k = this.plotW / (this.v1 - this.v0);
      const X = (ms) => LABEL_W + (ms - this.v0) * k;
      // axis: the largest step giving at most ~1 tick per 70 px
      const spanMin = (this.v1 - this.v0) / 60000;
      const step = TICK_STEPS_MIN.find((m) => spanMin / m <= this.plotW / 70) || 360;
      const stepMs = step * 60000;
      const offset = this.d0 % stepMs;
      for (let t = Math.ceil((this.v0 - offset) / stepMs) * stepMs + offset; t <= this.v1;
        t += stepMs) {
        this.svg.append(svgEl("line", { x1: X(t), x2: X(t), y1: 14, y2: 92, class: "grid" }));
        this.svg.append(svgEl("text", { x: X(t), y: 11, class: "tick", "text-anchor": "middle" },
                              this.hhmm.format(new Date(t))));
      }
      this.svg.append(svgEl("text", { x: 0, y: 40, class: "row-label" }, "Windows"));
      this.svg.append(svgEl("text", { x: 0, y: 76, class: "row-label" }, "Activity"));
      const spans = this.data.spans;
      for (const m of this.marks(spans)) {
        const merged = m.last > m.first;
        const app = merged ? dominant(spans, m.first, m.last, "app") : spans[m.first].app;
        const rect = svgEl("rect", { x: LABEL_W + m.x0, width: Math.max(1, m.x1 - m.x0), y: 22,
                                     height: 28, class: merged ? "seg merged" : "seg window",
                                     "data-kind": "w", "data-first": m.first,
                                     "data-last": m.last });
        rect.setAttribute("fill", appColour(app));
        this.svg.append(rect);
      }
      const passive = this.data.passive_segments;
      for (const m of this.marks(passive)) {
        const merged = m.last > m.first;
        const cls = merged ? dominant(passive, m.first, m.last, "productivity")
          : passive[m.first].productivity;
        this.svg.append(svgEl("rect", { x: LABEL_W + m.x0, width: Math.max(1, m.x1 - m.x0),
                                        y: 52, height: 6, class: `seg pclass ${cls}` +
                                        (merged ? " merged" : ""), "data-kind": "p",
                                        "data-first": m.first, "data-last": m.last }));
      }
      const acts = this.data.activity;
      for (const m of this.marks(acts)) {
        const merged = m.last > m.first;
        const state = merged ? dominant(acts, m.first, m.last, "state") : acts[m.first].state;
        this.svg.append(svgEl("rect", { x: LABEL_W + m.x0, width: Math.max(1, m.x1 - m.x0),
                                        y: 62, height: 22, class: `seg state ${state}`,
                                        "data-kind": "a", "data-first": m.first,
                                        "data-last": m.last }));
      }
      const len = this.v1 - this.v0;
      const end = this.v1 >= this.d1 ? "24:00" : this.hhmm.format(new Date(this.v1));
      this.rangeLabel.textContent = `Showing ${this.hhmm.format(new Date(this.v0))}–${end} ` +
        `(${this.duration(len / 1000)} of ` +
        `${this.duration((this.d1 - this.d0) / 1000)})`;
    }

    describe(kind, first, last) {
      const items = { w: this.data.spans, a: this.data.activity,
                      p: this.data.passive_segments }[kind];
      const a = items[first], b = items[last];
      const when = `${this.clock.format(new Date(a.start_ms))}–` +
        `${this.clock.format(new Date(b.end_ms))}`;
      if (last > first) {
        const busy = items.slice(first, last + 1)
          .reduce((s, x) => s + (x.end_ms - x.start_ms), 0);
        const what = { w: "window spans", a: "activity segments", p: "passive stretches" }[kind];
        const most = dominant(items, first, last, { w: "app", a: "state", p: "category" }[kind]);
        return [`${last - first + 1} ${what} (${this.duration(busy / 1000)})`, when,
                `mostly ${most}`, "Zoom in to tell them apart."];
      }
      const dur = this.duration((a.end_ms - a.start_ms) / 1000);
      if (kind === "a") return [`${a.state}`, `${when} (${dur})`];
      if (kind === "p") {
        return ["passive", `${a.category}, ${a.productivity}`, `${when} (${dur})`,
                `in ${this.data.spans[a.span].app}`];
      }
      const lines = [a.app, a.title || "(no title)", `${when} (${dur})`];
      if (a.category) lines.push(`${a.category}, ${a.productivity}`);
      return lines;
    }

    hover(ev) {
      const t = ev.target;
      if (!t || !t.dataset || !t.dataset.kind) { this.tip.hidden = true; return; }
      const lines = this.describe(t.dataset.kind, +t.dataset.first, +t.dataset.last);
      this.tip.replaceChildren(...lines.map((line, i) => {
        const d = document.createElement(i === 0 ? "strong" : "div");
        d.textContent = line;
        return d;
      }));
      const box = this.svg.getBoundingClientRect();
      this.tip.hidden = false;
      const x = Math.min(ev.clientX - box.left + 12, box.width - 260);
      this.tip.style.left = `${Math.max(0, x)}px`;
      this.tip.style.top = `${ev.clientY - box.top + 16}px`;
    }

    destroy() { window.removeEventListener("resize", this.resize); }
  }

  window.WorklensTimeline = { DayTimeline, appColour };
})();
