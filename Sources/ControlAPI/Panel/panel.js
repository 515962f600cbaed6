// LampCell operator panel. Plain JavaScript, no build step, no outside site: served by lampcelld from its binary.
// Live state comes over the API's watch stream (Server-Sent Events). Every text from the cell goes in through
// textContent, never as HTML. Commands carry the session's CSRF token (X-CSRF-Token).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const COMMANDS = ["start", "stop", "hold", "unhold", "suspend", "unsuspend", "reset", "clear", "abort"];
const MODES = ["production", "maintenance", "manual"];
/// How often the alarm count (and the Alarms page) is read again.
const ALARM_POLL_MILLISECONDS = 2000;

const panel = { status: null, cell: null, session: null, lastSerial: null, idleTimer: null };

// --- DOM helpers -------------------------------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
function seconds(value) {
  if (value === undefined || value === null) return "–";
  if (value < 120) return value.toFixed(1) + " s";
  if (value < 7200) return (value / 60).toFixed(1) + " min";
  return (value / 3600).toFixed(1) + " h";
}
function percent(value) { return value === undefined || value === null ? "–" : (value * 100).toFixed(1) + " %"; }
function clock(text) { return text ? new Date(text).toLocaleString() : ""; }

// --- API ---------------------------------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (panel.session && method !== "GET") headers["X-CSRF-Token"] = panel.session.csrfToken;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  let answer = null;
  try { answer = await response.json(); } catch (error) { answer = null; }
  if (response.status === 401 && method !== "GET") setSession(null);
  return { ok: response.ok, status: response.status, body: answer };
}

// --- Session -----------------------------------------------------------------------------------------------------

function setSession(session) {
  panel.session = session;
  $("operator-name").textContent = session ? "operator " + session.operator : "not logged in";
  $("login-button").hidden = !!session;
  $("logout-button").hidden = !session;
  clearTimeout(panel.idleTimer);
  if (session) panel.idleTimer = setTimeout(() => setSession(null), session.idleTimeoutSeconds * 1000);
  renderControls();
}

async function login(event) {
  event.preventDefault();
  const answer = await api("POST", "/v1/session", {
    operator: $("login-operator").value, password: $("login-password").value,
  });
  $("login-password").value = "";
  if (answer.ok) {
    setSession(answer.body);
    $("login-error").textContent = "";
    $("login-dialog").close();
  } else {
    $("login-error").textContent = answer.body ? answer.body.message : "login failed (" + answer.status + ")";
  }
}

async function logout() {
  await api("DELETE", "/v1/session");
  setSession(null);
}

// --- Commands ----------------------------------------------------------------------------------------------------

async function command(path, what, body) {
  const answer = await api(body === undefined && path === "/v1/order" ? "DELETE" : "POST", path, body);
  $("command-result").textContent = answer.ok
    ? what + ": accepted (" + answer.body.state + ")"
    : what + ": " + (answer.body ? answer.body.message : "HTTP " + answer.status);
  if (panel.session) setSession(panel.session);  // the server's idle time restarted
}

function buildControls() {
  const commands = $("command-buttons");
  for (const word of COMMANDS) {
    const button = el("button", { type: "button", id: "command-" + word, "data-command": word }, word[0].toUpperCase() + word.slice(1));
    if (word === "start") button.classList.add("primary");
    if (word === "abort" || word === "stop") button.classList.add("danger");
    button.addEventListener("click", () => command("/v1/commands/" + word, button.textContent));
    commands.append(button);
  }
  const modes = $("mode-buttons");
  for (const word of MODES) {
    const button = el("button", { type: "button", id: "mode-" + word, "data-mode": word }, word[0].toUpperCase() + word.slice(1));
    button.addEventListener("click", () => command("/v1/mode/" + word, "mode " + button.textContent));
    modes.append(button);
  }
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    command("/v1/order", "order " + $("order-input-id").value, {
      id: $("order-input-id").value, variant: $("order-input-variant").value,
      quantity: Number($("order-input-quantity").value),
    });
  });
  $("order-cancel").addEventListener("click", () => command("/v1/order", "cancel order"));
}

