// otelaudit viewer. Every value from the audit trail is put into the page
// with textContent (or as an attribute of an element we create), never as
// HTML: the trail records what callers sent, hostile text included.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const FILTERS = ["subject", "role", "tool", "backend", "status", "trace_id", "session", "request_id", "error", "args"];
  const STATUSES = ["ok", "error", "denied", "timeout", "cancelled"];
  const LIVE_MS = 3000;

  const state = {
    token: sessionStorage.getItem("otelaudit.token") || "",
    config: { trace_url: "" },
    pages: [""],        // cursors of the pages visited: pages[i] is the "after" of page i
    page: 0,
    next: "",
    rows: [],
    seen: new Set(),
    selected: null,
    timer: null,
    loading: false,
    started: false,
  };

  // A token can be handed over in the fragment (#token=...), which never
  // reaches a server log; it is moved to sessionStorage and removed from the URL.
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("token")) {
    state.token = frag.get("token");
    sessionStorage.setItem("otelaudit.token", state.token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function showError(msg) {
    const box = $("error");
    if (!msg) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = msg;
    box.hidden = false;
  }

  class AuthError extends Error {}

  async function api(path, params) {
    const url = path + (params ? "?" + params.toString() : "");
    const headers = { "Accept": "application/json" };
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    const res = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
    if (res.status === 401) {
      $("auth").hidden = false;
      $("auth-token").focus();
      throw new AuthError("a bearer token is required");
    }
    const body = await res.json().catch(() => ({ error: "bad response (" + res.status + ")" }));
    if (!res.ok) throw new Error(body.error || ("HTTP " + res.status));
    return body;
  }

  // ---- filters, kept in the address bar so a view can be shared ----

  function readFilters() {
    const form = $("filters");
    const p = new URLSearchParams();
    for (const name of FILTERS) {
      const v = form.elements[name].value.trim();
      if (v) p.set(name, v);
    }
    p.set("since", $("window").value);
    return p;
  }

  function writeFiltersFromURL() {
    const q = new URLSearchParams(location.search);
    const form = $("filters");
    for (const name of FILTERS) {
      if (q.has(name)) form.elements[name].value = q.get(name);
    }
    const w = q.get("since");
    if (w && [...$("window").options].some((o) => o.value === w)) $("window").value = w;
  }

  function syncURL(p) {
    const q = new URLSearchParams(p);
    if (q.get("since") === "1h") q.delete("since");
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  // ---- calls table ----

  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
  }

  function statusClass(s) {
    return STATUSES.includes(s) ? "st-" + s : "st-other";
  }

  function renderRows(rows, live) {
    const tbody = $("calls").tBodies[0];
    clear(tbody);
    for (const r of rows) {
      const tr = el("tr");
      tr.dataset.id = String(r.id);
      if (live && !state.seen.has(r.id)) tr.classList.add("fresh");
      tr.appendChild(el("td", "mono", fmtTime(r.timestamp)));
      tr.appendChild(el("td", null, r.client_subject));
      tr.appendChild(el("td", null, r.client_role));
      tr.appendChild(el("td", "mono", r.tool_name));
      tr.appendChild(el("td", null, r.backend_name));
      const st = el("td");
      st.appendChild(el("span", "status " + statusClass(r.response_status), r.response_status));
      tr.appendChild(st);
      tr.appendChild(el("td", "num", r.latency_ms + " ms"));
      const err = el("td", "err", r.error_message || "");
      if (r.error_message) err.title = r.error_message;
      tr.appendChild(err);
      tr.tabIndex = 0;
      tr.addEventListener("click", () => openDetail(r, tr));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(r, tr); });
      if (state.selected === r.id) tr.classList.add("selected");
      tbody.appendChild(tr);
    }
    for (const r of rows) state.seen.add(r.id);
    $("empty").hidden = rows.length > 0;
    $("newer").disabled = state.page === 0;
    $("older").disabled = !state.next;
    $("page-info").textContent = rows.length ? "page " + (state.page + 1) + " · " + rows.length + " rows" : "";
  }

  async function loadCalls(live) {
    const p = readFilters();
    const after = state.pages[state.page];
    if (after) p.set("after", after);
    p.set("limit", "50");
    const body = await api("/api/calls", p);
    state.rows = body.rows;
    state.next = body.next || "";
    renderRows(body.rows, live);
  }

  // ---- detail ----

  function pretty(v) {
    if (v === null || v === undefined) return "—";
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }

  function traceLink(traceID, spanID) {
    const tmpl = state.config.trace_url;
    if (!tmpl || !/^[0-9a-f]{32}$/.test(traceID || "")) return null;
    const href = tmpl.split("{trace_id}").join(encodeURIComponent(traceID))
      .split("{span_id}").join(encodeURIComponent(spanID || ""));
    let u;
    try { u = new URL(href); } catch (e) { return null; }
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    const a = el("a", "mono", traceID);
    a.href = u.href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.id = "trace-link";
    return a;
  }

  function openDetail(r, tr) {
    state.selected = r.id;
    for (const row of $("calls").tBodies[0].rows) row.classList.remove("selected");
    if (tr) tr.classList.add("selected");
    const dl = $("detail-fields");
    clear(dl);
    const attrs = r.attributes || {};
    const add = (k, v, node) => {
      dl.appendChild(el("dt", null, k));
      const dd = el("dd");
      if (node) dd.appendChild(node); else dd.textContent = v === null || v === undefined || v === "" ? "—" : String(v);
      dl.appendChild(dd);
    };
    add("Time", fmtTime(r.timestamp) + " UTC");
    add("Subject", r.client_subject);
    add("Role", r.client_role);
    add("Tool", r.tool_name);
    add("Backend", r.backend_name);
    const st = el("span", "status " + statusClass(r.response_status), r.response_status);
    add("Status", null, st);
    add("Latency", r.latency_ms + " ms");
    add("Error", r.error_message);
    add("Error type", attrs["error.type"]);
    add("Request id", r.request_id);
    add("Trace id", r.trace_id, traceLink(r.trace_id, r.span_id));
    add("Span id", r.span_id);
    add("Session", attrs["mcp.session.id"]);
    add("JSON-RPC id", attrs["jsonrpc.request.id"]);
    add("Service", r.service_name);
    $("detail-args").textContent = pretty(r.request_args);
    $("detail-attrs").textContent = pretty(r.attributes);
    $("detail").hidden = false;
  }

  // ---- chart and top lists ----

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function renderChart(sum) {
    const chart = $("chart");
    clear(chart);
    const W = chart.clientWidth || 700, H = chart.clientHeight || 150;
    const padL = 34, padB = 18, padT = 6;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    const since = new Date(sum.since).getTime(), until = new Date(sum.until).getTime();
    const step = sum.step_seconds * 1000;
    const n = Math.max(1, Math.ceil((until - since) / step));
    const buckets = [];
    for (let i = 0; i < n; i++) buckets.push({});
    for (const b of sum.timeline) {
      const i = Math.floor((new Date(b.start).getTime() - since) / step);
      if (i >= 0 && i < n) buckets[i][b.status] = (buckets[i][b.status] || 0) + b.calls;
    }
    let max = 1;
    for (const b of buckets) max = Math.max(max, Object.values(b).reduce((a, c) => a + c, 0));
    const plotW = W - padL - 4, plotH = H - padB - padT;
    const bw = plotW / n;
    chart.appendChild(svg("line", { x1: padL, y1: padT + plotH, x2: W - 4, y2: padT + plotH, class: "axis" }));
    chart.appendChild(svg("text", { x: padL - 6, y: padT + 8, "text-anchor": "end" }, max));
    chart.appendChild(svg("text", { x: padL - 6, y: padT + plotH, "text-anchor": "end" }, 0));
    buckets.forEach((b, i) => {
      let y = padT + plotH;
      const order = STATUSES.concat(Object.keys(b).filter((s) => !STATUSES.includes(s)));
      for (const s of order) {
        const c = b[s];
        if (!c) continue;
        const h = (c / max) * plotH;
        y -= h;
        const rect = svg("rect", { x: padL + i * bw + 0.5, y: y, width: Math.max(1, bw - 1.5), height: h,
          class: STATUSES.includes(s) ? "s-" + s : "s-other" });
        rect.appendChild(svg("title", {}, fmtTime(new Date(since + i * step).toISOString()).slice(11, 16) + " " + s + ": " + c));
        chart.appendChild(rect);
      }
    });
    const ticks = 6;
    for (let t = 0; t <= ticks; t++) {
      const ms = since + ((until - since) * t) / ticks;
      const d = new Date(ms).toISOString();
      const label = (until - since) > 36 * 3600e3 ? d.slice(5, 10) + " " + d.slice(11, 16) : d.slice(11, 16);
      chart.appendChild(svg("text", { x: padL + (plotW * t) / ticks, y: H - 4, "text-anchor": t === 0 ? "start" : t === ticks ? "end" : "middle" }, label));
    }
    $("chart-range").textContent = "· per " + (sum.step_seconds >= 3600 ? sum.step_seconds / 3600 + " h" : sum.step_seconds / 60 + " min");
    const legend = $("legend");
    clear(legend);
    for (const s of STATUSES) legend.appendChild(el("span", "s-" + s, s));
  }

  function renderTop(id, items, badIsError) {
    const tbody = $(id).tBodies[0];
    clear(tbody);
    if (!items.length) {
      const tr = el("tr");
      tr.appendChild(el("td", "muted", "none"));
      tbody.appendChild(tr);
      return;
    }
    for (const it of items) {
      const tr = el("tr");
      const k = el("td", null, it.key || "—");
      k.title = it.key;
      tr.appendChild(k);
      tr.appendChild(el("td", "num", it.calls));
      if (!badIsError) tr.appendChild(el("td", "num" + (it.errors ? " bad" : ""), it.errors ? it.errors + " failed" : ""));
      tbody.appendChild(tr);
    }
  }

  async function loadSummary() {
    const sum = await api("/api/summary", readFilters());
    renderChart(sum);
    renderTop("top-tools", sum.top_tools);
    renderTop("top-subjects", sum.top_subjects);
    renderTop("top-errors", sum.top_errors, true);
  }

  // ---- integrity ----

  async function loadIntegrity() {
    const rep = await api("/api/integrity");
    const box = $("integrity");
    clear(box);
    const cls = { intact: "badge-ok", unclosed: "badge-warn", broken: "badge-bad", not_sealed: "badge-warn", sealed: "badge-muted", error: "badge-muted" };
    const label = { intact: "intact", unclosed: "intact, unclosed", broken: "BROKEN", not_sealed: "not sealed", sealed: "sealed (not verified)",
      checking: "checking…", error: "unknown" };
    if (!rep.streams || !rep.streams.length) {
      const b = el("span", "badge " + (cls[rep.state] || "badge-muted"), "integrity: " + (label[rep.state] || rep.state));
      b.title = rep.message || "";
      b.id = "integrity-badge";
      box.appendChild(b);
      return;
    }
    box.appendChild(el("span", "integrity-label", "Integrity"));
    for (const s of rep.streams) {
      let text = "stream " + String(s.stream).slice(0, 8) + ": " + (label[s.state] || s.state);
      if (s.state === "broken" && s.broken_at) text = "stream " + String(s.stream).slice(0, 8) + ": broken at seal " + s.broken_at;
      const b = el("span", "badge " + (cls[s.state] || "badge-muted"), text);
      b.title = (rep.message || "") + (rep.checked_at ? " (checked " + rep.checked_at + ")" : "");
      box.appendChild(b);
    }
  }

  // ---- refresh ----

  async function refresh(live) {
    if (state.loading) return;
    state.loading = true;
    try {
      await Promise.all([loadCalls(live), loadSummary()]);
      showError("");
    } catch (e) {
      if (!(e instanceof AuthError)) showError(e.message);
    } finally {
      state.loading = false;
    }
  }

  function schedule() {
    clearInterval(state.timer);
    state.timer = null;
    if ($("live").checked) {
      state.timer = setInterval(() => {
        if (state.page === 0 && !document.hidden) refresh(true);
      }, LIVE_MS);
    }
  }

  function restart() {
    state.pages = [""];
    state.page = 0;
    state.seen = new Set();
    syncURL(readFilters());
    refresh(false);
  }

  async function init() {
    writeFiltersFromURL();
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); restart(); });
    $("clear").addEventListener("click", () => { $("filters").reset(); restart(); });
    $("window").addEventListener("change", restart);
    $("live").addEventListener("change", schedule);
    $("older").addEventListener("click", () => {
      if (!state.next) return;
      state.pages[state.page + 1] = state.next;
      state.page++;
      refresh(false);
    });
    $("newer").addEventListener("click", () => {
      if (state.page === 0) return;
      state.page--;
      refresh(false);
    });
    $("detail-close").addEventListener("click", () => { $("detail").hidden = true; state.selected = null; });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").hidden = true; });
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.token = $("auth-token").value.trim();
      sessionStorage.setItem("otelaudit.token", state.token);
      $("auth").hidden = true;
      start();
    });
    start();
  }

  async function start() {
    if (state.started) return;
    try {
      state.config = await api("/api/config");
    } catch (e) {
      if (!(e instanceof AuthError)) showError(e.message);
      return;
    }
    state.started = true;
    await refresh(false);
    loadIntegrity().catch(() => {});
    setInterval(() => loadIntegrity().catch(() => {}), 30000);
    schedule();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
