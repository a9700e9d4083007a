// Worklens dashboard: plain JS, no build step, nothing loaded from the network.
// Every piece of data (app names, window titles, user names...) is put on the
// page with textContent or as an attribute value, never parsed as HTML: window
// titles are controlled by whatever program owns the window.
//
// Each view has its own URL (hash routing: #/overview, #/group/G, #/person/U,
// #/day/AGENT/DATE...), with the range and scope in the query part, so the back
// button and bookmarks work. A view that fails replaces its numbers with the
// error: a page never shows the previous range's figures beside a message.
"use strict";

const TOKEN_KEY = "worklens.token";
const PAGE_SIZE = 50;
const SPANS_PAGE = 100;
const $ = (id) => document.getElementById(id);
const RANGE_KEYS = ["from", "to", "tz", "group"];
const CLASSES = ["productive", "neutral", "unproductive", "unclassified"];

// -- small helpers ------------------------------------------------------------------------

// Control and bidirectional-control characters are shown as <U+XXXX>, as in the
// CSV exports: a title with U+202E RIGHT-TO-LEFT OVERRIDE would otherwise read
// as other text than the one stored ("invoice\u202Efdp.exe" as "invoiceexe.pdf").
const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function visible(text) {
  return String(text).replace(HIDDEN, (c) =>
    `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}>`);
}

function el(tag, opts = {}, ...children) {
  const node = document.createElement(tag);
  if (opts.cls) node.className = opts.cls;
  if (opts.title) node.setAttribute("title", visible(opts.title));
  if (opts.href) node.setAttribute("href", opts.href);
  if (opts.id) node.id = opts.id;
  if (opts.attrs) for (const [k, v] of Object.entries(opts.attrs)) node.setAttribute(k, v);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : visible(child));
  }
  return node;
}

function cell(content, cls) { return el("td", { cls }, content); }

// Durations as people read them: "45 s", "12 min", "3 h 05 min", "1,204 h 10 min".
function dur(seconds) {
  const s = Math.max(0, seconds || 0);
  if (s < 60) return `${Math.round(s)} s`;
  const minutes = Math.round(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const h = Math.floor(minutes / 60);
  return `${h.toLocaleString("en-US")} h ${String(minutes % 60).padStart(2, "0")} min`;
}

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

function addDays(iso, n) {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function mondayOf(iso) {
  const d = new Date(`${iso}T12:00:00Z`);
  return addDays(iso, -((d.getUTCDay() + 6) % 7));
}

function shortDay(iso) {
  const d = new Date(`${iso}T12:00:00Z`);
  return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
}

// -- the API ------------------------------------------------------------------------------

class AuthError extends Error {}

async function api(path, params = {}, { method = "GET", body, raw = false } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params)) if (v) url.searchParams.set(k, v);
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, { method, headers,
                              body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw new Error(`Collector unreachable at ${window.location.origin}: check that ` +
                    "worklens-collector serve is running, then try again.");
  }
  if (raw && resp.ok) return resp;
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (resp.status === 401) throw new AuthError((data && data.error) || "token refused");
  if (!resp.ok) {
    const message = (data && data.error) || `HTTP ${resp.status}`;
    const err = new Error(message.replace(/^tz: /, ""));
    err.status = resp.status;
    throw err;
  }
  return data;
}

// -- state and routing --------------------------------------------------------------------

const state = { me: null, groups: [], seq: 0, timeline: null };

function parseRoute() {
  const h = window.location.hash.replace(/^#\/?/, "");
  const [path, qs] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts: parts.length ? parts : ["overview"],
           params: Object.fromEntries(new URLSearchParams(qs || "")) };
}

function rangeParams(params) {
  const out = {};
  for (const k of RANGE_KEYS) if (params[k]) out[k] = params[k];
  return out;
}

function href(parts, params = {}) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `#/${parts.map(encodeURIComponent).join("/")}${qs ? `?${qs}` : ""}`;
}

// Change query keys of the current route without a history entry (search, sort, page).
function replaceParams(changes) {
  const { parts, params } = parseRoute();
  const next = { ...params, ...changes };
  for (const [k, v] of Object.entries(changes)) if (!v) delete next[k];
  history.replaceState(null, "", href(parts, next));
}

function defaults() {
  const today = new Date();
  return { from: isoDay(new Date(today.getTime() - 27 * 86400000)), to: isoDay(today) };
}

function syncForm(params) {
  $("from").value = params.from;
  $("to").value = params.to;
  $("tz").value = params.tz || "";
  const select = $("group");
  if (params.group && ![...select.options].some((o) => o.value === params.group)) {
    select.append(el("option", { attrs: { value: params.group } }, params.group));
  }
  select.value = params.group || "";
}

function can(role) {
  const rank = { viewer: 1, exporter: 2, admin: 3 };
  return state.me && rank[state.me.role] >= rank[role];
}

// -- page frame ---------------------------------------------------------------------------

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  const box = $("error");
  box.replaceChildren(el("strong", {}, "Cannot show this view: "), message);
  box.hidden = false;
  $("view").replaceChildren(el("p", { cls: "hint" },
    "The numbers are hidden until the problem above is fixed. Change the range or " +
    "time zone and press Show, or reload the page."));
  setStatus("");
}

function clearError() { $("error").hidden = true; $("error").replaceChildren(); }

function showLogin(message = "") {
  $("app").hidden = true;
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

function failed(err) {
  if (err instanceof AuthError) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    showLogin(`The collector refused this token: ${err.message}`);
  } else {
    showError(err.message);
  }
}

function card(title, ...children) {
  return el("section", { cls: "card" }, el("h2", {}, title), ...children);
}

function emptyState(text) { return el("p", { cls: "empty" }, text); }

function shareBar(parts) {
  const bar = el("div", { cls: "bar", attrs: { "aria-hidden": "true" } });
  for (const [cls, share, label] of parts) {
    if (!(share > 0)) continue;
    const seg = el("span", { cls, title: `${label}: ${pct(share)}` });
    seg.style.width = `${Math.min(share, 1) * 100}%`;
    bar.append(seg);
  }
  return bar;
}

function productivityCell(r) {
  const wrap = el("div", { cls: "cell-bar" });
  wrap.append(shareBar(CLASSES.map((c) => [c, r[`${c}_share`], c])),
              el("span", { cls: "pct" }, `${pct(r.productive_share)} productive`));
  return wrap;
}

