// Worklens dashboard, "Now" panel: what each agent is doing right now, from
// GET /api/v1/live, polled every few seconds while its slot is on the page and the
// page is visible. The dashboard (app.js) calls window.WorklensLive.mount(slot,
// {api, params}) where the panel belongs; this file keeps its own helpers.
// Data goes on the page with textContent only: titles belong to other programs.
"use strict";

(() => {
  const POLL_MS = 5000;
  const STATES = ["active", "passive", "idle", "locked", "asleep", "offline", "unknown"];
  const QUIET = new Set(["offline", "unknown"]);   // folded into one line until asked for
  let showQuiet = false;
  let timer = null;

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
    const quiet = QUIET.has(state);   // app and since would be stale: shown as "last"
    const since = el("td", "num", agent.since_ms && !quiet
      ? `${clock(agent.since)} (${ago(nowMs - agent.since_ms)})` : "");
    const contact = el("td", "num", agent.last_contact_ms
      ? `${ago(nowMs - agent.last_contact_ms)} ago` : "never");
    if (agent.missed_flushes) contact.title = `${agent.missed_flushes} flush(es) missed`;
    const spool = el("td", "num", agent.spool_batches
      ? `${agent.spool_batches} batch(es)` : "empty");
    const stateCell = el("td");
    stateCell.append(badge);
    const app = el("td", quiet ? "now-title" : null, quiet && agent.app
      ? `last: ${agent.app}` : agent.app);
    tr.append(who, stateCell, app, el("td", "now-title", quiet ? "" : agent.title),
              since, contact, spool);
    return tr;
  }

  // One line for the agents that are offline or report nothing now, with a toggle:
  // on a fleet they would push everything else off the page.
  function quietRow(count, again) {
    const tr = el("tr", "now-quiet");
    const td = el("td", "hint");
    td.colSpan = 7;
    const button = el("button", "link now-toggle", showQuiet ? "hide them"
      : `show ${count === 1 ? "it" : "them"}`);
    button.type = "button";
    button.addEventListener("click", () => { showQuiet = !showQuiet; again(); });
    td.append(`${count} agent(s) offline or without current activity `, button);
    tr.append(td);
    return tr;
  }

  function build(slot) {
    const head = el("div", "now-head");
    head.append(el("span", "status", ""));
    head.lastChild.id = "now-status";
    head.lastChild.setAttribute("role", "status");
    const table = el("table", "data");
    table.id = "now-table";
    const tr = el("tr");
    for (const [name, cls] of [["Agent"], ["State"], ["Application"], ["Window title"],
      ["Since", "num"], ["Last contact", "num"], ["Waiting to send", "num"]]) {
      tr.append(el("th", cls || null, name));
    }
    table.append(el("thead"), el("tbody"));
    table.tHead.append(tr);
    const hint = el("p", "hint", "Updated every few seconds. Agents send what happened up to " +
      "each flush; an agent is offline when two of its flushes are missing.");
    slot.append(head, table, hint);
    return { status: head.lastChild, body: table.tBodies[0] };
  }

  function mount(slot, { api, params }) {
    for (const old of slot.querySelectorAll(".empty")) old.remove();
    const view = build(slot);
    if (timer) clearInterval(timer);
    const poll = async () => {
      if (!slot.isConnected) { clearInterval(timer); timer = null; return; }
      if (document.hidden) return;
      try {
        const data = await api("/api/v1/live", { tz: params && params.tz });
        const live = data.agents.filter((a) => !QUIET.has(a.state));
        const quiet = data.agents.filter((a) => QUIET.has(a.state));
        const rows = live.map((a) => row(a, data.now_ms));
        if (quiet.length) {
          rows.push(quietRow(quiet.length, poll));
          if (showQuiet) rows.push(...quiet.map((a) => row(a, data.now_ms)));
        }
        if (!rows.length) {
          const tr = el("tr");
          const td = el("td", "hint", "No agents enrolled yet.");
          td.colSpan = 7;
          tr.append(td);
          rows.push(tr);
        }
        view.body.replaceChildren(...rows);
        view.status.textContent = `updated ${clock(data.now)}`;
        view.status.classList.remove("error");
      } catch (err) {
        view.status.textContent = `not updated: ${err.message}`;
        view.status.classList.add("error");
      }
    };
    poll();
    timer = setInterval(poll, POLL_MS);
  }

  window.WorklensLive = { mount };
})();