/// Buttons are enabled only where PackML accepts the command now, and only with a login.
function renderControls() {
  const status = panel.status;
  const loggedIn = !!panel.session;
  const available = status ? status.packml.commandsAvailable || [] : [];
  const modes = status ? status.packml.modesAvailable || [] : [];
  for (const word of COMMANDS) $("command-" + word).disabled = !loggedIn || !available.includes(word);
  for (const word of MODES) $("mode-" + word).disabled = !loggedIn || !modes.includes(word);
  const idle = status && ["Idle", "Stopped", "Aborted", "Complete"].includes(status.packml.state);
  $("order-assign").disabled = !loggedIn || !idle;
  $("order-cancel").disabled = !loggedIn || !(status && status.order && status.order.active);
}

// --- Overview ----------------------------------------------------------------------------------------------------

// The PackML state model (docs/API.md, PACKML.md) laid out as the standard diagram: wait states square, acting
// states rounded.
const STATES = {
  Unholding: [3, 0], Held: [4, 0], Holding: [5, 0],
  Resetting: [0, 1], Idle: [1, 1], Starting: [2, 1], Execute: [3.5, 1.6], Completing: [5, 1.6], Complete: [6, 1.6],
  Unsuspending: [3, 3.2], Suspended: [4, 3.2], Suspending: [5, 3.2],
  Stopped: [0, 3.2], Stopping: [1, 4.2], Clearing: [0, 5.2], Aborted: [1, 5.2], Aborting: [2, 5.2],
};
const WAIT_STATES = ["Idle", "Held", "Suspended", "Complete", "Stopped", "Aborted"];
const ARROWS = [
  ["Resetting", "Idle"], ["Idle", "Starting"], ["Starting", "Execute"], ["Execute", "Completing"],
  ["Completing", "Complete"], ["Execute", "Holding"], ["Holding", "Held"], ["Held", "Unholding"], ["Unholding", "Execute"],
  ["Execute", "Suspending"], ["Suspending", "Suspended"], ["Suspended", "Unsuspending"], ["Unsuspending", "Execute"],
  ["Stopped", "Resetting"], ["Stopping", "Stopped"], ["Aborting", "Aborted"], ["Aborted", "Clearing"], ["Clearing", "Stopped"],
];
const BOX = { width: 124, height: 48, dx: 136, dy: 74, x0: 72, y0: 36 };

function center(name) {
  const [column, row] = STATES[name];
  return [BOX.x0 + column * BOX.dx, BOX.y0 + row * BOX.dy];
}