// -- a table with search, sort and paging (all client side: 1,000 rows sort in ms) --------

function dataTable({ id, columns, rows, params, searchKeys, emptyText, label, pageKey = "" }) {
  const qKey = `${pageKey}q`, sKey = `${pageKey}sort`, pKey = `${pageKey}page`;
  let query = params[qKey] || "";
  const initial = columns.find((c) => c.defaultSort) || columns[0];
  let sort = params[sKey] || (initial.num ? `-${initial.key}` : initial.key);
  let page = Math.max(1, parseInt(params[pKey] || "1", 10) || 1);
  const wrap = el("div", { cls: "dtable" });
  const search = el("input", { attrs: { type: "search", placeholder: "Search…",
                                         "aria-label": `Search ${label}`, id: `${id}-search` } });
  search.value = query;
  const count = el("span", { cls: "status", attrs: { "aria-live": "polite" } });
  const table = el("table", { cls: "data", id });
  const pager = el("nav", { cls: "pager", attrs: { "aria-label": `${label} pages` } });
  wrap.append(el("div", { cls: "controls" }, search, count),
              el("div", { cls: "scroll" }, table), pager);

  const render = () => {
    const desc = sort.startsWith("-");
    const key = desc ? sort.slice(1) : sort;
    const col = columns.find((c) => c.key === key) || columns[0];
    const q = query.trim().toLowerCase();
    let shown = q ? rows.filter((r) => searchKeys.some((k) => String(r[k] ?? "")
      .toLowerCase().includes(q))) : rows.slice();
    const value = col.sortValue || ((r) => r[col.key]);
    shown.sort((a, b) => {
      const x = value(a), y = value(b);
      const c = typeof x === "number" && typeof y === "number" ? x - y
        : String(x ?? "").localeCompare(String(y ?? ""));
      return desc ? -c : c;
    });
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages);
    const slice = shown.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
    const head = el("tr", {}, ...columns.map((c) => {
      const active = c.key === key;
      const b = el("button", { cls: "sort", attrs: { type: "button" } }, c.label,
                   active ? (desc ? " ▼" : " ▲") : "");
      b.addEventListener("click", () => {
        sort = active && !desc ? `-${c.key}` : (active ? c.key : (c.num ? `-${c.key}` : c.key));
        page = 1;
        replaceParams({ [sKey]: sort, [pKey]: "" });
        render();
      });
      const th = el("th", { cls: c.num ? "num" : "" }, b);
      th.setAttribute("aria-sort", active ? (desc ? "descending" : "ascending") : "none");
      return th;
    }));
    const body = el("tbody", {}, ...slice.map((r) => el("tr", {}, ...columns.map(
      (c) => cell(c.render ? c.render(r) : (r[c.key] ?? ""), c.num ? "num" : "")))));
    if (!slice.length) {
      const td = cell(q ? `Nothing matches “${query}”.` : emptyText, "empty");
      td.colSpan = columns.length;
      body.append(el("tr", {}, td));
    }
    table.replaceChildren(el("thead", {}, head), body);
    count.textContent = shown.length === rows.length
      ? `${rows.length.toLocaleString("en-US")} ${label}`
      : `${shown.length.toLocaleString("en-US")} of ${rows.length.toLocaleString("en-US")} ${label}`;
    const go = (n) => () => { page = n; replaceParams({ [pKey]: n > 1 ? String(n) : "" }); render(); };
    const prev = el("button", { attrs: { type: "button" } }, "‹ Previous");
    const next = el("button", { attrs: { type: "button" } }, "Next ›");
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
    prev.addEventListener("click", go(page - 1));
    next.addEventListener("click", go(page + 1));
    pager.replaceChildren(prev, el("span", { cls: "status" }, `Page ${page} of ${pages}`), next);
    pager.hidden = pages <= 1;
  };
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      query = search.value;
      page = 1;
      replaceParams({ [qKey]: query, [pKey]: "" });
      render();
    }, 120);
  });
  render();
  return wrap;
}

// -- exports ------------------------------------------------------------------------------

function exportButtons(params, extra = {}) {
  if (!can("exporter")) return null;
  const box = el("div", { cls: "controls exports" }, el("span", { cls: "label" }, "Export CSV:"));
  for (const kind of ["daily", "apps", "spans", "activity", "processes"]) {
    const b = el("button", { cls: "secondary", attrs: { type: "button" } }, kind);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const resp = await api(`/api/v1/export/${kind}.csv`, { ...rangeParams(params), ...extra },
                               { raw: true });
        const blob = await resp.blob();
        const name = (resp.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
        const a = el("a", { href: URL.createObjectURL(blob) });
        a.download = name ? name[1] : `worklens-${kind}.csv`;
        document.body.append(a);
        a.click();
        setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 60000);
      } catch (err) {
        failed(err);
      } finally {
        b.disabled = false;
      }
    });
    box.append(b);
  }
  return box;
}

// -- trends -------------------------------------------------------------------------------

function seriesOf(rows) {
  const hasPassive = rows.some((r) => r.passive_seconds !== undefined);
  const series = [{ key: "active", label: "active", cls: "active" }];
  if (hasPassive) series.push({ key: "passive", label: "passive", cls: "passive" });
  series.push({ key: "idle", label: "idle", cls: "idle" });
  return series;
}

// Days of [from, to] in each week (Monday key): a week cut by the range is marked.
function weekDays(from, to) {
  const out = new Map();
  if (!from || !to) return out;
  for (let d = from, n = 0; d <= to && n < 4000; d = addDays(d, 1), n += 1) {
    const k = mondayOf(d);
    out.set(k, (out.get(k) || 0) + 1);
  }
  return out;
}

