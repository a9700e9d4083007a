// Worklens dashboard: plain JS, no build step, nothing loaded from the network.
// Every piece of data (app names, window titles, user names...) is put on the
// page with textContent or as an attribute value, never parsed as HTML: window
// titles are controlled by whatever program owns the window.
"use strict";

const TOKEN_KEY = "worklens.token";
const $ = (id) => document.getElementById(id);

// Control and bidirectional-control characters are shown as <U+XXXX>, as in the
// CSV exports: a title with U+202E RIGHT-TO-LEFT OVERRIDE would otherwise read
// as other text than the one stored ("invoice\u202Efdp.exe" as "invoiceexe.pdf").
const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function shown(text) {
  return String(text).replace(HIDDEN, (c) =>
    `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}>`);
}

function el(tag, opts = {}, text) {
  const node = document.createElement(tag);
  if (opts.cls) node.className = opts.cls;
  if (opts.title) node.setAttribute("title", shown(opts.title));
  if (text !== undefined && text !== null) node.textContent = shown(text);
  return node;
}

function cell(text, cls) { return el("td", { cls }, text); }

// h:mm, as people read durations.
function hmm(seconds) {
  const minutes = Math.round((seconds || 0) / 60);
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}`;
}

// CPU time: seconds under a minute ("3.5 s"), else h:mm:ss.
function cpuTime(seconds) {
  const s = seconds || 0;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  const mm = String(Math.floor(whole / 60) % 60).padStart(2, "0");
  const ss = String(whole % 60).padStart(2, "0");
  return `${Math.floor(whole / 3600)}:${mm}:${ss}`;
}

function megabytes(bytes) { return `${((bytes || 0) / 1048576).toFixed(1)} MB`; }

function pct(share) { return `${Math.round((share || 0) * 100)}%`; }

function isoDay(date) {
  const y = date.getFullYear(), m = date.getMonth() + 1, d = date.getDate();
  return `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

class AuthError extends Error {}