function buildStateDiagram() {
  const diagram = $("state-diagram");
  const definitions = svg("defs");
  const marker = svg("marker", { id: "head", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa7b8" }));
  definitions.append(marker);
  diagram.append(definitions);
  for (const [from, to] of ARROWS) {
    const [x1, y1] = center(from);
    const [x2, y2] = center(to);
    const length = Math.hypot(x2 - x1, y2 - y1);
    const shrink = (dx, dy) => Math.min(BOX.width / 2 / Math.max(Math.abs(dx), 1e-9), BOX.height / 2 / Math.max(Math.abs(dy), 1e-9));
    const ux = (x2 - x1) / length, uy = (y2 - y1) / length;
    const s = shrink(ux, uy);
    diagram.append(svg("line", {
      class: "arrow", x1: x1 + ux * s, y1: y1 + uy * s, x2: x2 - ux * (s + 2), y2: y2 - uy * (s + 2), "marker-end": "url(#head)",
    }));
  }
  for (const name of Object.keys(STATES)) {
    const [x, y] = center(name);
    const group = svg("g", { class: "state" + (WAIT_STATES.includes(name) ? "" : " acting"), id: "state-" + name, "data-state": name });
    group.append(svg("rect", { x: x - BOX.width / 2, y: y - BOX.height / 2, width: BOX.width, height: BOX.height, rx: WAIT_STATES.includes(name) ? 4 : 22 }));
    group.append(svg("text", { x, y }, name));
    diagram.append(group);
  }
}

function renderOverview(status) {
  const packml = status.packml;
  for (const group of document.querySelectorAll("#state-diagram .state")) {
    group.classList.toggle("lit", group.dataset.state === packml.state);
  }
  $("state-text").textContent = packml.state;
  $("mode-text").textContent = packml.mode + " mode";
  const reason = packml.stopReason;
  const stopped = !!reason && packml.state !== "Execute";
  $("stop-card").classList.toggle("alarm", stopped && !reason.kind.startsWith("operator"));
  $("stop-reason").textContent = reason
    ? reason.message + (reason.device ? " (" + reason.device + ")" : "") + " — " + reason.action + " in " + reason.inState
    : "No stop.";
  $("stop-remedy").textContent = reason && reason.remedy ? reason.remedy : (packml.state === "Idle" ? "Ready: Start" : "");
  $("material-wait").textContent = packml.materialWait ? "Waiting: " + packml.materialWait : "";

  const order = status.order;
  $("order-id").textContent = order ? order.id + " · " + order.variant : "No order";
  $("order-progress").max = order ? order.quantity : 1;
  $("order-progress").value = order ? order.produced : 0;
  $("order-text").textContent = order
    ? order.produced + " of " + order.quantity + " made, " + order.remaining + " to go" + (order.active ? "" : " (not active)")
    : "";

  const counts = status.counts;
  const rows = [["Processed", counts.processed], ["Good", counts.good], ["Defective", counts.defective],
    ["Scrapped", counts.scrapped], ["Lamps since start", counts.lampsFinished]];
  const table = clear($("counts"));
  for (const [name, value] of rows) table.append(el("tr", {}, el("td", {}, name), el("td", { id: "count-" + name.split(" ")[0].toLowerCase() }, value)));
  table.append(el("tr", {}, el("td", {}, "Cycle time (mean, p95)"),
    el("td", {}, seconds(status.cycleTime.meanSeconds) + ", " + seconds(status.cycleTime.p95Seconds))));

  renderGauges(status.oee);
  const last = status.lastLamp ? status.lastLamp.serial : null;
  if (last !== panel.lastSerial) { panel.lastSerial = last; loadTrend(); }
}

function renderGauges(oee) {
  const gauges = clear($("oee-gauges"));
  const items = [["Availability", oee.availability], ["Performance", oee.performance], ["Quality", oee.quality], ["OEE", oee.oee]];
  items.forEach(([name, value], index) => {
    const cx = 80 + index * 160, cy = 110, r = 62;
    const arc = (fraction) => {
      const angle = Math.PI * (1 - Math.max(0, Math.min(1, fraction)));
      return "M " + (cx - r) + " " + cy + " A " + r + " " + r + " 0 0 1 " + (cx + r * Math.cos(angle)) + " " + (cy - r * Math.sin(angle));
    };
    gauges.append(svg("path", { class: "gauge-back", d: arc(1) }));
    if (value !== undefined && value !== null && value > 0) gauges.append(svg("path", { class: "gauge", d: arc(value) }));
    gauges.append(svg("text", { x: cx, y: cy - 4, "text-anchor": "middle", "font-size": "24", id: "oee-" + name.toLowerCase() }, percent(value)));
    gauges.append(svg("text", { x: cx, y: cy + 38, "text-anchor": "middle", class: "small" }, name));
  });
}

async function loadTrend() {
  const answer = await api("GET", "/v1/cycletimes");
  if (!answer.ok) return;
  const samples = answer.body;
  const chart = clear($("cycle-trend"));
  const left = 60, right = 940, top = 16, bottom = 200;
  chart.append(svg("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
  chart.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }));
  if (samples.length === 0) { chart.append(svg("text", { x: 400, y: 110, class: "small" }, "no lamp has left the cell yet")); return; }
  const ideal = panel.status ? panel.status.oee.idealCycleSeconds : undefined;
  const values = samples.map((sample) => sample.seconds);
  const high = Math.max(...values, ideal || 0) * 1.1, low = Math.min(...values, ideal || Infinity) * 0.9;
  const x = (index) => left + (samples.length === 1 ? 0 : (index / (samples.length - 1)) * (right - left));
  const y = (value) => bottom - ((value - low) / Math.max(high - low, 1e-9)) * (bottom - top);
  for (const tick of [low, (low + high) / 2, high]) chart.append(svg("text", { x: 4, y: y(tick) + 5, class: "small" }, tick.toFixed(1)));
  if (ideal) {
    chart.append(svg("line", { class: "ideal", x1: left, y1: y(ideal), x2: right, y2: y(ideal) }));
    chart.append(svg("text", { x: right - 150, y: y(ideal) - 6, class: "small" }, "ideal " + ideal.toFixed(1) + " s"));
  }
  chart.append(svg("polyline", { class: "trend", points: samples.map((sample, index) => x(index) + "," + y(sample.seconds)).join(" ") }));
  samples.forEach((sample, index) => chart.append(svg("circle", { class: "dot-" + sample.verdict, cx: x(index), cy: y(sample.seconds), r: 4 })));
  chart.append(svg("text", { x: left, y: 230, class: "small" }, samples.length + " lamps, seconds per lamp; green OK, red NG, amber scrapped"));
}

// --- Devices -----------------------------------------------------------------------------------------------------

function renderDevices(status) {
  const container = clear($("devices"));
  for (const device of status.devices) {
    const card = el("div", { class: "card", id: "device-" + device.name });
    card.append(el("h2", {}, device.name + " (" + device.kind + ")"));
    card.append(el("p", {}, "link: " + device.link + (device.consecutiveFailures ? ", " + device.consecutiveFailures + " failures in a row" : "")));
    const fault = el("p", { class: "fault" + (device.faultCodeValue ? " bad" : "") }, "fault " + device.faultCode + " " + device.faultName);
    card.append(fault);
    const chips = el("div", { class: "chips" });
    for (const bit of device.status) chips.append(el("span", { class: "chip " + (["FAULT", "ESTOP", "PROTECTIVE_STOP"].includes(bit) ? "bad" : "on") }, bit));
    card.append(chips);
    if (device.kind === "arm") card.append(jointChart(device));
    else {
      card.append(el("h3", {}, "signals"));
      const signals = el("div", { class: "chips" });
      for (const signal of device.signals || []) signals.append(el("span", { class: "chip on" }, signal));
      if (!(device.signals || []).includes("SAFETY_OK")) signals.append(el("span", { class: "chip bad" }, "SAFETY CHAIN OPEN"));
      card.append(signals);
      card.append(el("h3", {}, "outputs"));
      const coils = el("div", { class: "chips" });
      for (const coil of device.coils || []) coils.append(el("span", { class: "chip on" }, coil));
      card.append(coils);
      card.append(el("p", {}, "lots: housing " + device.housingLot + ", LED module " + device.ledModuleLot + ", lens " + device.lensLot));
    }
    container.append(card);
  }
}

function jointChart(device) {
  const arm = panel.cell ? panel.cell.arms.find((item) => item.name === device.name) : null;
  const chart = svg("svg", { viewBox: "0 0 480 230", class: "joints" });
  (device.positionsRadians || []).forEach((position, joint) => {
    const limits = arm ? arm.jointLimitsRadians[joint] : [-Math.PI, Math.PI];
    const y = 16 + joint * 36, left = 40, width = 300;
    const x = (value) => left + ((value - limits[0]) / (limits[1] - limits[0])) * width;
    chart.append(svg("text", { x: 4, y: y + 14, class: "small" }, "J" + (joint + 1)));
    chart.append(svg("rect", { x: left, y, width, height: 20, class: "window" }));
    const near = Math.min(position - limits[0], limits[1] - position) < 0.05 * (limits[1] - limits[0]);
    chart.append(svg("line", { class: "marker" + (near ? " bad" : ""), x1: x(position), y1: y - 4, x2: x(position), y2: y + 24 }));
    chart.append(svg("text", { x: left + width + 8, y: y + 14, class: "small" }, position.toFixed(3) + " rad"));
  });
  return chart;
}

// --- Alarms ------------------------------------------------------------------------------------------------------

async function loadAlarms() {
  const answer = await api("GET", "/v1/alarms");
  if (!answer.ok) return;
  const alarms = answer.body;
  const active = clear($("alarms-active"));
  for (const row of alarms.active) {
    active.append(el("tr", { class: "active" }, el("td", {}, clock(row.startedAt)), el("td", {}, seconds(row.durationSeconds)),
      el("td", {}, row.message), el("td", {}, row.source), el("td", {}, row.detail)));
  }
  if (alarms.active.length === 0) active.append(el("tr", {}, el("td", { colspan: "5" }, "No active alarm.")));
  $("alarm-count").hidden = alarms.active.length === 0;
  $("alarm-count").textContent = alarms.active.length;
  const history = clear($("alarms-history"));
  for (const row of alarms.history) {
    history.append(el("tr", { class: row.endedAt ? "" : "active" }, el("td", {}, clock(row.startedAt)),
      el("td", {}, row.kind === "command" || row.kind === "login" ? "" : (row.endedAt ? clock(row.endedAt) : "active")),
      el("td", {}, row.kind === "command" || row.kind === "login" ? "" : seconds(row.durationSeconds)),
      el("td", {}, row.kind), el("td", {}, row.message), el("td", {}, row.kind === "command" ? row.detail : (row.actor || row.detail))));
  }
  renderPareto(alarms.pareto);
  $("report-link").href = "/v1/report?from=" + encodeURIComponent(alarms.from) + "&to=" + encodeURIComponent(new Date().toISOString());
}

function renderPareto(rows) {
  const chart = clear($("pareto"));
  if (rows.length === 0) { chart.append(svg("text", { x: 20, y: 40, class: "small" }, "No stop in this window.")); return; }
  const left = 60, bottom = 180, height = 160, width = 880;
  const slot = width / rows.length;
  const longest = Math.max(...rows.map((row) => row.downtimeSeconds), 1e-9);
  let points = [];
  rows.forEach((row, index) => {
    const barHeight = (row.downtimeSeconds / longest) * height;
    const x = left + index * slot;
    chart.append(svg("rect", { class: "bar bad", x: x + 6, y: bottom - barHeight, width: slot - 12, height: barHeight }));
    chart.append(svg("text", { x: x + 8, y: bottom + 20, class: "small" }, row.code + " ×" + row.stops));
    chart.append(svg("text", { x: x + 8, y: bottom - barHeight - 6, class: "small" }, seconds(row.downtimeSeconds)));
    points.push((x + slot / 2) + "," + (bottom - row.cumulativeShare * height));
  });
  chart.append(svg("polyline", { class: "cumulative", points: points.join(" ") }));
  chart.append(svg("text", { x: left, y: 250, class: "small" }, "bars: downtime per stop reason; line: cumulative share"));
}

// --- Lamps -------------------------------------------------------------------------------------------------------

async function searchLamps(event) {
  if (event) event.preventDefault();
  const query = $("lamp-query").value.trim();
  const rows = clear($("lamp-rows"));
  $("lamp-detail").hidden = true;
  let lamps = [];
  if (/^[0-9]+$/.test(query)) {
    const answer = await api("GET", "/v1/lamps?lot=" + encodeURIComponent(query) + "&limit=200");
    if (!answer.ok) { $("lamp-search-result").textContent = answer.body ? answer.body.message : "search failed"; return; }
    lamps = answer.body;
  } else if (query.length > 0) {
    const answer = await api("GET", "/v1/lamps/" + encodeURIComponent(query));
    if (answer.ok) lamps = [answer.body];
    else if (answer.status !== 404) { $("lamp-search-result").textContent = answer.body ? answer.body.message : "search failed"; return; }
  }
  $("lamp-search-result").textContent = lamps.length + " lamp(s)";
  for (const lamp of lamps) {
    const row = el("tr", { class: "clickable" }, el("td", {}, lamp.serial), el("td", {}, lamp.verdict), el("td", {}, lamp.reasons.join(", ")),
      el("td", {}, lamp.orderID), el("td", {}, clock(lamp.endedAt)), el("td", {}, lamp.cycleTimeSeconds.toFixed(1)));
    row.addEventListener("click", () => showLamp(lamp));
    rows.append(row);
  }
  if (lamps.length === 1) showLamp(lamps[0]);
}

function showLamp(lamp) {
  $("lamp-detail").hidden = false;
  $("lamp-detail-title").textContent = lamp.serial + " · " + lamp.verdict;
  $("lamp-detail-text").textContent = "recipe " + lamp.recipe + ", order " + lamp.orderID + ", lots " + lamp.lots.housing + " / "
    + lamp.lots.ledModule + " / " + lamp.lots.lens + (lamp.scrapReason ? ", scrapped: " + lamp.scrapReason : "");
  // The window each measurement was judged against, as the ledger recorded it with the lamp; the recipe's
  // current window only for a lamp recorded without one.
  const recipe = panel.cell ? panel.cell.recipes.find((item) => item.id === lamp.recipe) : null;
  const chart = clear($("lamp-measurements"));
  lamp.measurements.forEach((measurement, index) => {
    const recorded = measurement.minimum !== undefined || measurement.maximum !== undefined;
    const current = recipe ? recipe.windows.find((item) => item.name === measurement.name) : null;
    const window = recorded
      ? { // a one-sided window is drawn from 0, or to half again its bound
          minimum: measurement.minimum ?? Math.min(0, measurement.value),
          maximum: measurement.maximum ?? Math.max(measurement.value, measurement.minimum * 1.5) }
      : current;
    const y = 10 + index * 38, left = 230, width = 480;
    chart.append(svg("text", { x: 4, y: y + 16, class: "small" }, measurement.name));
    if (window) {
      const span = window.maximum - window.minimum;
      const low = window.minimum - span * 0.5, high = window.maximum + span * 0.5;
      const x = (value) => left + Math.max(0, Math.min(1, (value - low) / (high - low))) * width;
      chart.append(svg("rect", { class: "window", x: x(window.minimum), y, width: x(window.maximum) - x(window.minimum), height: 22 }));
      chart.append(svg("line", { class: "marker" + (measurement.inWindow ? "" : " bad"), x1: x(measurement.value), y1: y - 4, x2: x(measurement.value), y2: y + 26 }));
      chart.append(svg("text", { x: left + width + 10, y: y + 16, class: "small" },
        measurement.value + " " + measurement.unit + " in " + window.minimum + "…" + window.maximum + (measurement.inWindow ? "" : "  OUT")));
    } else {
      chart.append(svg("text", { x: left, y: y + 16, class: "small" }, measurement.value + " " + measurement.unit));
    }
  });
}

// --- Pages, watch, start -----------------------------------------------------------------------------------------

/// Pages by their hash: #overview, #devices, #alarms, #lamps; #lamps/QUERY searches a serial or lot at once (a
/// link to a lamp).
function showPage() {
  const pages = ["overview", "devices", "alarms", "lamps"];
  let [page, query] = (location.hash || "#overview").slice(1).split("/");
  if (!pages.includes(page)) page = "overview";
  for (const name of pages) {
    $("page-" + name).hidden = name !== page;
    $("nav-" + name).classList.toggle("current", name === page);
  }
  if (page === "alarms") loadAlarms();
  if (page === "devices" && panel.status) renderDevices(panel.status);
  if (page === "lamps" && query) { $("lamp-query").value = decodeURIComponent(query); searchLamps(); }
}

function render(status) {
  panel.status = status;
  $("cell-id").textContent = status.cellID;
  renderOverview(status);
  if (!$("page-devices").hidden) renderDevices(status);
  renderControls();
}

function watch() {
  const source = new EventSource("/v1/watch");
  source.addEventListener("status", (event) => {
    $("live").textContent = "live";
    $("live").className = "live on";
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    $("live").textContent = "connection lost";
    $("live").className = "live off";
  });
}

async function start() {
  buildStateDiagram();
  buildControls();
  $("login-button").addEventListener("click", () => $("login-dialog").showModal());
  $("login-cancel").addEventListener("click", () => $("login-dialog").close());
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", logout);
  $("lamp-search").addEventListener("submit", searchLamps);
  window.addEventListener("hashchange", showPage);
  const cell = await api("GET", "/v1/cell");
  if (cell.ok) {
    panel.cell = cell.body;
    const variants = [...new Set(cell.body.recipes.map((recipe) => recipe.variant))];
    for (const variant of variants) $("order-input-variant").append(el("option", { value: variant }, variant));
  }
  const session = await api("GET", "/v1/session");
  setSession(session.ok ? session.body : null);
  showPage();
  setInterval(() => { if (!$("page-alarms").hidden) loadAlarms(); else refreshAlarmCount(); }, ALARM_POLL_MILLISECONDS);
  watch();
}

async function refreshAlarmCount() {
  const answer = await api("GET", "/v1/alarms");
  if (!answer.ok) return;
  $("alarm-count").hidden = answer.body.active.length === 0;
  $("alarm-count").textContent = answer.body.active.length;
}

start();