function trendPoints(rows, byWeek, range = {}) {
  const inRange = byWeek ? weekDays(range.from, range.to) : new Map();
  const buckets = new Map();
  for (const r of rows) {
    const key = byWeek ? mondayOf(r.day) : r.day;
    const b = buckets.get(key) || { active: 0, passive: 0, idle: 0, productive: 0, days: 0 };
    b.active += r.active_seconds || 0;
    b.passive += r.passive_seconds || 0;
    b.idle += r.idle_seconds || 0;
    b.productive += r.productive_seconds || 0;
    b.days += 1;
    buckets.set(key, b);
  }
  return [...buckets.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, b]) => {
    const engaged = b.active + b.passive;   // the classes count passive time too (API)
    const share = engaged ? b.productive / engaged : null;
    const days = inRange.get(key) || 7;
    const partial = byWeek && days < 7 ? ` (${days} day${days > 1 ? "s" : ""} in range)` : "";
    const label = byWeek ? `week of ${key}${partial}` : key;
    const parts = [`active ${dur(b.active)}`];
    if (b.passive) parts.push(`passive ${dur(b.passive)}`);
    parts.push(`idle ${dur(b.idle)}`);
    if (share !== null) parts.push(`${pct(share)} productive`);
    return { label, short: byWeek ? `wk ${shortDay(key)}${partial ? "*" : ""}` : shortDay(key),
             key, share,
             values: { active: b.active / 3600, passive: b.passive / 3600, idle: b.idle / 3600 },
             totals: b, title: `${label}: ${parts.join(", ")}` };
  });
}

function trendCard(title, rows, byWeek, id, range) {
  const points = trendPoints(rows, byWeek, range);
  const body = el("div", { cls: "chart-box", id });
  if (!points.length) {
    body.append(emptyState("No activity in this range. Pick other dates, or check that agents " +
                           "are enrolled and sending (Agents)."));
    return card(title, body);
  }
  const series = seriesOf(rows);
  const legend = el("p", { cls: "legend" }, ...series.flatMap((s) => [
    el("span", { cls: `sw ${s.cls}`, attrs: { "aria-hidden": "true" } }), `${s.label} `]),
  el("span", { cls: "sw line", attrs: { "aria-hidden": "true" } }), "productive share (line)");
  const holder = el("div", { cls: "chart-holder" });
  body.append(holder, legend);
  const table = el("table", { cls: "data compact" },
    el("thead", {}, el("tr", {}, el("th", {}, byWeek ? "Week" : "Day"),
      ...series.map((s) => el("th", { cls: "num" }, s.label[0].toUpperCase() + s.label.slice(1))),
      el("th", { cls: "num" }, "Productive"))),
    el("tbody", {}, ...points.map((p) => el("tr", {}, cell(p.label),
      ...series.map((s) => cell(dur(p.totals[s.key]), "num")),
      cell(p.share === null ? "—" : pct(p.share), "num")))));
  body.append(el("details", {}, el("summary", {}, "Numbers"), table));
  requestAnimationFrame(() => {
    holder.append(window.WorklensCharts.trendChart(points, series, {
      width: Math.max(280, holder.clientWidth || 600), ariaLabel: `${title}: ` +
        points.map((p) => p.title).join("; ") }));
  });
  return card(title, body);
}

function kpis(total, rows) {
  const items = [["Active", dur(total.active_seconds)]];
  if (total.passive_seconds !== undefined) items.push(["Passive", dur(total.passive_seconds)]);
  items.push(["Idle", dur(total.idle_seconds)], ["Productive", pct(total.productive_share)]);
  if (rows.people !== undefined) items.push(["People", rows.people.toLocaleString("en-US")]);
  if (rows.agents !== undefined) items.push(["Agents", rows.agents.toLocaleString("en-US")]);
  return el("div", { cls: "kpis" }, ...items.map(([k, v]) =>
    el("div", { cls: "kpi" }, el("span", { cls: "kpi-label" }, k), el("strong", {}, v))));
}

function topTable(id, rows, key, label, total, extra) {
  if (!rows.length) return emptyState("No activity in this range.");
  return el("table", { cls: "data", id },
    el("thead", {}, el("tr", {}, el("th", {}, label), extra ? el("th", {}, "Class") : null,
      el("th", { cls: "num" }, "Active"), el("th", { cls: "bar-col" }, "Share of active time"))),
    el("tbody", {}, ...rows.slice(0, 10).map((r) => {
      const share = total ? (r.active_seconds || 0) / total : 0;
      const wrap = el("div", { cls: "cell-bar" }, shareBar([["share", share, "active"]]),
                      el("span", { cls: "pct" }, pct(share)));
      return el("tr", {}, cell(r[key]), extra ? cell(extra(r)) : null,
                cell(dur(r.active_seconds), "num"), cell(wrap));
    })));
}

function categoryClass(r) {
  const best = CLASSES.map((c) => [c, r[`${c}_seconds`] || 0]).sort((a, b) => b[1] - a[1])[0];
  return best && best[1] > 0 ? best[0] : "—";
}

// -- views --------------------------------------------------------------------------------

async function viewOverview(ctx, group) {
  const p = { ...ctx.range, ...(group ? { group } : {}) };
  const [byDay, byGroup, byApp, byCat, byUser, agents] = await Promise.all([
    api("/api/v1/summary", { ...p, by: "day" }),
    api("/api/v1/summary", { ...p, by: "group" }),
    api("/api/v1/summary", { ...p, by: "app" }),
    api("/api/v1/summary", { ...p, by: "category" }),
    group ? api("/api/v1/summary", { ...p, by: "user" }) : Promise.resolve(null),
    group ? Promise.resolve(null) : api("/api/v1/agents", { tz: p.tz }),
  ]);
  ctx.done(byDay);
  const total = byDay.total;
  const heading = group ? `Group ${group}` : (state.me.groups.length
    ? `Overview of ${state.me.groups.join(", ")}` : "Overview of the fleet");
  const nodes = [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, heading),
                    exportButtons(ctx.params, group ? { group } : {}))];
  if (group) {
    nodes.push(el("p", { cls: "crumbs" }, el("a", { href: href(["overview"], ctx.range) },
                                             "Overview"), " › ", group));
  }
  const people = new Set();
  if (byUser) byUser.rows.forEach((r) => people.add(r.user));
  nodes.push(kpis(total, byUser ? { people: people.size }
    : { agents: agents.agents.filter((x) => !x.revoked).length }));
  nodes.push(el("div", { cls: "grid" },
    trendCard("Trend by day", byDay.rows, false, "trend-day", byDay),
    trendCard("Trend by week", byDay.rows, true, "trend-week", byDay)));
  if (!group) {
    const live = el("section", { cls: "card live-slot", id: "live-slot",
                                 attrs: { "data-slot": "live" } },
      el("h2", {}, "Now"), el("p", { cls: "hint" }, "Live view of who is active right now."));
    nodes.push(live);
    mountLive(live, p);
  }
  const groupRows = byGroup.rows;
  const groupTable = groupRows.length ? el("table", { cls: "data", id: "by-group" },
    el("thead", {}, el("tr", {}, el("th", {}, "Group"), el("th", { cls: "num" }, "Active"),
      el("th", { cls: "num" }, "Passive"), el("th", { cls: "num" }, "Idle"),
      el("th", { cls: "bar-col" }, "Productivity"))),
    el("tbody", {}, ...groupRows.map((r) => el("tr", {},
      cell(r.group === "(no group)" ? r.group
        : el("a", { href: href(["group", r.group], ctx.range) }, r.group)),
      cell(dur(r.active_seconds), "num"), cell(dur(r.passive_seconds || 0), "num"),
      cell(dur(r.idle_seconds), "num"), cell(productivityCell(r))))))
    : emptyState("No activity in this range.");
  const appTotal = byApp.total.active_seconds;
  nodes.push(el("div", { cls: "grid wide" },
    card("By group", groupTable, el("p", { cls: "hint" },
      "An agent in two groups counts in both rows. Admins set groups under Agents.")),
    card("Top applications", topTable("top-apps", byApp.rows, "app", "Application", appTotal)),
    card("Top categories", topTable("top-categories", byCat.rows, "category", "Category",
                                    byCat.total.active_seconds, categoryClass),
         el("p", { cls: "hint" }, "Categories come from the rules (Rules page)."))));
  if (byUser) {
    const inGroup = { ...ctx, range: { ...ctx.range, group } };   // the crumbs keep the group
    nodes.push(card("People in this group", peopleTable(byUser.rows, inGroup)));
  }
  return nodes;
}

