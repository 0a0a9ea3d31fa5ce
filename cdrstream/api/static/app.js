// The CDR table: plain JavaScript, no build step. All data comes from the JSON API with
// "Authorization: Bearer <token>"; the token lives in sessionStorage only. Data is put in
// the page with textContent only (never innerHTML), so a number cannot inject markup.
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

  function render(records) {
    const body = $("rows");
    body.replaceChildren();
    for (const r of records) {
      const tr = document.createElement("tr");
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
      body.appendChild(tr);
    }
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
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
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
      load();
    });
    $("filters").addEventListener("reset", () => {
      setTimeout(() => {
        clearFieldErrors();
        state.filters = {};
        state.cursors = [null];
        load();
      }, 0);
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
      if (state.tenant) load();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
