// Stadion dashboard: one EventSource, a snapshot then deltas, rendered at most once a frame.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("access_token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token) : path);
  const STATES = ["PortAllocation", "Creating", "Starting", "Scheduled", "RequestReady", "Ready", "Reserved", "Allocated", "Unhealthy", "Shutdown", "Error"];
  const model = { fleets: [], servers: new Map(), matchmaker: null, skewMs: 0 };
  const view = { sort: "name", dir: 1, page: 0, filter: "", state: "", size: 50, expanded: null, details: null };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v; else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function age(created) {
    const t = Date.parse(created);
    if (isNaN(t)) return "";
    let s = Math.max(0, Math.round((Date.now() - model.skewMs - t) / 1000));
    if (s < 120) return s + "s";
    const m = Math.floor(s / 60); if (m < 120) return m + "m";
    const h = Math.floor(m / 60); if (h < 48) return h + "h" + (m % 60 ? (m % 60) + "m" : "");
    return Math.floor(h / 24) + "d";
  }
  const secs = (v) => (v === null || v === undefined ? "–" : v < 1 ? Math.round(v * 1000) + " ms" : v.toFixed(2) + " s");
  const clock = (ms) => new Date(ms).toLocaleTimeString();

  // ---- live feed ----
  let source = null;
  function connect() {
    source = new EventSource(withToken("api/dashboard/events"));
    source.addEventListener("snapshot", (e) => {
      const frame = JSON.parse(e.data);
      model.skewMs = Date.now() - frame.nowMs;
      model.fleets = frame.fleets;
      model.servers = new Map(frame.gameservers.map((gs) => [gs.key, gs]));
      model.matchmaker = frame.matchmaker;
      setLive("live");
      schedule();
    });
    source.addEventListener("delta", (e) => {
      const frame = JSON.parse(e.data);
      model.skewMs = Date.now() - frame.nowMs;
      for (const gs of frame.upsert || []) model.servers.set(gs.key, gs);
      for (const key of frame.remove || []) model.servers.delete(key);
      if (frame.fleets) model.fleets = frame.fleets;
      if ("matchmaker" in frame) model.matchmaker = frame.matchmaker;
      if (view.expanded && (frame.upsert || []).some((gs) => gs.key === view.expanded)) loadDetails();
      schedule();
    });
    source.onopen = () => setLive("live");
    // EventSource reconnects by itself; the next snapshot replaces everything.
    source.onerror = () => setLive("down");
  }
  function setLive(state) {
    const live = $("live");
    live.dataset.live = state;
    live.textContent = state === "live" ? "live" : "disconnected, reconnecting…";
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  // ---- fleets ----
  function renderFleets() {
    const body = $("fleets").tBodies[0];
    body.replaceChildren(...model.fleets.map((f) => {
      const fas = f.autoscaler;
      const scaler = fas ? `${fas.policy}${fas.bufferSize ? " buffer " + fas.bufferSize : ""}${fas.minReplicas !== undefined ? ` (${fas.minReplicas}–${fas.maxReplicas})` : ""} → target ${fas.target}${fas.ableToScale ? "" : " (cannot scale)"}${fas.scalingLimited ? " (limited)" : ""}` : "–";
      const rollout = f.rollout ? f.strategy + ": " + f.rollout.map((s) => `${s.name} ${s.ready}/${s.desired} ready`).join(", ") : "stable";
      const cell = (col, value) => el("td", { class: "num", "data-col": col, text: String(value) });
      return el("tr", { "data-fleet": f.namespace + "/" + f.name },
        el("th", { scope: "row", text: f.namespace === "default" ? f.name : f.namespace + "/" + f.name }),
        cell("desired", f.desired), cell("current", f.current), cell("ready", f.ready),
        cell("allocated", f.allocated), cell("reserved", f.reserved),
        el("td", { "data-col": "autoscaler", text: scaler }), el("td", { "data-col": "rollout", text: rollout }));
    }));
    $("no-fleets").hidden = model.fleets.length > 0;
  }

  // ---- servers ----
  function playersText(gs) {
    const parts = [];
    if (gs.players) parts.push(`players ${gs.players[0]}/${gs.players[1]}`);
    for (const [name, [c, cap]] of Object.entries(gs.counters || {})) parts.push(`${name} ${c}/${cap}`);
    return parts.join(", ");
  }
  function matches(gs) {
    if (view.state && gs.state !== view.state) return false;
    if (!view.filter) return true;
    const hay = [gs.key, gs.state, gs.fleet, gs.address, gs.node, ...gs.ports,
      ...Object.entries(gs.labels || {}).map(([k, v]) => k + "=" + v)].join(" ").toLowerCase();
    return view.filter.split(/\s+/).every((word) => hay.includes(word));
  }
  function sortKey(gs) {
    switch (view.sort) {
      case "players": return gs.players ? gs.players[0] : -1;
      case "state": return STATES.indexOf(gs.state);
      default: return gs[view.sort] || "";
    }
  }
  function renderServers() {
    const all = [...model.servers.values()];
    const shown = all.filter(matches);
    shown.sort((a, b) => {
      const x = sortKey(a), y = sortKey(b);
      return (x < y ? -1 : x > y ? 1 : a.key < b.key ? -1 : 1) * view.dir;
    });
    const pages = Math.max(1, Math.ceil(shown.length / view.size));
    view.page = Math.min(view.page, pages - 1);
    const slice = shown.slice(view.page * view.size, (view.page + 1) * view.size);
    const rows = [];
    for (const gs of slice) {
      const open = view.expanded === gs.key;
      const labels = el("td", { class: "labels" }, ...Object.entries(gs.labels || {}).map(([k, v]) => el("code", { text: k + "=" + v })));
      rows.push(el("tr", { "data-gs": gs.key, "data-state": gs.state },
        el("th", { scope: "row" }, el("button", { type: "button", class: "expand", "aria-expanded": String(open), "aria-controls": "details-row", text: gs.name })),
        el("td", { "data-col": "state" }, el("span", { class: "state state-" + gs.state, text: (gs.state || "Pending") + (gs.deleting ? " (deleting)" : "") })),
        el("td", { "data-col": "address", text: gs.address ? gs.address + ":" + gs.ports.map((p) => p.split(":").pop()).join(",") : "" }),
        el("td", { "data-col": "node", text: gs.node }),
        el("td", { "data-col": "age", "data-created": gs.created, text: age(gs.created) }),
        el("td", { "data-col": "players", text: playersText(gs) }),
        labels,
        el("td", { "data-col": "lastAllocated", text: gs.lastAllocated ? new Date(gs.lastAllocated).toLocaleTimeString() : "" })));
      if (open) rows.push(detailsRow(gs));
    }
    $("servers").tBodies[0].replaceChildren(...rows);
    $("server-count").textContent = `(${shown.length}${shown.length !== all.length ? " of " + all.length : ""})`;
    $("page").textContent = `page ${view.page + 1} of ${pages}`;
    $("prev").disabled = view.page === 0;
    $("next").disabled = view.page >= pages - 1;
    for (const th of $("servers").tHead.rows[0].cells) {
      if (!th.dataset.sort) continue;
      th.setAttribute("aria-sort", th.dataset.sort === view.sort ? (view.dir > 0 ? "ascending" : "descending") : "none");
    }
  }
  function detailsRow(gs) {
    const d = view.details;
    const content = [];
    if (!d) content.push(el("p", { class: "muted", text: "loading…" }));
    else {
      content.push(el("h3", { text: "Events" }));
      content.push(d.events.length ? el("ul", {}, ...d.events.slice(-10).map((e) =>
        el("li", { class: e.type === "Warning" ? "warning" : null, text: `${new Date(e.time).toLocaleTimeString()} ${e.type} ${e.reason}: ${e.note}` }))) : el("p", { class: "muted", text: "no recent Events" }));
      if (d.output) {
        content.push(el("h3", { text: "Output (last lines)" }));
        content.push(el("pre", { tabindex: "0", text: d.output.join("\n") || "(no output yet)" }));
      }
    }
    return el("tr", { class: "details", id: "details-row" }, el("td", { colspan: "8" }, ...content));
  }
  let detailsTimer = null;
  async function loadDetails() {
    const key = view.expanded;
    if (!key) return;
    try {
      const [ns, name] = key.split("/");
      const reply = await fetch(withToken(`api/dashboard/gameservers/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`));
      if (reply.ok && view.expanded === key) { view.details = await reply.json(); schedule(); }
    } catch (_) { /* the next refresh retries */ }
  }
  function toggle(key) {
    view.expanded = view.expanded === key ? null : key;
    view.details = null;
    clearInterval(detailsTimer);
    if (view.expanded) {
      loadDetails();
      // Output has no event of its own: one request every 2 s while a row is open.
      detailsTimer = setInterval(loadDetails, 2000);
    }
    render();
    const button = document.querySelector(`tr[data-gs="${CSS.escape(key)}"] .expand`);
    if (button) button.focus();
  }

  // ---- matchmaker ----
  function renderMatchmaker() {
    const mm = model.matchmaker;
    $("matchmaker").hidden = !mm;
    if (!mm) return;
    $("queues").tBodies[0].replaceChildren(...mm.queues.map((q) => el("tr", { "data-queue": q.name },
      el("th", { scope: "row", text: q.name }),
      el("td", { class: "num", "data-col": "searching", text: String(q.searching) }),
      el("td", { class: "num", "data-col": "matched", text: String(q.matched) }),
      el("td", { class: "num", "data-col": "assigned", text: String(q.assigned) }),
      el("td", { class: "num", text: secs(q.waitP50) }), el("td", { class: "num", text: secs(q.waitP90) }),
      el("td", { class: "num", text: secs(q.waitP99) }), el("td", { class: "num", text: q.matchesPerSecond.toFixed(1) }))));
    $("allocations").tBodies[0].replaceChildren(...(mm.allocations.length ? mm.allocations.map((a) => el("tr", {},
      el("td", { text: a.source }), el("td", { text: a.outcome }), el("td", { class: "num", text: String(a.count) })))
      : [el("tr", {}, el("td", { colspan: "3", class: "muted", text: "no allocations yet" }))]));
    $("assignments").tBodies[0].replaceChildren(...(mm.assignments.length ? mm.assignments.map((a) => el("tr", {},
      el("td", { text: clock(a.atMs) }), el("td", { text: a.queue }),
      el("td", {}, ...a.tickets.map((t) => el("code", { "data-ticket": t, text: t + " " }))),
      el("td", { "data-col": "gameserver", text: a.gameserver })))
      : [el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no assignments yet" }))]));
    renderChart(mm.chart);
  }
  function renderChart(bins) {
    const svg = $("wait-chart");
    const ns = "http://www.w3.org/2000/svg";
    const W = 320, H = 140, L = 34, B = 18, T = 6, slots = 30, bin = 10000;
    const now = Date.now() - model.skewMs;
    const first = Math.floor(now / bin) * bin - (slots - 1) * bin;
    const top = Math.max(1, ...bins.map((b) => b.max));
    const nodes = [svg.querySelector("title")];
    const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; nodes.push(n); };
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const w = (W - L) / slots;
    add("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#999" });
    add("text", { x: 0, y: T + 8 }, secs(top));
    add("text", { x: 0, y: H - B }, "0");
    add("text", { x: L, y: H - 4 }, "−5 min");
    add("text", { x: W - 24, y: H - 4 }, "now");
    for (const b of bins) {
      const slot = Math.round((b.startMs - first) / bin);
      if (slot < 0 || slot >= slots) continue;
      const x = L + slot * w;
      add("rect", { class: "max", x: x + 1, y: y(b.max), width: w - 2, height: H - B - y(b.max) }, null);
      add("rect", { class: "p50", x: x + 1, y: y(b.p50), width: w - 2, height: H - B - y(b.p50) }, null);
    }
    svg.replaceChildren(...nodes);
  }

  function render() {
    renderFleets();
    renderServers();
    renderMatchmaker();
  }

  // ---- controls ----
  $("servers").tHead.addEventListener("click", (e) => {
    const th = e.target.closest("th[data-sort]");
    if (!th) return;
    if (view.sort === th.dataset.sort) view.dir = -view.dir; else { view.sort = th.dataset.sort; view.dir = 1; }
    render();
  });
  $("servers").tBodies[0].addEventListener("click", (e) => {
    const button = e.target.closest("button.expand");
    if (button) toggle(button.closest("tr").dataset.gs);
  });
  $("filter").addEventListener("input", (e) => { view.filter = e.target.value.trim().toLowerCase(); view.page = 0; render(); });
  $("state-filter").append(...STATES.map((s) => el("option", { value: s, text: s })));
  $("state-filter").addEventListener("change", (e) => { view.state = e.target.value; view.page = 0; render(); });
  $("page-size").addEventListener("change", (e) => { view.size = Number(e.target.value); view.page = 0; render(); });
  $("prev").addEventListener("click", () => { view.page = Math.max(0, view.page - 1); render(); });
  $("next").addEventListener("click", () => { view.page += 1; render(); });
  // Ages move with the clock; only the visible page's cells are touched.
  setInterval(() => { for (const td of document.querySelectorAll("td[data-created]")) td.textContent = age(td.dataset.created); }, 1000);
  connect();
})();