function mountLive(slot, params) {
  // The live panel (GET /api/v1/live) is built by its own module when the collector
  // has it; it registers window.WorklensLive.mount(slot, {api, params}).
  if (window.WorklensLive && typeof window.WorklensLive.mount === "function") {
    window.WorklensLive.mount(slot, { api, params });
  } else {
    slot.append(el("p", { cls: "empty" }, "Live view is not available on this collector yet."));
  }
}

function peopleTable(rows, ctx) {
  return dataTable({
    id: "people", label: "people", params: ctx.params, searchKeys: ["user"],
    emptyText: "Nobody was active in this range.", rows: rows.map((r) => ({ ...r })),
    columns: [
      { key: "user", label: "Person", render: (r) => el("a", {
        href: href(["person", r.user || "(unknown)"], ctx.range) }, r.user || "(unknown)") },
      { key: "active_seconds", label: "Active", num: true, defaultSort: true,
        render: (r) => dur(r.active_seconds) },
      { key: "passive_seconds", label: "Passive", num: true,
        render: (r) => dur(r.passive_seconds || 0) },
      { key: "idle_seconds", label: "Idle", num: true, render: (r) => dur(r.idle_seconds) },
      { key: "productive_share", label: "Productivity", num: true,
        render: (r) => productivityCell(r) },
    ],
  });
}

async function viewPeople(ctx) {
  const byUser = await api("/api/v1/summary", { ...ctx.range, by: "user" });
  ctx.done(byUser);
  return [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, "People"),
             exportButtons(ctx.params)),
          card("Everyone active in the range", peopleTable(byUser.rows, ctx))];
}

async function viewAgents(ctx) {
  const [agents, byAgent] = await Promise.all([
    api("/api/v1/agents", { tz: ctx.range.tz }),
    api("/api/v1/summary", { ...ctx.range, by: "agent" }),
  ]);
  ctx.done(byAgent);
  const activeBy = new Map(byAgent.rows.map((r) => [r.agent, r]));
  let list = agents.agents;
  if (ctx.range.group) {
    const g = ctx.range.group;
    list = list.filter((a) => a.groups.some((x) => x === g || x.startsWith(`${g}/`)));
  }
  const rows = list.map((a) => ({
    ...a, groups_text: a.groups.join(", "),
    active_seconds: activeBy.get(a.agent_id)?.active_seconds || 0,
    passive_seconds: activeBy.get(a.agent_id)?.passive_seconds || 0,
    last: a.last_seen || "",
  }));
  const admin = can("admin");
  const columns = [
    { key: "hostname", label: "Host", render: (a) => el("a", {
      href: href(["day", a.agent_id, ctx.range.to], ctx.range) }, a.hostname || a.agent_id) },
    { key: "username", label: "User", render: (a) => a.username
      ? el("a", { href: href(["person", a.username], ctx.range) }, a.username) : "—" },
    { key: "groups_text", label: "Groups", render: (a) => admin ? groupEditor(a)
      : (a.groups_text || "—") },
    { key: "active_seconds", label: "Active in range", num: true, defaultSort: true,
      render: (a) => dur(a.active_seconds) },
    { key: "passive_seconds", label: "Passive", num: true,
      render: (a) => dur(a.passive_seconds) },
    { key: "last", label: "Last seen", render: (a) => a.last ? a.last.replace("T", " ") : "never" },
    { key: "revoked", label: "Status", sortValue: (a) => (a.revoked ? 1 : 0),
      render: (a) => agentStatus(a, admin) },
  ];
  return [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, "Agents")),
          card("Enrolled agents", dataTable({
            id: "agents", label: "agents", params: ctx.params, rows,
            searchKeys: ["hostname", "username", "agent_id", "groups_text", "os"],
            emptyText: "No agents yet: enroll one with worklens-agent enroll --collector " +
                       "HOST:PORT --secret ENROLL_SECRET.", columns }))];
}

function agentStatus(a, admin) {
  const badge = el("span", { cls: a.revoked ? "badge revoked" : "badge" },
                   a.revoked ? "revoked" : "active");
  if (!admin || a.revoked) return badge;
  const b = el("button", { cls: "secondary small", attrs: { type: "button",
    "aria-label": `Revoke ${a.hostname || a.agent_id}` } }, "Revoke");
  b.addEventListener("click", async () => {
    if (!window.confirm(`Revoke ${a.hostname || a.agent_id}? Its credential stops working.`)) {
      return;
    }
    try {
      await api(`/api/v1/agents/${encodeURIComponent(a.agent_id)}/revoke`, {}, { method: "POST" });
      route();
    } catch (err) { failed(err); }
  });
  return el("span", {}, badge, " ", b);
}