async function api(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
  const resp = await fetch(url, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` },
  });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (resp.status === 401) throw new AuthError((body && body.error) || "token refused");
  if (!resp.ok) throw new Error((body && body.error) || `HTTP ${resp.status}`);
  return body;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function showLogin(message = "") {
  $("app").hidden = true;
  $("signout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
}

function failed(err) {
  if (err instanceof AuthError) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(`The collector refused this token: ${err.message}`);
  } else {
    setStatus(err.message, true);
  }
}

function range() {
  return { from: $("from").value, to: $("to").value, tz: $("tz").value.trim() };
}

function shareBar(parts) {
  const bar = el("div", { cls: "bar" });
  for (const [cls, share, label] of parts) {
    if (!(share > 0)) continue;
    const seg = el("span", { cls, title: `${label}: ${pct(share)}` });
    seg.style.width = `${Math.min(share, 1) * 100}%`;
    bar.append(seg);
  }
  return bar;
}

function fillBody(table, rows, emptyText = "No activity in this range.") {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  if (!rows.length) {
    const tr = el("tr");
    const td = cell(emptyText, "hint");
    td.colSpan = table.tHead.rows[0].cells.length;
    tr.append(td);
    body.append(tr);
  }
}

function renderByApp(data) {
  const total = (data.total && data.total.active_seconds) ||
    data.rows.reduce((sum, r) => sum + (r.active_seconds || 0), 0);
  fillBody($("by-app"), data.rows.map((r) => {
    const share = total ? (r.active_seconds || 0) / total : 0;
    const tr = el("tr");
    const barCell = el("td");
    const wrap = el("div", { cls: "cell-bar" });
    wrap.append(shareBar([["share", share, "active"]]), el("span", { cls: "pct" }, pct(share)));
    barCell.append(wrap);
    tr.append(cell(r.app), cell(hmm(r.active_seconds), "num"), cell(hmm(r.idle_seconds), "num"),
              barCell);
    return tr;
  }));
}

function renderByUser(data) {
  fillBody($("by-user"), data.rows.map((r) => {
    const tr = el("tr");
    const barCell = el("td");
    const wrap = el("div", { cls: "cell-bar" });
    wrap.append(
      shareBar([["productive", r.productive_share, "productive"],
                ["neutral", r.neutral_share, "neutral"],
                ["unproductive", r.unproductive_share, "unproductive"],
                ["unclassified", r.unclassified_share, "unclassified"]]),
      el("span", { cls: "pct" }, `${pct(r.productive_share)} productive`));
    barCell.append(wrap);
    tr.append(cell(r.user || "(unknown)"), cell(hmm(r.active_seconds), "num"),
              cell(hmm(r.idle_seconds), "num"), barCell);
    return tr;
  }));
}

function renderAgents(data) {
  const select = $("tl-agent");
  const previous = select.value;
  select.replaceChildren(...data.agents.map((a) => {
    const label = `${a.hostname || a.agent_id} (${a.username || "?"})`;
    const option = el("option", {}, label);
    option.value = a.agent_id;
    return option;
  }));
  if (previous) select.value = previous;
  fillBody($("agents"), data.agents.map((a) => {
    const tr = el("tr");
    const state = el("td");
    state.append(el("span", { cls: a.revoked ? "badge revoked" : "badge" },
                    a.revoked ? "revoked" : `seq ${a.last_sequence}`));
    tr.append(cell(a.agent_id), cell(a.hostname), cell(a.username),
              cell(`${a.os} ${a.os_version}`.trim()),
              cell(a.last_seen ? a.last_seen.replace("T", " ") : "never"), state);
    return tr;
  }));
}

async function loadSummaries() {
  const r = range();
  setStatus("Loading…");
  try {
    const [byApp, byUser, agents] = await Promise.all([
      api("/api/v1/summary", { ...r, by: "app" }),
      api("/api/v1/summary", { ...r, by: "user" }),
      api("/api/v1/agents", { tz: r.tz }),
    ]);
    renderByApp(byApp);
    renderByUser(byUser);
    renderAgents(agents);
    if (!$("tz").value) $("tz").value = byApp.tz;
    setStatus(`${byApp.from} to ${byApp.to} (${byApp.tz}), durations h:mm`);
    if ($("tl-agent").value && !$("timeline").dataset.drawn) await loadTimeline();
  } catch (err) {
    failed(err);
  }
}

function position(node, startMs, durationMs, dayStart, dayLength) {
  const left = Math.max(0, (startMs - dayStart) / dayLength);
  const right = Math.min(1, (startMs + durationMs - dayStart) / dayLength);
  node.style.left = `${left * 100}%`;
  node.style.width = `${Math.max(0, right - left) * 100}%`;
}

function appColour(name) {
  let h = 0;
  for (const ch of name || "") h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 52%)`;
}

function timeOfDay(ms, tz) {
  try {
    return new Date(ms).toLocaleTimeString([], { timeZone: tz || undefined, hour12: false });
  } catch (_) {
    return new Date(ms).toISOString().slice(11, 19);
  }
}

function drawAxis(dayStart, dayLength) {
  const axis = $("tl-axis");
  const hours = Math.round(dayLength / 3600000);
  axis.replaceChildren();
  for (let h = 0; h <= hours; h += 3) {
    const tick = el("span", {}, `${String(h).padStart(2, "0")}:00`);
    tick.style.left = `${(h / hours) * 100}%`;
    axis.append(tick);
  }
}

function renderTimeline(data) {
  const dayStart = data.start_ms;
  const dayLength = data.end_ms - data.start_ms;
  drawAxis(dayStart, dayLength);
  $("tl-windows").replaceChildren(...data.spans.map((w) => {
    const minutes = hmm((w.end_ms - w.start_ms) / 1000);
    const seg = el("div", { cls: "seg window", title: `${w.app} — ${w.title} (${minutes})` });
    seg.style.background = appColour(w.app);
    position(seg, w.start_ms, w.end_ms - w.start_ms, dayStart, dayLength);
    return seg;
  }));
  $("tl-activity").replaceChildren(...data.activity.map((a) => {
    const minutes = hmm((a.end_ms - a.start_ms) / 1000);
    const seg = el("div", { cls: `seg state ${a.state}`, title: `${a.state} ${minutes}` });
    position(seg, a.start_ms, a.end_ms - a.start_ms, dayStart, dayLength);
    return seg;
  }));
  const limit = 500;
  fillBody($("tl-spans"), data.spans.slice(0, limit).map((w) => {
    const tr = el("tr");
    tr.append(cell(timeOfDay(w.start_ms, data.tz)), cell(hmm((w.end_ms - w.start_ms) / 1000), "num"),
              cell(w.app), cell(w.title));
    return tr;
  }));
  const empty = !data.spans.length && !data.activity.length;
  $("timeline").hidden = empty;
  $("timeline").dataset.drawn = "1";
  $("tl-empty").hidden = !empty;
  $("tl-empty").textContent = empty ? `No spans for this agent on ${data.date}.` : "";
}

// The top by CPU first, then those only in the top by peak memory.
function renderProcesses(data) {
  const seen = new Set(data.by_cpu.map((p) => p.name));
  const procs = [...data.by_cpu, ...data.by_memory.filter((p) => !seen.has(p.name))];
  fillBody($("tl-procs"), procs.map((p) => {
    const tr = el("tr");
    tr.append(cell(p.name), cell(p.user || "—"), cell(cpuTime(p.cpu_seconds), "num"),
              cell(megabytes(p.peak_rss_bytes), "num"));
    return tr;
  }), `No process samples for this agent on ${data.date}.`);
}

async function loadTimeline() {
  const agent = $("tl-agent").value;
  if (!agent) return;
  const params = { agent, date: $("tl-date").value, tz: $("tz").value.trim() };
  try {
    const [timeline, procs] = await Promise.all([api("/api/v1/timeline", params),
                                                 api("/api/v1/processes", params)]);
    renderTimeline(timeline);
    renderProcesses(procs);
  } catch (err) {
    failed(err);
  }
}

function init() {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400000);
  $("from").value = isoDay(weekAgo);
  $("to").value = isoDay(today);
  $("tl-date").value = isoDay(today);
  try { $("tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (_) { /* collector default */ }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    showApp();
    loadSummaries();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Signed out.");
  });
  $("range").addEventListener("submit", (ev) => { ev.preventDefault(); loadSummaries(); });
  $("timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadTimeline(); });

  if (sessionStorage.getItem(TOKEN_KEY)) {
    showApp();
    loadSummaries();
  } else {
    showLogin();
  }
}

document.addEventListener("DOMContentLoaded", init);
