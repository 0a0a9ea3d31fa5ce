// The CDR table: plain JavaScript, no build step. All data comes from the JSON API with
// "Authorization: Bearer <token>"; the token lives in sessionStorage only. Data is put in
// the page with textContent only (never innerHTML), so a number cannot inject markup.
// The daily chart is inline SVG built here; the live tail is read with fetch() (an
// EventSource cannot send the Authorization header), reconnecting with Last-Event-ID.
"use strict";

(function () {
  const TOKEN_KEY = "cdrstream.token";
  const TENANT_RE = /^[A-Za-z0-9._-]{1,64}$/; // cdrstream.core.event.TENANT_ID (a test checks)
  const $ = (id) => document.getElementById(id);
  const browserTz = Intl.DateTimeFormat().resolvedOptions().timeZone;

  const state = {
    tenant: null,
    displayTz: "Europe/Amsterdam",
    cursors: [null], // cursor of each page up to the current one: [null, c1, c2, ...]
    nextCursor: null,
    filters: {},
    loading: 0,
    pageSize: 100,
  };

  // ---------------------------------------------------------------- time helpers

  const pad = (n, w = 2) => String(n).padStart(w, "0");

  function zoneParts(ms, zone) {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      timeZoneName: "short",
    }).formatToParts(new Date(ms));
    const out = {};
    for (const p of parts) out[p.type] = p.value;
    return out;
  }

  // Minutes the zone is ahead of UTC at the instant ms.
  function zoneOffsetMinutes(ms, zone) {
    const p = zoneParts(ms, zone);
    const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
  }

  // "2026-11-25T09:14" (a wall time in the display zone) -> "2026-11-25T09:14:00+01:00".
  // As an upper bound ("to", inclusive) it covers the whole minute or second typed.
  function wallTimeToRfc3339(value, zone, upperBound) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$/.exec(value);
    if (!m) return value; // let the server name the problem
    const seconds = m[6] !== undefined ? m[6] : upperBound ? "59" : "00";
    const fraction = m[7] ? "." + m[7] : upperBound ? ".999" : "";
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +seconds);
    let offset = zoneOffsetMinutes(wall, zone);
    offset = zoneOffsetMinutes(wall - offset * 60000, zone);
    const sign = offset < 0 ? "-" : "+";
    const abs = Math.abs(offset);
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${seconds}${fraction}` +
      `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  // "2026-11-25T09:14:03.120+01:00" -> "2026-11-25 09:14:03" (already in the display zone).
  function displayTime(local) {
    return local.slice(0, 10) + " " + local.slice(11, 19);
  }

  // The same instant in the viewer's own zone, for the tooltip.
  function browserTime(utc) {
    const p = zoneParts(Date.parse(utc), browserTz);
    return `${p.year}-${p.month}-${p.day} ${pad(+p.hour % 24)}:${p.minute}:${p.second} ` +
      `${p.timeZoneName} (${browserTz})`;
  }

  function duration(seconds) {
    return `${Math.floor(seconds / 60)}:${pad(seconds % 60)}`;
  }

  // ---------------------------------------------------------------- token and tenant

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showTokenState() {
    const has = !!token();
    $("token-forget").hidden = !has;
    $("token").placeholder = has ? "token set for this tab" : "cdrs_…";
  }

  function tenantFromPath() {
    const m = /^\/tenants\/([^/]+)\/?$/.exec(location.pathname);
    if (!m) return null;
    let tenant;
    try {
      tenant = decodeURIComponent(m[1]);
    } catch (e) {
      return null;
    }
    return TENANT_RE.test(tenant) ? tenant : null;
  }

  // ---------------------------------------------------------------- messages

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text || "";
    el.className = kind || "";
  }

  function clearFieldErrors() {
    for (const el of document.querySelectorAll("[data-error-for]")) el.textContent = "";
    for (const el of document.querySelectorAll("#filters .invalid")) el.classList.remove("invalid");
  }

  async function problemOf(response) {
    try {
      return await response.json();
    } catch (e) {
      return { title: response.statusText, detail: "" };
    }
  }

  // Shows the answer's problem; returns nothing useful.
  async function showProblem(response) {
    const problem = await problemOf(response);
    if (response.status === 401) {
      setStatus("token missing or invalid: enter the access token you were given", "error");
      $("token").focus();
    } else if (response.status === 403) {
      setStatus("this token may not read this tenant", "error");
    } else if (response.status === 400) {
      const leftover = [];
      for (const p of problem.invalid_params || []) {
        const slot = document.querySelector(`[data-error-for="${CSS.escape(p.name)}"]`);
        if (slot) {
          slot.textContent = p.reason;
          const input = document.querySelector(`#filters [name="${CSS.escape(p.name)}"]`);
          if (input) input.classList.add("invalid");
        } else {
          leftover.push(`${p.name}: ${p.reason}`);
        }
      }
      setStatus(leftover.length ? leftover.join("; ") : "check the highlighted filter", "error");
    } else if (response.status === 503) {
      setStatus("the record store is unavailable; try again in a moment", "error");
    } else {
      setStatus(`${response.status} ${problem.title || ""}: ${problem.detail || ""}`, "error");
    }
  }

  // ---------------------------------------------------------------- data

  function readFilters() {
    const form = $("filters");
    const f = {};
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    if (from) f.from = wallTimeToRfc3339(from, state.displayTz, false);
    if (to) f.to = wallTimeToRfc3339(to, state.displayTz, true);
    for (const name of ["direction", "extension", "number"]) {
      const value = form.elements[name].value.trim();
      if (value) f[name] = value;
    }
    return f;
  }

  function cdrsUrl(params) {
    const query = new URLSearchParams(params).toString();
    return `/v1/tenants/${encodeURIComponent(state.tenant)}/cdrs${query ? "?" + query : ""}`;
  }

  function authHeaders(extra) {
    return Object.assign({ Authorization: `Bearer ${token()}` }, extra || {});
  }

  function rowFor(r) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.started = r.started_at;
    const cells = [
      displayTime(r.started_at_local),
      r.source,
      r.destination,
      duration(r.duration),
      r.extension,
      r.direction,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 0) {
        td.title = browserTime(r.started_at);
        td.className = "time";
      } else if (i === 1 || i === 2) {
        // A token with masked numbers is served no raw number (null): say why instead.
        const raw = i === 1 ? r.source_raw : r.destination_raw;
        td.className = "number";
        td.title = raw === null ? "masked: this token is not shown full numbers" : raw;
      } else if (i === 3) {
        td.className = "duration";
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function render(records) {
    const body = $("rows");
    body.replaceChildren();
    for (const r of records) body.appendChild(rowFor(r));
    $("empty").hidden = records.length > 0;
    $("cdrs").classList.toggle("is-empty", records.length === 0);
  }

  function updatePager() {
    $("prev").disabled = state.cursors.length <= 1;
    $("next").disabled = !state.nextCursor;
    $("page-no").textContent = `Page ${state.cursors.length}`;
  }

  async function load() {
    if (!state.tenant) return;
    if (!token()) {
      render([]);
      $("empty").hidden = true;
      setStatus("token missing or invalid: enter the access token you were given", "error");
      return;
    }
    const ticket = ++state.loading;
    live.duringLoad = [];
    const params = Object.assign({}, state.filters);
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) params.cursor = cursor;
    setStatus("Loading…", "busy");
    let response;
    try {
      response = await fetch(cdrsUrl(params), {
        headers: authHeaders({ Accept: "application/json" }),
        cache: "no-store",
      });
    } catch (e) {
      if (ticket === state.loading) setStatus("cannot reach the server", "error");
      return;
    }
    if (ticket !== state.loading) return; // a newer request took over
    clearFieldErrors();
    if (!response.ok) {
      render([]);
      $("empty").hidden = true;
      state.nextCursor = null;
      updatePager();
      await showProblem(response);
      return;
    }
    const page = await response.json();
    if (ticket !== state.loading) return;
    state.nextCursor = page.next_cursor;
    render(page.records);
    // A call announced while the list was on its way may be missing from it: put it back.
    for (const r of live.duringLoad) addLiveRow(r);
    live.duringLoad = [];
    updatePager();
    setStatus(page.records.length ? `${page.records.length} calls on this page` : "", "");
  }

  function filenameOf(response) {
    const header = response.headers.get("Content-Disposition") || "";
    const m = /filename="([^"]+)"/.exec(header);
    return m ? m[1] : `cdrs-${state.tenant}.csv`;
  }

  async function downloadCsv() {
    if (!state.tenant) return;
    if (!token()) {
      setStatus("token missing or invalid: enter the access token you were given", "error");
      return;
    }
    clearFieldErrors();
    const filters = readFilters();
    setStatus("Preparing CSV…", "busy");
    let response;
    try {
      response = await fetch(cdrsUrl(Object.assign({ format: "csv" }, filters)), {
        headers: authHeaders({ Accept: "text/csv" }),
        cache: "no-store",
      });
    } catch (e) {
      setStatus("cannot reach the server", "error");
      return;
    }
    if (!response.ok) {
      await showProblem(response);
      return;
    }
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filenameOf(response);
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    setStatus(`Downloaded ${a.download}`, "");
  }


  // ---------------------------------------------------------------- daily chart (inline SVG)

  const SVG_NS = "http://www.w3.org/2000/svg";
  const chart = { days: [], selected: null, timer: null };

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    if (parent) parent.appendChild(el);
    return el;
  }

  async function loadSummary() {
    if (!state.tenant || !token()) {
      $("summary").hidden = true;
      return;
    }
    let response;
    try {
      response = await fetch(`/v1/tenants/${encodeURIComponent(state.tenant)}/summary`, {
        headers: authHeaders({ Accept: "application/json" }),
        cache: "no-store",
      });
    } catch (e) {
      return; // the table says what is wrong; the chart keeps what it has
    }
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) $("summary").hidden = true;
      return;
    }
    chart.days = (await response.json()).days;
    drawChart();
  }

  // At most one summary reload every few seconds while live records arrive.
  function scheduleSummary() {
    if (chart.timer) return;
    chart.timer = setTimeout(() => {
      chart.timer = null;
      loadSummary();
    }, 3000);
  }

  function minutesOf(day) {
    return (day.inbound.talk_seconds + day.outbound.talk_seconds) / 60;
  }

  function tipText(day) {
    const lines = [day.date];
    for (const dir of ["inbound", "outbound"]) {
      const f = day[dir];
      const rate = f.answer_rate === null ? "-" : `${Math.round(f.answer_rate * 100)}%`;
      const average =
        f.average_talk_seconds === null ? "-" : duration(Math.round(f.average_talk_seconds));
      lines.push(
        `${dir}: ${f.calls} calls, ${f.answered} answered (${rate}), average talk ${average}`
      );
    }
    lines.push(`minutes of talk: ${minutesOf(day).toFixed(1)}`);
    return lines.join("\n");
  }

  function showTip(day, event) {
    const tip = $("chart-tip");
    tip.textContent = tipText(day);
    tip.hidden = false;
    moveTip(event);
  }

  function moveTip(event) {
    const box = $("summary").getBoundingClientRect();
    const tip = $("chart-tip");
    const x = Math.min(event.clientX - box.left + 12, box.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, x)}px`;
    tip.style.top = `${event.clientY - box.top + 14}px`;
  }

  function hideTip() {
    $("chart-tip").hidden = true;
  }

  function drawChart() {
    const box = $("chart");
    box.replaceChildren();
    const days = chart.days;
    $("summary").hidden = days.length === 0;
    if (!days.length) return;
    const W = 900;
    const H = 180;
    const left = 36;
    const right = 44;
    const top = 8;
    const bottom = 22;
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    const maxCalls = Math.max(1, ...days.map((d) => Math.max(d.inbound.calls, d.outbound.calls)));
    const maxMinutes = Math.max(1, ...days.map(minutesOf));
    const root = svg(
      "svg",
      {
        viewBox: `0 0 ${W} ${H}`,
        preserveAspectRatio: "none",
        role: "img",
        "aria-label": "Calls per day, inbound and outbound, and minutes of talk",
      },
      box
    );
    for (const share of [0, 0.5, 1]) {
      const y = top + plotH * (1 - share);
      svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }, root);
      const calls = svg("text", { x: left - 4, y: y + 3, "text-anchor": "end", class: "axis" }, root);
      calls.textContent = String(Math.round(maxCalls * share));
      const minutes = svg("text", { x: W - right + 4, y: y + 3, class: "axis" }, root);
      minutes.textContent = `${Math.round(maxMinutes * share)} min`;
    }
    const slot = plotW / days.length;
    const barW = Math.max(1, slot * 0.38);
    const labelEvery = Math.ceil(days.length / 10);
    const points = [];
    days.forEach((day, i) => {
      const x0 = left + i * slot;
      const group = svg("g", { class: "day-group", "data-date": day.date }, root);
      const selected = chart.selected === day.date ? " selected" : "";
      svg("rect", { x: x0, y: top, width: slot, height: plotH, class: "day" + selected }, group);
      [["inbound", 0], ["outbound", 1]].forEach(([dir, j]) => {
        const h = (plotH * day[dir].calls) / maxCalls;
        svg(
          "rect",
          { x: x0 + slot * 0.12 + j * barW, y: top + plotH - h, width: barW, height: h,
            class: `bar ${dir}`, "data-calls": day[dir].calls },
          group
        );
      });
      const cx = x0 + slot / 2;
      const cy = top + plotH * (1 - minutesOf(day) / maxMinutes);
      points.push(`${cx.toFixed(1)},${cy.toFixed(1)}`);
      if (i % labelEvery === 0 || i === days.length - 1) {
        const label = svg("text", { x: cx, y: H - 6, "text-anchor": "middle", class: "axis" }, root);
        label.textContent = day.date.slice(5);
      }
      group.addEventListener("mouseenter", (event) => showTip(day, event));
      group.addEventListener("mousemove", moveTip);
      group.addEventListener("mouseleave", hideTip);
      group.addEventListener("click", () => filterDay(day.date));
    });
    svg("polyline", { points: points.join(" "), class: "minutes" }, root);
    for (const point of points) {
      const [cx, cy] = point.split(",");
      svg("circle", { cx, cy, r: 2.5, class: "dot" }, root);
    }
  }

  // A click on a day: the table lists that day's calls (a day in the display zone).
  function filterDay(date) {
    const form = $("filters");
    form.elements.from.value = `${date}T00:00:00`;
    form.elements.to.value = `${date}T23:59:59`;
    chart.selected = date;
    drawChart();
    clearFieldErrors();
    state.filters = readFilters();
    state.cursors = [null];
    load();
    if (live.on) startLive();
  }

  // ---------------------------------------------------------------- live tail

  const live = {
    on: false,
    controller: null,
    lastId: null,
    retryMs: 2000,
    failures: 0,
    timer: null,
    duringLoad: [], // the last page of records announced since the list was last requested
  };

  function setLiveState(text, kind) {
    const el = $("live-state");
    el.textContent = text;
    el.className = kind || "";
  }

  function liveUrl() {
    const params = {};
    for (const name of ["direction", "extension", "number"]) {
      if (state.filters[name]) params[name] = state.filters[name];
    }
    const query = new URLSearchParams(params).toString();
    return `/v1/tenants/${encodeURIComponent(state.tenant)}/cdrs/live${query ? "?" + query : ""}`;
  }

  // (Re)start the stream for the current filters: the list is reloaded once it is ready.
  function startLive() {
    stopLive();
    live.on = true;
    live.lastId = null;
    live.failures = 0;
    connectLive();
  }

  function stopLive() {
    if (live.controller) live.controller.abort();
    live.controller = null;
    clearTimeout(live.timer);
  }

  async function connectLive() {
    if (!live.on || !state.tenant || !token()) return;
    const controller = new AbortController();
    live.controller = controller;
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (live.lastId) headers["Last-Event-ID"] = live.lastId;
    setLiveState(live.failures ? "reconnecting…" : "connecting…", live.failures ? "error" : "");
    let response;
    try {
      response = await fetch(liveUrl(), { headers, cache: "no-store", signal: controller.signal });
    } catch (e) {
      retryLive(controller);
      return;
    }
    if ([400, 401, 403].includes(response.status)) {
      // Refused as the list would be: stop, and let the list say why.
      live.on = false;
      $("live").checked = false;
      setLiveState("", "");
      load();
      return;
    }
    if (!response.ok || !response.body) {
      retryLive(controller, response.status === 429 ? 5000 : 0);
      return;
    }
    try {
      await readEvents(response.body, controller);
    } catch (e) {
      // the connection broke (API restarted, network gone) or the stream was stopped
    }
    retryLive(controller);
  }

  // Reconnect after a pause (the server's retry, longer after repeated failures), with
  // the last event id: nothing is missed (or the server says to reload the list).
  function retryLive(controller, delay) {
    if (!live.on || live.controller !== controller || controller.signal.aborted) return;
    live.failures += 1;
    const wait = delay || Math.min(10000, live.retryMs * Math.min(live.failures, 5));
    setLiveState("reconnecting…", "error");
    live.timer = setTimeout(connectLive, wait);
  }

  async function readEvents(body, controller) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let fields = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done || controller.signal.aborted) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          dispatch(fields);
          fields = {};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          fields[name] = name === "data" && fields.data !== undefined ? `${fields.data}\n${text}` : text;
        }
      }
    }
  }

  function dispatch(fields) {
    if (fields.id !== undefined) live.lastId = fields.id; // heartbeats move it too
    if (fields.retry !== undefined && /^[0-9]+$/.test(fields.retry)) live.retryMs = +fields.retry;
    if (fields.data === undefined) return;
    let data;
    try {
      data = JSON.parse(fields.data);
    } catch (e) {
      return;
    }
    const name = fields.event || "message";
    if (name === "ready") {
      live.failures = 0;
      setLiveState("live", "on");
      if (!data.resumed) load(); // calls stored before the stream opened
    } else if (name === "reload") {
      load();
      scheduleSummary();
    } else if (name === "record") {
      addLiveRow(data);
      live.duringLoad.push(data);
      if (live.duringLoad.length > state.pageSize) live.duringLoad.shift(); // a page at most
      scheduleSummary();
    }
  }

  function inPeriod(r) {
    const t = Date.parse(r.started_at);
    if (state.filters.from && t < Date.parse(state.filters.from)) return false;
    if (state.filters.to && t > Date.parse(state.filters.to)) return false;
    return true;
  }

  // A record as it is stored: on the first page, in time order, marked for a few seconds
  // (a replaced record replaces its row).
  function addLiveRow(r) {
    if (state.cursors.length > 1 || !inPeriod(r)) return;
    const body = $("rows");
    const old = body.querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
    const tr = rowFor(r);
    tr.classList.add("new");
    if (old) {
      old.replaceWith(tr);
    } else {
      let before = body.firstElementChild;
      while (before && Date.parse(before.dataset.started) > Date.parse(r.started_at)) {
        before = before.nextElementSibling;
      }
      if (!before && body.rows.length >= state.pageSize) return; // older than the page
      body.insertBefore(tr, before);
      while (body.rows.length > state.pageSize) body.deleteRow(body.rows.length - 1);
    }
    $("empty").hidden = true;
    $("cdrs").classList.remove("is-empty");
    setTimeout(() => tr.classList.remove("new"), 5000);
  }

  // ---------------------------------------------------------------- wiring

  async function loadConfig() {
    try {
      const response = await fetch("/v1/config", { cache: "no-store" });
      if (!response.ok) return;
      const config = await response.json();
      state.displayTz = config.display_tz;
      for (const el of document.querySelectorAll(".tz-label")) {
        el.textContent = config.display_tz_label;
      }
      $("tz-name").textContent = `${config.display_tz} (${config.display_tz_label})`;
      $("retention").textContent = String(config.retention_days);
      state.pageSize = config.default_limit || state.pageSize;
    } catch (e) {
      // keep the defaults in the page
    }
  }

  function start() {
    $("browser-tz").textContent = browserTz;
    state.tenant = tenantFromPath();
    if (state.tenant) {
      $("tenant-title").textContent = `· ${state.tenant}`;
      document.title = `Call data records · ${state.tenant}`;
    } else {
      $("tenant-form").hidden = false;
      $("filters").hidden = true;
      $("pager").hidden = true;
      $("cdrs").hidden = true;
      setStatus("Choose a tenant.", "");
    }
    showTokenState();

    $("tenant-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const tenant = $("tenant").value.trim();
      if (TENANT_RE.test(tenant)) location.assign(`/tenants/${encodeURIComponent(tenant)}`);
    });
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      showTokenState();
      state.cursors = [null];
      load();
      loadSummary();
      if (live.on) startLive();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
      live.on = false;
      stopLive();
      $("live").checked = false;
      setLiveState("", "");
      $("summary").hidden = true;
      render([]);
      $("empty").hidden = true;
      state.nextCursor = null;
      updatePager();
      setStatus("Token forgotten.", "");
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      clearFieldErrors();
      state.filters = readFilters();
      state.cursors = [null];
      if (live.on) startLive(); // its ready event reloads the list
      else load();
    });
    $("filters").addEventListener("reset", (event) => {
      const wasLive = live.on;
      setTimeout(() => {
        $("live").checked = wasLive; // the switch is not a filter
        clearFieldErrors();
        state.filters = {};
        state.cursors = [null];
        chart.selected = null;
        drawChart();
        if (live.on) startLive();
        else load();
      }, 0);
    });
    $("live").addEventListener("change", () => {
      if ($("live").checked) {
        state.cursors = [null];
        updatePager();
        startLive();
      } else {
        live.on = false;
        stopLive();
        setLiveState("", "");
      }
    });
    $("next").addEventListener("click", () => {
      if (!state.nextCursor) return;
      state.cursors.push(state.nextCursor);
      load();
    });
    $("prev").addEventListener("click", () => {
      if (state.cursors.length <= 1) return;
      state.cursors.pop();
      load();
    });
    $("csv").addEventListener("click", downloadCsv);

    loadConfig().then(() => {
      if (state.tenant) {
        load();
        loadSummary();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