function groupEditor(a) {
  const form = el("form", { cls: "inline-form" });
  const input = el("input", { attrs: { type: "text", size: "14", spellcheck: "false",
    "aria-label": `Groups of ${a.hostname || a.agent_id} (comma-separated)` } });
  input.value = a.groups.join(", ");
  const save = el("button", { cls: "secondary small", attrs: { type: "submit" } }, "Save");
  const note = el("span", { cls: "hint", attrs: { role: "status" } });
  form.append(input, save, note);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const groups = input.value.split(",").map((g) => g.trim()).filter(Boolean);
    try {
      const done = await api(`/api/v1/agents/${encodeURIComponent(a.agent_id)}/groups`, {},
                             { method: "PUT", body: { groups } });
      a.groups = done.groups;
      input.value = done.groups.join(", ");
      note.textContent = "saved";
      loadGroups();
    } catch (err) {
      note.textContent = err.message;
    }
  });
  return form;
}

async function viewPerson(ctx) {
  const user = ctx.parts[1];
  const [byDay, agents] = await Promise.all([
    api("/api/v1/summary", { ...ctx.range, by: "day", user }),
    api("/api/v1/agents", { tz: ctx.range.tz }),
  ]);
  ctx.done(byDay);
  const theirs = agents.agents.filter((a) => a.username === user);
  if (!theirs.length && !byDay.rows.length) {
    const err = new Error(`No person called “${user}” is visible to this token.`);
    throw err;
  }
  const crumbs = el("p", { cls: "crumbs" }, el("a", { href: href(["overview"], ctx.range) },
                                                "Overview"), " › ");
  if (ctx.range.group) {
    crumbs.append(el("a", { href: href(["group", ctx.range.group], ctx.range) },
                      ctx.range.group), " › ");
  }
  crumbs.append(user);
  const days = byDay.rows.slice().reverse();
  const dayTable = days.length ? el("table", { cls: "data", id: "person-days" },
    el("thead", {}, el("tr", {}, el("th", {}, "Day"), el("th", { cls: "num" }, "Active"),
      el("th", { cls: "num" }, "Passive"), el("th", { cls: "num" }, "Idle"),
      el("th", { cls: "bar-col" }, "Productivity"), el("th", {}, "Timeline"))),
    el("tbody", {}, ...days.map((r) => el("tr", {}, cell(r.day), cell(dur(r.active_seconds), "num"),
      cell(dur(r.passive_seconds || 0), "num"), cell(dur(r.idle_seconds), "num"),
      cell(productivityCell(r)),
      cell(el("span", {}, ...theirs.flatMap((a, i) => [i ? ", " : "", el("a", {
        href: href(["day", a.agent_id, r.day], ctx.range) }, a.hostname || a.agent_id)])))))))
    : emptyState(`${user} was not active in this range.`);
  return [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, user),
             exportButtons(ctx.params, { user })), crumbs,
          kpis(byDay.total, {}),
          el("div", { cls: "grid" }, trendCard("Trend by day", byDay.rows, false, "trend-day"),
             card("Days", dayTable)),
          card("Their agents", el("ul", {}, ...theirs.map((a) => el("li", {},
            el("a", { href: href(["day", a.agent_id, ctx.range.to], ctx.range) },
               a.hostname || a.agent_id), ` (${a.os || "?"}; groups: ${a.groups.join(", ") || "none"})`))))];
}

async function viewDay(ctx) {
  const [agentId, date] = [ctx.parts[1], ctx.parts[2] || ctx.range.to];
  const params = { agent: agentId, date, tz: ctx.range.tz };
  const [timeline, procs, agents] = await Promise.all([
    api("/api/v1/timeline", params), api("/api/v1/processes", params),
    api("/api/v1/agents", { tz: ctx.range.tz })]);
  const agent = agents.agents.find((a) => a.agent_id === agentId) || { agent_id: agentId };
  ctx.done({ from: date, to: date, tz: timeline.tz });
  const name = agent.hostname || agentId;
  const crumbs = el("p", { cls: "crumbs" }, el("a", { href: href(["overview"], ctx.range) },
                                                "Overview"), " › ");
  if (agent.username) {
    crumbs.append(el("a", { href: href(["person", agent.username], ctx.range) }, agent.username),
                  " › ");
  }
  crumbs.append(`${name}, ${date}`);
  const nav = el("p", { cls: "controls" },
    el("a", { href: href(["day", agentId, addDays(date, -1)], ctx.range) }, "‹ Previous day"),
    el("a", { href: href(["day", agentId, addDays(date, 1)], ctx.range) }, "Next day ›"));
  const host = el("div", { id: "timeline", cls: "timeline" });
  const spansBox = el("div", { id: "span-list" });
  const nodes = [el("div", { cls: "view-head" }, el("h2", { id: "view-title" },
                   `${name} on ${date}`), exportButtons({ ...ctx.params, from: date, to: date },
                                                        { agent: agentId })),
                 crumbs, nav];
  if (!timeline.spans.length && !timeline.activity.length) {
    nodes.push(card("Timeline", emptyState(`No spans for ${name} on ${date}. Try another ` +
                                           "day, or check the agent's status.")));
  } else {
    nodes.push(el("div", { cls: "kpis" },
      el("div", { cls: "kpi" }, el("span", { cls: "kpi-label" }, "Active"),
         el("strong", {}, dur(timeline.active_seconds))),
      el("div", { cls: "kpi" }, el("span", { cls: "kpi-label" }, "Passive"),
         el("strong", {}, dur(timeline.passive_seconds))),
      el("div", { cls: "kpi" }, el("span", { cls: "kpi-label" }, "Idle"),
         el("strong", {}, dur(timeline.idle_seconds))),
      el("div", { cls: "kpi" }, el("span", { cls: "kpi-label" }, "Window spans"),
         el("strong", {}, timeline.spans.length.toLocaleString("en-US")))));
    const swatch = (s) => el("span", { cls: `sw ${s}`, attrs: { "aria-hidden": "true" } });
    const legend = el("p", { cls: "legend" },
      ...["active", "passive", "idle", "locked", "asleep"].flatMap((s) => [swatch(s), `${s} `]));
    if (timeline.passive_segments.length) {
      legend.append(el("br"), "Strip under the windows: passive time, by the class it counts as ",
                    ...["productive", "neutral", "unproductive", "unclassified"].flatMap(
                      (c) => [swatch(c), `${c} `]));
    }
    const tlCard = card("Timeline", host, legend);
    tlCard.classList.add("tl-card");   // the tooltip may reach past the card
    nodes.push(tlCard);
    nodes.push(card("Window spans", spansBox));
  }
  nodes.push(card("Top processes", processTable(procs, date)));
  ctx.after(() => {
    if (host.isConnected) {
      state.timeline = new window.WorklensTimeline.DayTimeline(host, timeline, { duration: dur });
      renderSpanList(spansBox, timeline, ctx);
    }
  });
  return nodes;
}

