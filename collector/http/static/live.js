// Worklens dashboard, "Now" panel: what each agent is doing right now, from
// GET /api/v1/live, polled every few seconds while the page is open and visible.
// Self-contained (its own helpers) so the rest of the dashboard can change freely.
// Data goes on the page with textContent only: titles belong to other programs.
"use strict";

(() => {
  const POLL_MS = 5000;
  const TOKEN_KEY = "worklens.token";
  const STATES = ["active", "passive", "idle", "locked", "asleep", "offline", "unknown"];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // "45 s", "12 min", "3 h 05 min": how long, as people say it.
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  function clock(iso) { return iso ? iso.slice(11, 19) : ""; }

  function row(agent, nowMs) {
    const tr = el("tr");
    const who = el("td");
    who.append(el("span", "now-host", agent.hostname || agent.agent_id));
    if (agent.user) who.append(el("span", "now-user", ` ${agent.user}`));
    const state = STATES.includes(agent.state) ? agent.state : "unknown";
    const badge = el("span", `now-state now-${state}`,
                     agent.reason ? `${state} (${agent.reason})` : state);
    const since = el("td", "num", agent.since_ms && state !== "offline"
      ? `${clock(agent.since)} (${ago(nowMs - agent.since_ms)})` : "");
    const contact = el("td", "num", agent.last_contact_ms
      ? `${ago(nowMs - agent.last_contact_ms)} ago` : "never");
    if (agent.missed_flushes) contact.title = `${agent.missed_flushes} flush(es) missed`;
    const spool = el("td", "num", agent.spool_batches
      ? `${agent.spool_batches} batch(es)` : "empty");
    const stateCell = el("td");
    stateCell.append(badge);
    tr.append(who, stateCell, el("td", null, agent.app), el("td", "now-title", agent.title),
              since, contact, spool);
    return tr;
  }

  async function poll() {
    const panel = document.getElementById("now");
    const app = document.getElementById("app");
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!panel || !app || app.hidden || !token || document.hidden) return;
    const status = document.getElementById("now-status");
    try {
      const resp = await fetch("/api/v1/live", { headers: { Authorization: `Bearer ${token}` } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const data = await resp.json();
      const body = document.querySelector("#now-table tbody");
      const rows = data.agents.map((a) => row(a, data.now_ms));
      if (!rows.length) {
        const tr = el("tr");
        const td = el("td", "hint", "No agents enrolled yet.");
        td.colSpan = 7;
        tr.append(td);
        rows.push(tr);
      }
      body.replaceChildren(...rows);
      status.textContent = `updated ${clock(data.now)}`;
      status.classList.remove("error");
    } catch (err) {
      status.textContent = `not updated: ${err.message}`;
      status.classList.add("error");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    poll();
    setInterval(poll, POLL_MS);
    // signing in shows the app: fill the panel at once rather than at the next tick
    new MutationObserver(poll).observe(document.getElementById("app"),
                                       { attributes: true, attributeFilter: ["hidden"] });
    document.addEventListener("visibilitychange", poll);
  });
})();
