// Portcullis dashboard: plain JavaScript, no framework, nothing loaded from
// elsewhere. Every string that comes from the API is put in the page with
// textContent or setAttribute, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "portcullis.admin.token";
  const REFRESH_MS = 2000;
  const CHART_WINDOW_MS = 60000;
  const MIN_RATE_INTERVAL_MS = 500;
  const STATES = ["up", "down", "ejected", "draining", "disabled"];

  const byId = (id) => document.querySelector('[data-testid="' + id + '"]');

  const { el, svg, setText, setAttr, sync, safeUrl, link, fmtInt, fmtRate, fmtPct, fmtSeconds, fmtP99, fmtAge, fmtClock } = window.PortcullisDom;

  // ---- messages ---------------------------------------------------------------

  const messages = byId("messages");
  const messageNodes = new Map();
  let messageSeq = 0;

  // `key` replaces an earlier message with the same key (e.g. a failing
  // refresh); `parts` are strings or nodes; `ttl` hides it after that long.
  function showMessage(key, level, parts, ttl) {
    key = key || "m" + ++messageSeq;
    clearMessage(key);
    const close = el("button", { type: "button", className: "close", "aria-label": "dismiss", title: "dismiss", text: "×" });
    const body = el("span", { className: "text" });
    for (const part of parts) body.append(typeof part === "string" ? document.createTextNode(part) : part);
    const node = el("div", { className: "message " + level, testid: "message", "data-level": level }, body, close);
    close.addEventListener("click", () => clearMessage(key));
    messages.append(node);
    messageNodes.set(key, node);
    if (ttl) setTimeout(() => { if (messageNodes.get(key) === node) clearMessage(key); }, ttl);
    return key;
  }

  function clearMessage(key) {
    const node = messageNodes.get(key);
    if (node) {
      node.remove();
      messageNodes.delete(key);
    }
  }

  function clearAllMessages() {
    for (const key of Array.from(messageNodes.keys())) clearMessage(key);
  }

  // ---- API -----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, path) {
      super((body && typeof body.error === "string" ? body.error : "HTTP " + status) + "");
      this.status = status;
      this.body = body || {};
      this.path = path;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  async function api(path, options) {
    const opts = Object.assign({ method: "GET", cache: "no-store", credentials: "omit" }, options || {});
    const headers = Object.assign({ accept: "application/json" }, opts.headers || {});
    const t = token();
    if (t && !opts.noAuth) headers.authorization = "Bearer " + t;
    opts.headers = headers;
    delete opts.noAuth;
    let response;
    try {
      response = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { error: "cannot reach this member (" + (e && e.message ? e.message : e) + ")" }, path);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = { error: "HTTP " + response.status + ": " + text.slice(0, 200) };
    }
    if (!response.ok) throw new ApiError(response.status, body, path);
    return body;
  }

  function errorParts(prefix, err) {
    const parts = [prefix + ": " + err.message];
    if (err.status) parts[0] += " (" + err.status + ")";
    const managers = err.body && Array.isArray(err.body.managers) ? err.body.managers : null;
    if (err.status === 403) {
      parts.push(". Only a manager can change it; use the dashboard of a manager");
      if (managers && managers.length) {
        parts.push(": ");
        managers.forEach((m, i) => {
          if (i) parts.push(", ");
          parts.push(link(String(m)));
        });
      } else {
        parts.push(" (none is alive now)");
      }
    }
    return parts;
  }

  // ---- sign in / out --------------------------------------------------------------

  const login = byId("login");
  const consoleView = byId("console");
  const signOutButton = byId("sign-out");
  const loginMessage = byId("login-message");
  const tokenInput = byId("token-input");
  let epoch = 0; // bumped on sign-in/out, so late answers are dropped

  function showLogin(message) {
    epoch++;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* storage unavailable */
    }
    resetData();
    consoleView.hidden = true;
    signOutButton.hidden = true;
    login.hidden = false;
    loginMessage.hidden = !message;
    setText(loginMessage, message || "");
    tokenInput.value = "";
    tokenInput.focus();
  }

  function showConsole() {
    login.hidden = true;
    consoleView.hidden = false;
    signOutButton.hidden = false;
  }

  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = tokenInput.value.trim();
    if (!value) return;
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch (e) {
      setText(loginMessage, "This browser refuses sessionStorage; the dashboard cannot keep the token.");
      loginMessage.hidden = false;
      return;
    }
    tokenInput.value = "";
    epoch++;
    clearAllMessages();
    showConsole();
    refreshSoon();
  });

  signOutButton.addEventListener("click", () => {
    clearAllMessages();
    showLogin("");
  });

  // ---- state derived from successive reads --------------------------------------

  const previous = new Map(); // "topology/service" -> last counters
  const derived = new Map(); // "topology/service" -> {rate, errorPct, p99}
  const history = new Map(); // "topology/service" -> [{at, rate}]

  function resetData() {
    previous.clear();
    derived.clear();
    history.clear();
    byId("members").replaceChildren();
    memberReads.clear();
    memberRateCache.clear();
    byId("topologies").replaceChildren();
    setText(byId("member-count"), "");
    setText(byId("cluster-name"), "–");
  }

  // The upper bound of the bucket where the cumulative count reaches 99 %.
  function p99(bounds, counts) {
    let total = 0;
    for (const c of counts) total += c;
    if (total <= 0) return null;
    const target = Math.ceil(total * 0.99);
    let cumulative = 0;
    for (let i = 0; i < counts.length; i++) {
      cumulative += counts[i];
      if (cumulative >= target) {
        if (i < bounds.length) return { bound: bounds[i], above: false };
        return { bound: bounds[bounds.length - 1], above: true };
      }
    }
    return null;
  }

  function derive(key, service, at) {
    const latency = service.latency || {};
    const auth = service.auth || {};
    const now = {
      at: at,
      requests: Number(service.requests) || 0,
      errors: Number(service.errors) || 0,
      refusals: REFUSALS.map((r) => Number(auth[r.field]) || 0),
      bounds: Array.isArray(latency.bounds) ? latency.bounds.map(Number) : [],
      counts: Array.isArray(latency.counts) ? latency.counts.map(Number) : [],
    };
    const before = previous.get(key);
    if (before && now.at - before.at < MIN_RATE_INTERVAL_MS && now.requests >= before.requests) {
      // Too close to the last read for a rate: keep the older baseline.
      return derived.get(key) || null;
    }
    previous.set(key, now);
    if (!before || now.requests < before.requests || now.at <= before.at) {
      // First read, or the member restarted and its counters began again.
      derived.delete(key);
      return null;
    }
    const seconds = (now.at - before.at) / 1000;
    const requests = now.requests - before.requests;
    const errors = Math.max(0, now.errors - before.errors);
    let latencyDelta = null;
    if (before.counts.length === now.counts.length && now.counts.length > 0) {
      latencyDelta = now.counts.map((c, i) => Math.max(0, c - before.counts[i]));
    }
    const result = {
      rate: requests / seconds,
      refusalRates: now.refusals.map((n, i) => Math.max(0, n - (before.refusals[i] || 0)) / seconds),
      errorPct: requests > 0 ? (100 * errors) / requests : null,
      p99: latencyDelta ? p99(now.bounds, latencyDelta) : null,
    };
    derived.set(key, result);
    const points = history.get(key) || [];
    points.push({ at: now.at, rate: result.rate });
    while (points.length && points[0].at < now.at - CHART_WINDOW_MS - REFRESH_MS) points.shift();
    history.set(key, points);
    return result;
  }

  // ---- rendering: header -------------------------------------------------------

  function renderHealth(health) {
    const status = byId("health-status");
    const store = byId("store-status");
    const s = health && typeof health.status === "string" ? health.status : "unknown";
    const st = health && typeof health.store === "string" ? health.store : "unknown";
    setText(status, "status " + s);
    setAttr(status, "data-value", s);
    setText(store, "store " + st);
    setAttr(store, "data-value", st);
    if (health) {
      setText(byId("self-member"), health.member !== undefined ? health.member : "–");
      setText(byId("generation"), health.generation !== undefined ? health.generation : "–");
      document.title = "Portcullis · " + (health.member !== undefined ? health.member + " · " : "") + s;
    } else {
      document.title = "Portcullis · unreachable";
    }
  }

  // ---- rendering: members ----------------------------------------------------------

  function createMemberRow() {
    const row = el("tr", { testid: "member-row" });
    row.cells_ = {
      id: el("td", { className: "mono strong", testid: "member-id" }),
      role: el("td", { testid: "member-role" }),
      state: el("span", { className: "badge", testid: "member-state" }),
      generation: el("td", { className: "num", testid: "member-generation" }),
      config: el("td", { className: "mono", testid: "member-config" }),
      inFlight: el("td", { className: "num", testid: "member-in-flight" }),
      rate: el("td", { className: "num", testid: "member-rate" }),
      errors: el("td", { className: "num", testid: "member-errors" }),
      lastSeen: el("td", { className: "num", testid: "member-last-seen" }),
      publicUrl: el("td", { className: "mono url" }),
      adminUrl: el("td", { className: "mono url" }),
      version: el("td", { className: "mono muted" }),
    };
    const c = row.cells_;
    const actions = el("td", { className: "actions" });
    c.buttons = {};
    for (const [kind, label, wanted, title] of [
      ["drain", "Drain", "draining", "balancers send it no new clients; affinity clients stay"],
      ["enable", "Enable", "enabled", "balancers send it new clients again"],
    ]) {
      const button = el("button", { type: "button", className: "act " + kind, testid: "member-" + kind, title: title, text: label });
      button.addEventListener("click", () => setMemberState(row, wanted));
      c.buttons[wanted] = button;
      actions.append(button);
    }
    row.append(c.id, c.role, el("td", null, c.state), c.generation, c.config, c.inFlight, c.rate, c.errors, c.lastSeen, c.publicUrl, c.adminUrl, c.version, actions);
    return row;
  }

  // A figure shown in `cell`, its exact value kept in data-value (the
  // cluster's totals are sums of these, not of rounded text).
  function setFigure(cell, value, format) {
    setText(cell, format(value));
    setAttr(cell, "data-value", typeof value === "number" && isFinite(value) ? String(value) : "");
  }

  function updateMemberRow(row, item) {
    const m = item.member;
    const c = row.cells_;
    setAttr(row, "data-member-id", m.id);
    setAttr(row, "data-alive", m.alive ? "true" : "false");
    row.classList.toggle("gone", !m.alive);
    row.classList.toggle("self", item.self);
    c.id.replaceChildren(document.createTextNode(String(m.id)));
    if (item.self) c.id.append(el("span", { className: "tag", text: "this member" }));
    setText(c.role, m.role);
    // Operators' state (null when the store was not read) shows on live members.
    const shown = !m.alive ? "gone" : m.state === "draining" ? "draining" : "alive";
    setText(c.state, shown);
    setAttr(c.state, "data-state", shown);
    setAttr(row, "data-member-state", m.state || "");
    row.__id = String(m.id);
    const busy = !!row.__busy;
    c.buttons.draining.disabled = busy || m.state !== "enabled";
    c.buttons.enabled.disabled = busy || m.state !== "draining";
    setText(c.generation, fmtInt(m.generation));
    // The generation counts changes applied, so it differs between members
    // with different histories; the config hash says whether they serve the
    // same thing.
    const drift = m.config_drift === true;
    c.config.replaceChildren(document.createTextNode(m.config_hash || "–"));
    if (drift) c.config.append(el("span", { className: "tag drift", testid: "member-drift", text: "drift" }));
    c.config.classList.toggle("lag", drift);
    c.config.title = drift ? "serves a configuration that differs from the other members' (a refused topology?)" : "";
    setFigure(c.inFlight, m.alive ? Number(m.in_flight) : null, fmtInt);
    const rates = memberRates(m);
    setFigure(c.rate, rates ? rates.rate : null, fmtRate);
    setFigure(c.errors, rates ? rates.errors : null, fmtRate);
    setText(c.lastSeen, fmtAge(m.last_seen_ms));
    const pub = m.public_url || "";
    if (c.publicUrl.__v !== pub) {
      c.publicUrl.replaceChildren(document.createTextNode(pub || "–"));
      c.publicUrl.__v = pub;
    }
    const adm = m.admin_url || "";
    if (c.adminUrl.__v !== adm) {
      c.adminUrl.replaceChildren(adm ? link(adm) : document.createTextNode("–"));
      c.adminUrl.__v = adm;
    }
    setText(c.version, m.version || "");
  }

  // Member id -> {at, requests, errors} of its last heartbeat seen, and the
  // rates between its last two heartbeats (the record's own clock, so a
  // refresh that sees the same heartbeat twice changes nothing).
  const memberReads = new Map();
  const memberRateCache = new Map();

  function memberRates(m) {
    if (!m.alive) return null;
    const id = String(m.id);
    const now = { at: Number(m.updated_at_ms) || 0, requests: Number(m.requests) || 0, errors: Number(m.errors) || 0 };
    const before = memberReads.get(id);
    if (before && before.at === now.at) return memberRateCache.get(id) || null;
    memberReads.set(id, now);
    if (!before || now.at < before.at || now.requests < before.requests) {
      // First read, or the member restarted and its counters began again.
      memberRateCache.delete(id);
      return null;
    }
    const seconds = (now.at - before.at) / 1000;
    const rates = {
      rate: (now.requests - before.requests) / seconds,
      errors: Math.max(0, now.errors - before.errors) / seconds,
    };
    memberRateCache.set(id, rates);
    return rates;
  }

  // Sums the figures the live members' rows show.
  function renderTotals() {
    const rows = Array.from(byId("members").querySelectorAll('[data-testid=member-row][data-alive="true"]'));
    const sum = (testid) => {
      let total = null;
      for (const row of rows) {
        const v = row.querySelector('[data-testid="' + testid + '"]').getAttribute("data-value");
        if (v !== null && v !== "") total = (total || 0) + Number(v);
      }
      return total;
    };
    setFigure(byId("total-rate"), sum("member-rate"), fmtRate);
    setFigure(byId("total-errors"), sum("member-errors"), fmtRate);
    setFigure(byId("total-in-flight"), sum("member-in-flight"), fmtInt);
  }

  async function setMemberState(row, wanted) {
    const id = row.__id;
    const myEpoch = epoch;
    row.__busy = true;
    for (const b of Object.values(row.cells_.buttons)) b.disabled = true;
    try {
      const reply = await api("/api/v1/cluster/members/" + encodeURIComponent(id) + "/state", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ state: wanted }),
      });
      if (myEpoch !== epoch) return;
      showMessage(null, "ok", ["member " + id + ": " + (reply && reply.state ? reply.state : wanted)], 6000);
    } catch (err) {
      if (myEpoch !== epoch) return;
      if (err.status === 401) {
        showLogin("The admin token was refused (401). Enter it again.");
        return;
      }
      showMessage(null, "error", errorParts("Could not set member " + id + " to " + wanted, err));
    } finally {
      row.__busy = false;
    }
    refreshSoon();
  }

  function renderCluster(cluster) {
    setText(byId("cluster-name"), cluster.cluster || "–");
    const members = Array.isArray(cluster.members) ? cluster.members.slice() : [];
    members.sort((a, b) => (a.alive === b.alive ? String(a.id).localeCompare(String(b.id)) : a.alive ? -1 : 1));
    const items = members.map((m) => ({ member: m, self: m.id === cluster.self }));
    sync(byId("members"), items, (i) => String(i.member.id), createMemberRow, updateMemberRow);
    renderTotals();
    const alive = members.filter((m) => m.alive).length;
    setText(byId("member-count"), alive + " alive" + (members.length > alive ? ", " + (members.length - alive) + " gone" : ""));
  }

  // ---- rendering: services -------------------------------------------------------------

  function createTopology(t) {
    const node = el("section", { className: "topology", testid: "topology" });
    node.title_ = el("span", { className: "name mono" });
    node.services_ = el("div", { className: "services" });
    node.append(el("h3", null, el("span", { className: "muted", text: "topology " }), node.title_), node.services_);
    return node;
  }

  function updateTopology(node, t) {
    setAttr(node, "data-topology", t.name);
    setText(node.title_, t.name);
    const services = Array.isArray(t.services) ? t.services : [];
    sync(node.services_, services, (s) => String(s.name),
      (s) => createService(t.name, s),
      (n, s) => updateService(n, t.name, s));
  }

  // The refusals of the gateway policies (docs/policies.md), as rates:
  // the API's count field, the label, the test id.
  const REFUSALS = [
    { field: "unauthorized", label: "401/s", testid: "service-401" },
    { field: "forbidden", label: "403/s", testid: "service-403" },
    { field: "rate_limited", label: "429/s", testid: "service-429" },
  ];

  function metric(label, testid) {
    const value = el("span", { className: "value", testid: testid });
    const node = el("div", { className: "metric" }, value, el("span", { className: "label", text: label }));
    node.value_ = value;
    return node;
  }

  function createService(topology, s) {
    const card = el("article", { className: "service", testid: "service" });
    const name = el("span", { className: "service-name mono" });
    const lb = el("span", { className: "tag" });
    const health = el("span", { className: "badge", testid: "service-health" });
    const rate = metric("req/s", "service-rate");
    const errors = metric("5xx", "service-errors");
    const latency = metric("p99", "service-p99");
    const failovers = metric("failovers", "service-failovers");
    const requests = metric("requests", "service-requests");
    const authTag = el("span", { className: "tag", testid: "service-auth" });
    const refusals = REFUSALS.map((r) => metric(r.label, r.testid));
    const policies = el("div", { className: "metrics policies", testid: "service-policies" }, ...refusals);
    const chartBox = el("div", { className: "chart" });
    const chart = svg("svg", { viewBox: "0 0 200 40", width: 200, height: 40, preserveAspectRatio: "none", "data-testid": "service-chart", role: "img" });
    const chartTitle = svg("title");
    const area = svg("path", { class: "area", d: "" });
    const line = svg("polyline", { class: "line", points: "" });
    const dot = svg("circle", { class: "dot", r: 2, cx: -10, cy: -10 });
    chart.append(chartTitle, svg("line", { class: "base", x1: 0, y1: 39.5, x2: 200, y2: 39.5 }), area, line, dot);
    const chartMax = el("span", { className: "chart-max muted" });
    chartBox.append(chart, el("div", { className: "chart-legend" }, el("span", { className: "muted", text: "req/s, 60 s" }), chartMax));

    const head = el("header", { className: "service-head" },
      el("div", { className: "ident" }, name, lb, authTag, health),
      el("div", { className: "metrics" }, rate, errors, latency, failovers, requests),
      policies,
      chartBox);

    const tbody = el("tbody", { testid: "backends" });
    const table = el("table", { className: "grid backends" },
      el("thead", null, el("tr", null,
        el("th", { text: "State" }), el("th", { text: "Backend" }), el("th", { text: "URL" }),
        el("th", { className: "num", text: "In-flight" }), el("th", { className: "num", text: "Requests" }),
        el("th", { className: "num", text: "Failures" }), el("th", { className: "actions", text: "Admin state" }))),
      tbody);
    card.append(head, table);
    card.parts_ = { name, lb, authTag, policies, refusals, health, rate, errors, latency, failovers, requests, chart, chartTitle, area, line, dot, chartMax, tbody };
    return card;
  }

  function updateService(card, topology, s) {
    const p = card.parts_;
    const key = topology + "/" + s.name;
    setAttr(card, "data-service", s.name);
    setAttr(card, "data-topology", topology);
    setText(p.name, s.name);
    setAttr(p.name, "title", s.name);
    setText(p.lb, s.load_balancing || "");
    p.lb.hidden = !s.load_balancing;

    const backends = Array.isArray(s.backends) ? s.backends : [];
    const up = backends.filter((b) => b.state === "up").length;
    let level = "ok";
    let word = "all up";
    if (backends.length === 0) {
      level = "bad";
      word = "no backend";
    } else if (up === 0) {
      level = "bad";
      word = "no backend up";
    } else if (up < backends.length) {
      level = "warn";
      word = up + " of " + backends.length + " up";
    }
    setText(p.health, word);
    setAttr(p.health, "data-level", level);

    const d = derived.get(key);
    setText(p.rate.value_, d ? fmtRate(d.rate) : "–");
    setText(p.errors.value_, d ? fmtPct(d.errorPct) : "–");
    p.errors.classList.toggle("alert", !!(d && d.errorPct && d.errorPct >= 1));
    setText(p.latency.value_, d ? fmtP99(d.p99) : "–");
    setText(p.failovers.value_, fmtInt(Number(s.failovers)));
    setText(p.requests.value_, fmtInt(Number(s.requests)));
    updatePolicies(p, s.auth || {}, d);
    drawChart(p, history.get(key) || []);

    sync(p.tbody, backends, (b) => String(b.id),
      (b) => createBackendRow(topology, s.name, b),
      (row, b) => updateBackendRow(row, b));
  }

  // The service's auth methods ("auth: jwt, basic"; "cidrs only" for an
  // authorize table alone) and its 401/403/429 rates; hidden for a service
  // with no policy that has refused nothing.
  function updatePolicies(p, auth, d) {
    const methods = Array.isArray(auth.methods) ? auth.methods : [];
    const counted = REFUSALS.some((r) => Number(auth[r.field]) > 0);
    const shown = methods.length > 0 || !!auth.authorize || counted;
    let word = methods.length > 0 ? "auth: " + methods.join(", ") : "no auth";
    if (auth.authorize) word += methods.length > 0 ? " + authorize" : ", authorize";
    setText(p.authTag, word);
    p.authTag.hidden = !shown;
    p.policies.hidden = !shown;
    REFUSALS.forEach((r, i) => {
      setFigure(p.refusals[i].value_, d && d.refusalRates ? d.refusalRates[i] : null, fmtRate);
      setAttr(p.refusals[i], "title", fmtInt(Number(auth[r.field]) || 0) + " so far");
    });
  }

  function drawChart(p, points) {
    const W = 200;
    const H = 40;
    if (points.length === 0) {
      setAttr(p.line, "points", "");
      setAttr(p.area, "d", "");
      setAttr(p.dot, "cx", -10);
      setText(p.chartMax, "");
      setText(p.chartTitle, "request rate: waiting for a second read");
      return;
    }
    const end = points[points.length - 1].at;
    const start = end - CHART_WINDOW_MS;
    let max = 0;
    for (const pt of points) max = Math.max(max, pt.rate);
    const top = max > 0 ? max * 1.15 : 1;
    const xy = points
      .filter((pt) => pt.at >= start - REFRESH_MS)
      .map((pt) => [Math.max(0, ((pt.at - start) / CHART_WINDOW_MS) * W), H - 1 - (pt.rate / top) * (H - 4)]);
    const coords = xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1));
    setAttr(p.line, "points", coords.join(" "));
    if (xy.length > 1) {
      setAttr(p.area, "d", "M" + xy[0][0].toFixed(1) + "," + H + " L" + coords.join(" L") + " L" + xy[xy.length - 1][0].toFixed(1) + "," + H + " Z");
    } else {
      setAttr(p.area, "d", "");
    }
    const last = xy[xy.length - 1];
    setAttr(p.dot, "cx", last[0].toFixed(1));
    setAttr(p.dot, "cy", last[1].toFixed(1));
    setText(p.chartMax, "max " + fmtRate(max));
    setText(p.chartTitle, "request rate over the last 60 s; now " + fmtRate(points[points.length - 1].rate) + " req/s, max " + fmtRate(max) + " req/s");
  }

  function createBackendRow(topology, service, b) {
    const row = el("tr", { testid: "backend-row" });
    const state = el("span", { className: "badge state", testid: "backend-state" });
    const id = el("td", { className: "mono strong", testid: "backend-id" });
    const url = el("td", { className: "mono url", testid: "backend-url" });
    const inFlight = el("td", { className: "num", testid: "backend-in-flight" });
    const requests = el("td", { className: "num", testid: "backend-requests" });
    const failures = el("td", { className: "num", testid: "backend-failures" });
    const buttons = {};
    const actions = el("td", { className: "actions" });
    for (const [testid, label, wanted, title] of [
      ["drain", "Drain", "draining", "take no new clients; sticky clients stay"],
      ["disable", "Disable", "disabled", "take no traffic at all"],
      ["enable", "Enable", "enabled", "back to normal"],
    ]) {
      const button = el("button", { type: "button", className: "act " + testid, testid: testid, title: title, text: label });
      button.addEventListener("click", () => setBackendState(row, topology, service, wanted));
      buttons[testid] = button;
      actions.append(button);
    }
    row.append(el("td", null, state), id, url, inFlight, requests, failures, actions);
    row.parts_ = { state, id, url, inFlight, requests, failures, buttons };
    return row;
  }

  function updateBackendRow(row, b) {
    const p = row.parts_;
    const state = STATES.includes(b.state) ? b.state : String(b.state || "unknown");
    setAttr(row, "data-backend-id", b.id);
    setAttr(row, "data-state", state);
    row.__id = String(b.id);
    row.__url = String(b.url || "");
    setText(p.state, state);
    setAttr(p.state, "data-state", state);
    setText(p.id, b.id);
    if (p.url.__v !== b.url + "|" + !!b.backup) {
      p.url.replaceChildren(document.createTextNode(String(b.url || "")));
      if (b.backup) p.url.append(el("span", { className: "tag", text: "backup" }));
      p.url.__v = b.url + "|" + !!b.backup;
    }
    setText(p.inFlight, fmtInt(Number(b.in_flight)));
    setText(p.requests, fmtInt(Number(b.requests)));
    setText(p.failures, fmtInt(Number(b.failures)));
    p.failures.classList.toggle("alert", Number(b.failures) > 0);
    const busy = !!row.__busy;
    p.buttons.drain.disabled = busy || state === "draining";
    p.buttons.disable.disabled = busy || state === "disabled";
    p.buttons.enable.disabled = busy || !(state === "draining" || state === "disabled");
  }

  async function setBackendState(row, topology, service, wanted) {
    const id = row.__id;
    const path = "/api/v1/topologies/" + encodeURIComponent(topology) + "/services/" + encodeURIComponent(service) +
      "/backends/" + encodeURIComponent(id) + "/state";
    const myEpoch = epoch;
    row.__busy = true;
    for (const b of Object.values(row.parts_.buttons)) b.disabled = true;
    try {
      const reply = await api(path, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ state: wanted }),
      });
      if (myEpoch !== epoch) return;
      const shown = reply && reply.state ? reply.state : wanted;
      showMessage(null, "ok", [topology + "/" + service + " backend " + id + " (" + row.__url + "): " + shown], 6000);
    } catch (err) {
      if (myEpoch !== epoch) return;
      if (err.status === 401) {
        showLogin("The admin token was refused (401). Enter it again.");
        return;
      }
      showMessage(null, "error", errorParts("Could not set " + topology + "/" + service + " backend " + id + " to " + wanted, err));
    } finally {
      row.__busy = false;
    }
    refreshSoon();
  }

  function renderStats(stats) {
    const at = typeof stats.now_ms === "number" ? stats.now_ms : Date.now();
    const topologies = Array.isArray(stats.topologies) ? stats.topologies : [];
    const seen = new Set();
    for (const t of topologies) {
      for (const s of Array.isArray(t.services) ? t.services : []) {
        const key = t.name + "/" + s.name;
        seen.add(key);
        derive(key, s, at);
      }
    }
    for (const key of Array.from(previous.keys())) {
      if (!seen.has(key)) {
        previous.delete(key);
        derived.delete(key);
        history.delete(key);
      }
    }
    sync(byId("topologies"), topologies, (t) => String(t.name), createTopology, updateTopology);
    byId("no-topologies").hidden = topologies.length > 0;
  }

  // ---- refresh loop -------------------------------------------------------------------

  let timer = null;
  let running = false;
  let again = false;
  let lastOk = null;

  function refreshSoon() {
    if (running) {
      again = true;
      return;
    }
    clearTimeout(timer);
    running = true;
    refresh().finally(() => {
      running = false;
      if (again) {
        again = false;
        refreshSoon();
      } else {
        timer = setTimeout(refreshSoon, REFRESH_MS);
      }
    });
  }

  async function refresh() {
    const myEpoch = epoch;
    const updated = byId("updated");
    const healthRead = api("/api/v1/health", { noAuth: true }).then(
      (h) => { renderHealth(h); return null; },
      (err) => { renderHealth(null); return err; });
    let failure = null;
    if (token()) {
      try {
        const [cluster, stats] = await Promise.all([api("/api/v1/cluster"), api("/api/v1/stats")]);
        if (myEpoch === epoch) {
          renderCluster(cluster);
          renderStats(stats);
        }
      } catch (err) {
        failure = err;
      }
    }
    const healthFailure = await healthRead;
    if (myEpoch !== epoch) return;
    if (failure && failure.status === 401) {
      showLogin("The admin token was refused (401). Enter the cluster's admin token.");
      return;
    }
    const err = failure || healthFailure;
    if (err) {
      showMessage("refresh", "error", errorParts("Refresh failed" + (err.path ? " on " + err.path : ""), err));
      setText(updated, lastOk ? "stale since " + fmtClock(lastOk) : "no answer");
      updated.classList.add("stale");
    } else {
      clearMessage("refresh");
      lastOk = new Date();
      setText(updated, (token() ? "updated " : "health at ") + fmtClock(lastOk));
      updated.classList.remove("stale");
    }
  }

  // ---- start -------------------------------------------------------------------------------

  // A URL ending in #token=... (as `portcullis demo` prints) signs in by
  // itself: the fragment never reaches the server, the token moves to
  // sessionStorage like a typed one, and the fragment leaves the address bar
  // and the history entry at once. True when a token was taken.
  function takeTokenFromUrl() {
    const fromUrl = /^#token=(.+)$/.exec(location.hash);
    if (!fromUrl) return false;
    window.history.replaceState(null, "", location.pathname + location.search);
    let value = "";
    try {
      value = decodeURIComponent(fromUrl[1]).trim();
    } catch (e) {
      value = "";
    }
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
    } catch (e) {
      showLogin("This browser refuses sessionStorage; the dashboard cannot keep the token.");
      return false;
    }
    return value !== "";
  }

  // Pasted into a tab that already shows the dashboard, the URL only
  // changes the fragment: no reload, so the same happens on hashchange.
  window.addEventListener("hashchange", () => {
    if (takeTokenFromUrl()) {
      showConsole();
      refreshSoon();
    }
  });

  takeTokenFromUrl();
  if (token()) showConsole();
  else showLogin("");
  refreshSoon();
})();