function renderSpanList(box, timeline, ctx) {
  const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23", timeZone: timeline.tz });
  const spans = timeline.spans;
  let page = Math.max(1, parseInt(ctx.params.spage || "1", 10) || 1);
  const pages = Math.max(1, Math.ceil(spans.length / SPANS_PAGE));
  const draw = () => {
    page = Math.min(page, pages);
    const first = (page - 1) * SPANS_PAGE;
    const slice = spans.slice(first, first + SPANS_PAGE);
    const table = el("table", { cls: "data", id: "tl-spans" },
      el("thead", {}, el("tr", {}, el("th", {}, "Start"), el("th", { cls: "num" }, "Duration"),
        el("th", {}, "Application"), el("th", {}, "Window title"), el("th", {}, "Category"))),
      el("tbody", {}, ...slice.map((w) => el("tr", {}, cell(clock.format(new Date(w.start_ms))),
        cell(dur((w.end_ms - w.start_ms) / 1000), "num"), cell(w.app), cell(w.title),
        cell(spanClasses(w))))));
    const prev = el("button", { attrs: { type: "button" } }, "‹ Previous");
    const next = el("button", { attrs: { type: "button" } }, "Next ›");
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
    const go = (n) => () => { page = n; replaceParams({ spage: n > 1 ? String(n) : "" }); draw(); };
    prev.addEventListener("click", go(page - 1));
    next.addEventListener("click", go(page + 1));
    const status = el("span", { cls: "status", id: "span-count" },
      `Spans ${(first + 1).toLocaleString("en-US")}–` +
      `${(first + slice.length).toLocaleString("en-US")} of ` +
      `${spans.length.toLocaleString("en-US")}`);
    box.replaceChildren(el("div", { cls: "scroll" }, table),
                        el("nav", { cls: "pager", attrs: { "aria-label": "Span pages" } },
                           prev, status, next));
  };
  draw();
}

// A span's category and class, and those of its passive time where a rule sets them apart.
function spanClasses(w) {
  const own = `${w.category} (${w.productivity})`;
  if (!w.passive_seconds || (w.passive_category === w.category &&
                             w.passive_productivity === w.productivity)) return own;
  return `${own}; passive: ${w.passive_category} (${w.passive_productivity})`;
}

function processTable(data, date) {
  const seen = new Set(data.by_cpu.map((p) => p.name));
  const procs = [...data.by_cpu, ...data.by_memory.filter((p) => !seen.has(p.name))];
  if (!procs.length) return emptyState(`No process samples on ${date}.`);
  return el("div", {}, el("table", { cls: "data procs", id: "tl-procs" },
    el("thead", {}, el("tr", {}, el("th", {}, "Process"), el("th", {}, "User"),
      el("th", { cls: "num" }, "CPU time"), el("th", { cls: "num" }, "Peak memory"))),
    el("tbody", {}, ...procs.map((p) => el("tr", {}, cell(p.name), cell(p.user || "—"),
      cell(cpuTime(p.cpu_seconds), "num"), cell(megabytes(p.peak_rss_bytes), "num"))))),
  el("p", { cls: "hint" }, "Top by CPU time, then any others among the top by peak memory."));
}

// -- rules --------------------------------------------------------------------------------

async function viewRules(ctx) {
  const data = await api("/api/v1/rules");
  ctx.done(null);
  const admin = can("admin");
  const rules = data.rules.map((r) => ({ app: r.app || "", title: r.title || "",
                                         category: r.category, productivity: r.productivity,
                                         passive: r.passive || "",
                                         passive_category: r.passive_category || "" }));
  const box = el("div", { id: "rules-editor" });
  const preview = el("div", { id: "rules-preview", attrs: { "aria-live": "polite" } });
  const message = el("p", { id: "rules-message", cls: "hint", attrs: { role: "status" } });
  const draw = () => {
    const head = el("tr", {}, el("th", {}, "#"), el("th", {}, "App (regex)"),
                    el("th", {}, "Title (regex)"), el("th", {}, "Category"),
                    el("th", {}, "Class"), el("th", {}, "Passive time"),
                    admin ? el("th", {}, "") : null);
    const body = el("tbody", {}, ...rules.map((r, i) => {
      if (!admin) {
        return el("tr", {}, cell(i + 1), cell(r.app || "any"), cell(r.title || "any"),
                  cell(r.category), cell(r.productivity), cell(passiveText(r)));
      }
      const input = (key, label, placeholder = "") => {
        const node = el("input", { attrs: { type: "text", spellcheck: "false", placeholder,
          "aria-label": `Rule ${i + 1} ${label}` } });
        node.value = r[key];
        node.addEventListener("input", () => { r[key] = node.value; });
        return node;
      };
      const choose = (key, label, choices) => {
        const node = el("select", { attrs: { "aria-label": `Rule ${i + 1} ${label}` } },
          ...choices.map(([value, text]) => el("option", { attrs: { value } }, text)));
        node.value = r[key];
        node.addEventListener("change", () => { r[key] = node.value; });
        return node;
      };
      const classes = ["productive", "neutral", "unproductive"].map((c) => [c, c]);
      const select = choose("productivity", "class", classes);
      const passive = el("span", { cls: "passive-rule" },
        choose("passive", "passive class", [["", "as its class"], ...classes]),
        input("passive_category", "passive category", "same category"));
      const btn = (text, label, fn) => {
        const b = el("button", { cls: "secondary small", attrs: { type: "button",
          "aria-label": `${label} rule ${i + 1}` } }, text);
        b.addEventListener("click", () => { fn(); draw(); });
        return b;
      };
      return el("tr", {}, cell(i + 1), cell(input("app", "app")), cell(input("title", "title")),
        cell(input("category", "category")), cell(select), cell(passive),
        cell(el("span", { cls: "row-actions" },
          btn("↑", "Move up", () => { if (i) rules.splice(i - 1, 0, rules.splice(i, 1)[0]); }),
          btn("↓", "Move down", () => { rules.splice(i + 1, 0, rules.splice(i, 1)[0]); }),
          btn("Remove", "Remove", () => { rules.splice(i, 1); }))));
    }));
    if (!rules.length) {
      const td = cell("No rules yet: every app counts as unclassified." +
                      (admin ? " Add one below." : ""), "empty");
      td.colSpan = admin ? 7 : 6;
      body.append(el("tr", {}, td));
    }
    const nodes = [el("div", { cls: "scroll" }, el("table", { cls: "data rules", id: "rules" },
                                                  el("thead", {}, head), body))];
    if (admin) {
      const add = el("button", { cls: "secondary", attrs: { type: "button" } }, "Add rule");
      add.addEventListener("click", () => {
        rules.push({ app: "", title: "", category: "", productivity: "productive",
                     passive: "", passive_category: "" });
        draw();
      });
      const prev = el("button", { cls: "secondary", attrs: { type: "button", id: "rules-preview-btn" } },
                      "Preview");
      prev.addEventListener("click", async () => {
        message.textContent = "";
        preview.replaceChildren(el("p", { cls: "hint" }, "Computing…"));
        try {
          renderPreview(preview, await api("/api/v1/rules/preview", {}, { method: "POST",
            body: { rules: clean(rules), from: ctx.range.from, to: ctx.range.to,
                    tz: ctx.range.tz || undefined } }));
        } catch (err) {
          preview.replaceChildren(el("p", { cls: "error" }, err.message));
        }
      });
      const save = el("button", { attrs: { type: "button", id: "rules-save" } }, "Save rules");
      save.addEventListener("click", async () => {
        try {
          const done = await api("/api/v1/rules", {}, { method: "PUT",
                                                       body: { rules: clean(rules) } });
          message.textContent = `Saved ${done.rules.length} rules; summaries now use them ` +
                                "for all history.";
          message.className = "ok";
        } catch (err) {
          message.textContent = err.message;
          message.className = "error";
        }
      });
      nodes.push(el("div", { cls: "controls" }, add, prev, save), message);
    }
    box.replaceChildren(...nodes);
  };
  draw();
  return [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, "Rules")),
          card("Category rules", el("p", { cls: "hint" }, "The first rule whose app and title " +
               "regular expressions (case-insensitive, searched anywhere) both match a window " +
               "decides its category and class. Passive time in it (a video, a call) counts " +
               "the same unless the rule gives it another class or category. Saving " +
               "re-applies the rules to all history."),
               box),
          admin ? card("Preview for the chosen range", preview) : null].filter(Boolean);
}

function clean(rules) {
  return rules.map((r) => {
    const out = { category: r.category.trim(), productivity: r.productivity };
    if (r.app.trim()) out.app = r.app.trim();
    if (r.title.trim()) out.title = r.title.trim();
    if (r.passive) out.passive = r.passive;
    if (r.passive_category.trim()) out.passive_category = r.passive_category.trim();
    return out;
  });
}

function passiveText(r) {
  if (!r.passive && !r.passive_category) return "same";
  return `${r.passive_category || r.category}, ${r.passive || r.productivity}`;
}

function renderPreview(box, data) {
  box.replaceChildren(
    el("p", { id: "preview-summary" }, `${dur(data.changed_seconds)} of ${dur(data.total_seconds)}` +
       ` of window time from ${data.from} to ${data.to} would change category or class; ` +
       `${dur(data.unclassified_seconds)} would stay unclassified.`),
    el("p", { cls: "hint" }, data.source === "rollups"
      ? `Computed from the summary rollups, ${data.from} to ${data.to}.`
      : `Rules on window titles need the raw spans: computed from ${data.from} to ` +
        `${data.to} (at most the last 7 days of the range).`),
    el("table", { cls: "data", id: "preview-rules" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Category"),
        el("th", { cls: "num" }, "Matches"), el("th", { cls: "num" }, "Reclassified"),
        el("th", { cls: "num" }, "Of which passive"))),
      el("tbody", {}, ...data.rules.map((r, i) => el("tr", {}, cell(i + 1), cell(r.category),
        cell(dur(r.seconds), "num"), cell(dur(r.changed_seconds), "num"),
        cell(r.passive_seconds ? `${dur(r.passive_seconds)} (` +
             `${dur(r.passive_changed_seconds)} reclassified)` : "—", "num"))))),
    el("table", { cls: "data", id: "preview-classes" },
      el("thead", {}, el("tr", {}, el("th", {}, "Productivity (active and passive time)"),
        el("th", { cls: "num" }, "Now"), el("th", { cls: "num" }, "After saving"))),
      el("tbody", {}, ...["productive", "neutral", "unproductive", "unclassified"].map((c) =>
        el("tr", {}, cell(c), cell(dur(data.current[`${c}_seconds`]), "num"),
           cell(dur(data.predicted[`${c}_seconds`]), "num"))))));
}

// -- admin: tokens and groups -------------------------------------------------------------

async function viewAdmin(ctx) {
  if (!can("admin")) throw new Error("This page needs an admin token.");
  const [tokens, groups] = await Promise.all([api("/api/v1/tokens"), api("/api/v1/groups")]);
  ctx.done(null);
  const created = el("div", { id: "token-created", attrs: { "aria-live": "polite" } });
  const form = el("form", { cls: "controls", id: "token-form" });
  const role = el("select", { attrs: { id: "new-role", "aria-label": "Role" } },
    ...["viewer", "exporter", "admin", "enroll"].map((r) => el("option", { attrs: { value: r } }, r)));
  const name = el("input", { attrs: { id: "new-name", type: "text", placeholder: "name",
                                      "aria-label": "Name" } });
  const grp = el("input", { attrs: { id: "new-groups", type: "text",
    placeholder: "groups, comma-separated", "aria-label": "Groups" } });
  const exp = el("input", { attrs: { id: "new-expires", type: "text", size: "6",
    placeholder: "e.g. 30d", "aria-label": "Expires after" } });
  form.append(role, name, grp, exp, el("button", { attrs: { type: "submit" } }, "Create token"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const body = { role: role.value, name: name.value.trim(),
                     groups: grp.value.split(",").map((g) => g.trim()).filter(Boolean) };
      if (exp.value.trim()) body.expires = exp.value.trim();
      const done = await api("/api/v1/tokens", {}, { method: "POST", body });
      const secret = el("code", { id: "new-secret" }, done.secret);
      created.replaceChildren(el("p", { cls: "ok" }, `Created ${done.token.role} token ` +
        `${done.token.id}. Copy the secret now: it is shown only once.`), secret);
      tokensBox.replaceChildren(tokenTable((await api("/api/v1/tokens")).tokens));
    } catch (err) {
      created.replaceChildren(el("p", { cls: "error" }, err.message));
    }
  });
  const tokensBox = el("div", {}, tokenTable(tokens.tokens));
  const groupTable = groups.groups.length ? el("table", { cls: "data", id: "groups" },
    el("thead", {}, el("tr", {}, el("th", {}, "Group"), el("th", { cls: "num" }, "Agents"),
      el("th", { cls: "num" }, "Revoked agents"))),
    el("tbody", {}, ...groups.groups.map((g) => el("tr", {},
      cell(el("a", { href: href(["group", g.group], ctx.range) }, g.group)),
      cell(g.agents, "num"), cell(g.revoked_agents, "num")))))
    : emptyState("No groups yet. Give an enroll secret groups (token create --role enroll " +
                 "--group sales), or set an agent's groups on the Agents page.");
  return [el("div", { cls: "view-head" }, el("h2", { id: "view-title" }, "Admin")),
          card("Tokens", form, created, tokensBox),
          card("Groups", groupTable, el("p", { cls: "hint" },
            "Change an agent's groups on the Agents page. A viewer or exporter token with " +
            "groups sees only agents in those groups (and their subgroups)."))];
}

function tokenTable(tokens) {
  const when = (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "—");
  return el("div", { cls: "scroll" }, el("table", { cls: "data", id: "tokens" },
    el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, "Role"), el("th", {}, "Name"),
      el("th", {}, "Groups"), el("th", {}, "Created"), el("th", {}, "Last used"),
      el("th", {}, "Status"))),
    el("tbody", {}, ...tokens.map((t) => {
      const status = t.revoked_ms ? "revoked" : (t.expires_ms && t.expires_ms < Date.now()
        ? "expired" : "active");
      const statusCell = el("span", {}, status);
      if (status === "active") {
        const b = el("button", { cls: "secondary small", attrs: { type: "button",
          "aria-label": `Revoke token ${t.id}` } }, "Revoke");
        b.addEventListener("click", async () => {
          try {
            await api(`/api/v1/tokens/${encodeURIComponent(t.id)}`, {}, { method: "DELETE" });
            statusCell.replaceChildren("revoked");
          } catch (err) { failed(err); }
        });
        statusCell.append(" ", b);
      }
      return el("tr", {}, cell(t.id), cell(t.role), cell(t.name || "—"),
                cell(t.groups.join(", ") || (t.role === "admin" ? "all" : "—")),
                cell(when(t.created_ms)), cell(when(t.last_used_ms)), cell(statusCell));
    }))));
}

// -- the router ---------------------------------------------------------------------------

const VIEWS = {
  overview: (ctx) => viewOverview(ctx, ctx.range.group || null),
  group: (ctx) => viewOverview(ctx, ctx.parts[1]),
  people: viewPeople,
  agents: viewAgents,
  person: viewPerson,
  day: viewDay,
  rules: viewRules,
  admin: viewAdmin,
};

async function route() {
  if (!state.me) return;
  const { parts, params } = parseRoute();
  const range = { ...defaults(), ...rangeParams(params) };
  if (!params.from || !params.to) {   // make the range part of the URL (bookmarks)
    history.replaceState(null, "", href(parts, { ...params, ...range }));
  }
  syncForm(range);
  const view = VIEWS[parts[0]];
  for (const a of $("nav").querySelectorAll("a")) {
    const on = a.dataset.route === parts[0] ||
      (a.dataset.route === "overview" && parts[0] === "group");
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    a.href = href([a.dataset.route], rangeParams(range));
  }
  const seq = ++state.seq;
  if (state.timeline) { state.timeline.destroy(); state.timeline = null; }
  clearError();
  $("view").replaceChildren(el("p", { cls: "hint loading" }, "Loading…"));
  setStatus("Loading…");
  const afters = [];
  const ctx = {
    parts, params: { ...params, ...range }, range: rangeParams(range),
    done: (data) => {
      if (seq !== state.seq) return;
      if (data && data.from) {
        setStatus(`${data.from} to ${data.to} (${data.tz})`);
        if (!$("tz").value && data.tz) $("tz").placeholder = data.tz;
      } else {
        setStatus("");
      }
    },
    after: (fn) => afters.push(fn),
  };
  try {
    if (!view) throw new Error(`There is no page “${parts[0]}”. Use the menu above.`);
    const nodes = await view(ctx);
    if (seq !== state.seq) return;   // a newer navigation won
    $("view").replaceChildren(...nodes.filter(Boolean));
    afters.forEach((fn) => fn());
    performance.mark(`worklens:${parts[0]}`);   // read by benchmarks/dashboard.py
    document.title = `${$("view-title")?.textContent || "Worklens"} · Worklens`;
  } catch (err) {
    if (seq === state.seq) failed(err);
  }
}

async function loadGroups() {
  try {
    const data = await api("/api/v1/groups");
    state.groups = data.groups.map((g) => g.group);
  } catch (_) {
    state.groups = [];
  }
  const select = $("group");
  const current = select.value;
  select.replaceChildren(el("option", { attrs: { value: "" } }, "All I may see"),
    ...state.groups.map((g) => el("option", { attrs: { value: g } }, g)));
  select.value = current;
}

async function start() {
  try {
    state.me = await api("/api/v1/me");
  } catch (err) {
    state.me = null;
    if (err instanceof AuthError || err.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(`The collector refused this token: ${err.message}`);
    } else {
      showLogin(err.message);
    }
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("nav").hidden = false;
  $("signout").hidden = false;
  for (const a of $("nav").querySelectorAll("[data-needs]")) a.hidden = !can(a.dataset.needs);
  const scope = state.me.groups.length ? ` · sees ${state.me.groups.join(", ")}` : "";
  $("who").textContent = `${state.me.name || state.me.role} (${state.me.role})${scope}`;
  await loadGroups();
  await route();
}

function init() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    start();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    showLogin("Signed out.");
  });
  $("range").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const { parts, params } = parseRoute();
    const next = { ...params, from: $("from").value, to: $("to").value,
                   tz: $("tz").value.trim(), group: $("group").value };
    for (const k of ["page", "q", "spage"]) delete next[k];
    const target = href(parts, next);
    if (target === window.location.hash) route(); else window.location.hash = target;
  });
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin();
}

document.addEventListener("DOMContentLoaded", init);
