// clearshelf admin console.
//
// Every string that comes from the service (catalog titles, reasons, notes,
// actors, versions) reaches the page through textContent or setAttribute:
// nothing here assigns innerHTML, so markup in the data renders as text.
// The admin key lives in sessionStorage and goes out only in the X-API-Key
// header of same-origin requests.
"use strict";

(() => {
  const KEY_STORAGE = "clearshelf.adminKey";
  const BASE = window.location.pathname.replace(/\/admin\/console\/?$/, "");
  const PAGES = ["fairness", "thresholds", "why", "models", "log"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.setAttribute("class", value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const $ = (id) => document.getElementById(id);

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function showError(id, error) {
    const node = $(id);
    if (!error) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.textContent = error.message || String(error);
    node.hidden = false;
  }

  let toastTimer = null;
  function toast(message) {
    const node = $("toast");
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 5000);
  }

  function num(value, digits = 3) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return Number(value).toFixed(digits);
  }

  function signed(value, digits = 3) {
    if (value === null || value === undefined) return "—";
    const v = Number(value);
    return (v > 0 ? "+" : v < 0 ? "−" : "±") + Math.abs(v).toFixed(digits);
  }

  function when(iso) {
    if (!iso) return "—";
    const s = String(iso).replace("T", " ");
    return s.replace(/(\.\d+)?(\+00:00|Z)$/, "");
  }

  function statusBadge(status) {
    const s = String(status || "unknown").toLowerCase();
    const known = ["pass", "warn", "fail"].includes(s) ? s : "unknown";
    return el("span", { class: `status status-${known}`, text: s.replace(/_/g, " ") });
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function adminKey() {
    return window.sessionStorage.getItem(KEY_STORAGE);
  }

  async function api(method, path, { body, key, accept = "application/json" } = {}) {
    const headers = { Accept: accept };
    const useKey = key || adminKey();
    if (useKey) headers["X-API-Key"] = useKey;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(BASE + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        redirect: "error",
      });
    } catch (err) {
      throw new ApiError(0, `The service did not answer (${err.message}). Is it still running?`);
    }
    if (!response.ok) {
      let detail = "";
      try {
        const problem = await response.json();
        detail = problemText(problem);
      } catch (_ignored) {
        detail = "";
      }
      const message = `${detail || response.statusText || "the service gave no details"} (HTTP ${
        response.status} from ${method} ${path.split("?")[0]})`;
      const error = new ApiError(response.status, message);
      error.detail = detail;
      if (response.status === 401 && !key) signOut("Your key was not accepted any more: " + (detail || "sign in again."));
      throw error;
    }
    if (accept === "application/json") return response.status === 204 ? null : response.json();
    return response.text();
  }

  function problemText(problem) {
    if (!problem || typeof problem !== "object") return "";
    const detail = problem.detail ?? problem.title;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      // FastAPI's own 422 shape: [{loc, msg}]
      return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    }
    return detail ? JSON.stringify(detail) : "";
  }

  // ------------------------------------------------------------------ confirm dialog

  function confirmDialog(title, body, okLabel = "Confirm") {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    append(clear($("confirm-body")), [body]);
    $("confirm-ok").textContent = okLabel;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      $("confirm-ok").focus();
    });
  }

  // ------------------------------------------------------------------ background jobs

  // Start a job (POST ``path`` -> {job_id}), then poll GET /admin/jobs/{id} once a
  // second, writing its progress into ``statusNode``, until it succeeds or fails.
  async function runJob(path, { button, statusNode, errorId, label }) {
    showError(errorId, null);
    button.disabled = true;
    try {
      const { job_id: id } = await api("POST", path);
      statusNode.textContent = `${label}: queued…`;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const job = await api("GET", `/admin/jobs/${encodeURIComponent(id)}`);
        const d = job.detail || {};
        if (job.status === "succeeded") {
          statusNode.textContent = `${label}: done.`;
          return job;
        }
        if (job.status === "failed") throw new Error(`${label} failed: ${job.error || "no details given"}`);
        statusNode.textContent = `${label}: ${job.status}` + (d.stage ? ` (${d.stage}${d.total ? ` ${d.done}/${d.total}` : ""})` : "") + "…";
      }
    } catch (err) {
      statusNode.textContent = "";
      showError(errorId, err);
      return null;
    } finally {
      button.disabled = false;
    }
  }

  async function runAudit() {
    const job = await runJob("/admin/audits", { button: $("run-audit"), statusNode: $("audit-job"),
      errorId: "fairness-error", label: "Audit" });
    if (!job) return;
    const d = job.detail || {};
    $("audit-job").textContent = `Audit done: report ${d.report_id ?? ""} (${d.status ?? "?"}).`;
    if (current === "fairness") await loadFairness();
  }

  async function trainModel() {
    const ok = await confirmDialog("Train a new model?", el("p", {
      text: "Trains on everything in the store now, in the background, and activates the new model when it is done. The current model stays available to roll back to." }), "Train");
    if (!ok) return;
    const job = await runJob("/admin/train", { button: $("train-model"), statusNode: $("train-job"),
      errorId: "models-error", label: "Training" });
    if (!job) return;
    const d = job.detail || {};
    $("train-job").textContent = `Training done: model ${d.version ?? ""} is active.`;
    if (current === "models") await loadModels();
  }

  // ------------------------------------------------------------------ sign-in and navigation

  let current = null;

  function showSignedIn(signedIn) {
    $("page-signin").hidden = signedIn;
    $("tabs").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
    if (!signedIn) for (const p of PAGES) $(`page-${p}`).hidden = true;
  }

  function signOut(message) {
    window.sessionStorage.removeItem(KEY_STORAGE);
    current = null;
    showSignedIn(false);
    showError("signin-error", message ? { message } : null);
    $("api-key").value = "";
    $("api-key").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      showError("signin-error", { message: "Paste an admin API key first." });
      return;
    }
    const button = event.submitter || $("signin-form").querySelector("button");
    button.disabled = true;
    try {
      // Any admin route checks the key and its role; the models list is always there.
      await api("GET", "/admin/models", { key });
      window.sessionStorage.setItem(KEY_STORAGE, key);
      $("api-key").value = "";
      showError("signin-error", null);
      showSignedIn(true);
      go(pageFromHash() || "fairness");
    } catch (err) {
      const hint = err.status === 401 ? " Check that you pasted the whole key, and that it is not revoked."
        : err.status === 403 ? " This key does not have the admin role: create one with `clearshelf keys create --role admin`." : "";
      showError("signin-error", { message: err.message + hint });
    } finally {
      button.disabled = false;
    }
  }

  function pageFromHash() {
    const name = window.location.hash.replace(/^#/, "");
    return PAGES.includes(name) ? name : null;
  }

  function go(page) {
    if (window.location.hash !== `#${page}`) {
      window.history.replaceState(null, "", `#${page}`);
    }
    show(page);
  }

  function show(page) {
    if (!adminKey()) return;
    current = page;
    $("toast").hidden = true;
    for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
    for (const tab of document.querySelectorAll(".tab")) {
      if (tab.dataset.page === page) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    LOADERS[page]();
  }

  // ------------------------------------------------------------------ fairness page
  //
  // Reads the report layout of fairness.report (schema 1.0): ``metrics`` is a
  // list of {attribute, metric, by_group: {group: {value, ci_low, ci_high, n,
  // status, difference_to_reference}}, difference(_ci), ratio(_ci), status,
  // judged, thresholds, worst_group, reference_group}.

  let latestReport = null;

  async function loadFairness() {
    showError("fairness-error", null);
    const body = clear($("fairness-body"));
    body.append(el("p", { class: "meta", text: "Loading the latest report…" }));
    $("open-report").disabled = true;
    $("download-report").hidden = true;
    $("report-frame").hidden = true;
    let report;
    try {
      report = await api("GET", "/fairness/reports/latest");
    } catch (err) {
      clear(body);
      if (err.status === 404) {
        body.append(el("p", { text: "No fairness report yet. Run one with `clearshelf audit` (or POST /admin/audits); the nightly audit also writes one." }));
      } else {
        showError("fairness-error", err);
      }
      clear($("fairness-trend"));
      return;
    }
    latestReport = report;
    renderReport(clear(body), report);
    $("open-report").disabled = !report.id;
    loadTrend(report).catch((err) => showError("fairness-error", err));
  }

  function renderReport(body, report) {
    const summary = el("dl", { class: "summary" });
    const fact = (label, value) => summary.append(el("div", {}, el("dt", { text: label }), el("dd", {}, value)));
    fact("Status", statusBadge(report.status));
    fact("Created (UTC)", when(report.created_at));
    fact("Model version", report.model_version ? el("code", { text: String(report.model_version) }) : "none active");
    fact("Thresholds version", String(report.thresholds_version ?? "—"));
    fact("Audit cohort", `${report.cohort_size} customers, top ${report.k}`);
    const policy = report.policy || {};
    fact("Served with", `re-rank strength ${num(policy.rerank_strength ?? 0, 2)}, minimum score ${policy.min_score ?? "none"}`);
    if (report.data) fact("Data", `${report.data.events} events, ${report.data.customers} customers, ${report.data.items} items`);
    fact("Report id", el("code", { text: String(report.id) }));
    body.append(summary);

    const metrics = report.metrics || [];
    const judged = metrics.filter((m) => m.judged);
    body.append(el("h3", { text: "Gaps against the thresholds" }));
    if (!judged.length) body.append(el("p", { class: "meta", text: "No metric is judged in this report." }));
    else body.append(gapsTable(judged));

    body.append(el("h3", { text: "Per-group values with intervals" }));
    body.append(el("p", { class: "help", text: "Dots are each group's value, bars its bootstrap interval; the dashed line is the value over everyone." }));
    // Only the worst finding starts open; the gaps table opens any other one.
    const worst = judged.find((m) => m.status === "fail") || judged.find((m) => m.status === "warn");
    for (const m of judged) body.append(metricDetails(m, m === worst));
    const other = metrics.filter((m) => !m.judged);
    if (other.length) {
      const box = el("details", { class: "other-metrics" }, el("summary", { text: `Reported, not judged (${other.length} metrics)` }));
      for (const m of other) box.append(metricDetails(m, false));
      body.append(box);
    }
    if (report.item_exposure) body.append(exposureTable(report.item_exposure));
  }

  function ciText(ci) {
    return ci && ci[0] !== null && ci[0] !== undefined ? `[${num(ci[0])}, ${num(ci[1])}]` : "";
  }

  function gapsTable(metrics) {
    const table = el("table", { class: "numbers gaps" },
      el("thead", {}, el("tr", {}, ...["Attribute", "Metric", "Largest gap [interval]", "Limit", "Worst/best ratio [interval]", "Limit", "Worst group", "Status"]
        .map((t) => el("th", { scope: "col", text: t })))));
    const tbody = el("tbody");
    for (const m of metrics) {
      const t = m.thresholds || {};
      tbody.append(el("tr", { class: `row-${m.status}`, "data-metric": `${m.attribute}/${m.metric}` },
        el("td", { text: m.attribute }),
        el("td", {}, el("button", { type: "button", class: "link", text: m.metric,
          "aria-label": `Show the groups of ${m.metric} by ${m.attribute}`, onclick: () => openMetric(m) })),
        el("td", { text: `${num(m.difference)} ${ciText(m.difference_ci)}` }),
        el("td", { text: t.difference_max === null || t.difference_max === undefined ? "off" : `≤ ${t.difference_max}` }),
        el("td", { text: `${num(m.ratio)} ${ciText(m.ratio_ci)}` }),
        el("td", { text: t.ratio_min === null || t.ratio_min === undefined ? "off" : `≥ ${t.ratio_min}` }),
        el("td", { text: m.worst_group ?? "—" }),
        el("td", {}, statusBadge(m.status))));
    }
    table.append(tbody);
    return table;
  }

  function openMetric(m) {
    const key = `${m.attribute}/${m.metric}`;
    const box = [...document.querySelectorAll("#fairness-body details.metric")].find((d) => d.dataset.metric === key);
    if (!box) return;
    box.open = true;
    box.scrollIntoView({ block: "start" });
    box.querySelector("summary").focus();
  }

  function metricDetails(m, open) {
    const groups = Object.entries(m.by_group || {});
    const values = groups.flatMap(([, g]) => [g.value, g.ci_low, g.ci_high]).concat([m.overall])
      .filter((v) => v !== null && v !== undefined);
    let lo = Math.min(...values, Infinity), hi = Math.max(...values, -Infinity);
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    const box = el("details", { class: "metric", open: open || null, "data-metric": `${m.attribute}/${m.metric}` },
      el("summary", {}, `${m.metric} by ${m.attribute} `, statusBadge(m.status)));
    const table = el("table", { class: "numbers groups" },
      el("thead", {}, el("tr", {}, ...["Group", "Customers", "Value", "Interval", "", "Gap to reference", "Status"]
        .map((t) => el("th", { scope: "col", text: t })))));
    const tbody = el("tbody");
    for (const [name, g] of groups) {
      const d = g.difference_to_reference;
      const isRef = name === m.reference_group;
      tbody.append(el("tr", { class: `row-${g.status}` },
        el("th", { scope: "row" }, name, isRef ? el("span", { class: "badge", text: "reference" }) : null),
        el("td", { text: String(g.n) }),
        el("td", { text: num(g.value) }),
        el("td", { text: g.ci_low === null || g.ci_low === undefined ? "—" : `${num(g.ci_low)} – ${num(g.ci_high)}` }),
        el("td", { class: "ci" }, intervalBar(g, lo, hi, m.overall)),
        el("td", { text: isRef || !d ? "—" : `${signed(d.value)} ${ciText([d.ci_low, d.ci_high])}` }),
        el("td", {}, statusBadge(g.status))));
    }
    table.append(tbody);
    box.append(table);
    return box;
  }

  function intervalBar(g, lo, hi, overall) {
    const w = 220, h = 18, pad = 4;
    const x = (v) => pad + ((v - lo) / (hi - lo)) * (w - 2 * pad);
    const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, "aria-hidden": "true" });
    s.append(svg("line", { class: "grid", x1: pad, x2: w - pad, y1: h / 2, y2: h / 2 }));
    if (overall !== null && overall !== undefined) s.append(svg("line", { class: "ref", x1: x(overall), x2: x(overall), y1: 0, y2: h }));
    const cls = ["pass", "warn", "fail"].includes(g.status) ? `${g.status}-dot` : "ci-dot";
    if (g.ci_low !== undefined && g.ci_low !== null && g.ci_high !== null) {
      s.append(svg("line", { class: "ci-line", x1: x(g.ci_low), x2: x(g.ci_high), y1: h / 2, y2: h / 2 }));
      s.append(svg("line", { class: "ci-line", x1: x(g.ci_low), x2: x(g.ci_low), y1: 4, y2: h - 4 }));
      s.append(svg("line", { class: "ci-line", x1: x(g.ci_high), x2: x(g.ci_high), y1: 4, y2: h - 4 }));
    }
    if (g.value !== undefined && g.value !== null) s.append(svg("circle", { class: cls, cx: x(g.value), cy: h / 2, r: 4.5 }));
    return s;
  }

  function exposureTable(exp) {
    const box = el("details", { class: "metric" }, el("summary", {}, `Item side: exposure by ${exp.column}`));
    const table = el("table", { class: "numbers" },
      el("thead", {}, el("tr", {}, ...["Group", "Exposure share", "Relevant share", "Ratio [interval]", "Status"]
        .map((t) => el("th", { scope: "col", text: t })))));
    const tbody = el("tbody");
    for (const [name, g] of Object.entries(exp.groups || {})) {
      tbody.append(el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: num(g.exposure_share) }),
        el("td", { text: num(g.relevant_share) }), el("td", { text: `${num(g.ratio)} ${ciText(g.ratio_ci)}` }),
        el("td", {}, statusBadge(g.status))));
    }
    table.append(tbody);
    box.append(el("p", { class: "help", text: `Share of the items shown against share of the items bought, per ${exp.column}; ratios under ${exp.ratio_min} mean under-exposure.` }), table);
    return box;
  }

  // The trend: for the headline metric (the judged NDCG metric of each
  // attribute), the largest group gap in every stored report, oldest first.
  async function loadTrend(latest) {
    const target = clear($("fairness-trend"));
    const list = (await api("GET", "/fairness/reports?limit=20")).reports || [];
    if (!list.length) {
      target.append(el("p", { class: "meta", text: "No reports yet." }));
      return;
    }
    const rows = list.slice(0, 12).reverse(); // oldest first
    const details = await Promise.all(rows.map((r) => (r.id === latest.id ? Promise.resolve(latest)
      : api("GET", `/fairness/reports/${encodeURIComponent(r.id)}`).catch(() => null))));
    const headline = (latest.metrics || []).filter((m) => m.judged && String(m.metric).startsWith("ndcg"));
    const series = headline.map((m) => ({
      key: `${m.attribute}/${m.metric}`,
      label: `${m.metric} gap by ${m.attribute}`,
      limit: m.thresholds ? m.thresholds.difference_max : null,
      values: details.map((d) => {
        const match = d && (d.metrics || []).find((x) => x.attribute === m.attribute && x.metric === m.metric);
        return match && match.difference !== undefined ? match.difference : null;
      }),
    }));
    for (let i = series.length - 1; i >= 0; i--) if (series[i].values.every((v) => v === null)) series.splice(i, 1);
    if (rows.length < 2) target.append(el("p", { class: "help", text: "This is the first stored report; the trend line appears from the second one on." }));
    if (series.length) target.append(trendChart(rows, series));
    const table = el("table", { class: "numbers trend" },
      el("thead", {}, el("tr", {},
        ...["Created (UTC)", "Model", "Thresholds", "Cohort", ...series.map((s) => s.label), "Status"].map((t) => el("th", { scope: "col", text: t })))));
    const tbody = el("tbody");
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i];
      tbody.append(el("tr", { "data-report": r.id },
        el("td", { text: when(r.created_at) }),
        el("td", {}, el("code", { text: String(r.model_version ?? "—") })), el("td", { text: String(r.thresholds_version ?? "—") }),
        el("td", { text: String(r.cohort_size ?? "—") }),
        ...series.map((s) => el("td", { text: num(s.values[i]) })),
        el("td", {}, statusBadge(r.status))));
    }
    table.append(tbody);
    target.append(table);
  }

  const SERIES_COLOURS = ["#1f5fbf", "#c2410c", "#6d28d9", "#0f766e", "#a16207", "#be185d", "#4d7c0f", "#334155"];

  function trendChart(rows, series) {
    const w = 640, h = 200, left = 48, right = 16, top = 14, bottom = 40;
    const all = series.flatMap((s) => [...s.values, s.limit]).filter((v) => v !== null && v !== undefined);
    const maxV = Math.max(0.01, ...all) * 1.15;
    const n = rows.length;
    const x = (i) => left + (n === 1 ? (w - left - right) / 2 : (i / (n - 1)) * (w - left - right));
    const y = (v) => top + (1 - v / maxV) * (h - top - bottom);
    const s = svg("svg", { viewBox: `0 0 ${w} ${h + 18 * series.length}`, role: "img", "aria-labelledby": "trend-title" },
      svg("title", { id: "trend-title", text: "Largest group gap of the judged NDCG metric per report, oldest to newest" }));
    for (const t of [0, maxV / 2, maxV]) {
      s.append(svg("line", { class: "grid", x1: left, x2: w - right, y1: y(t), y2: y(t) }));
      s.append(svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end", text: num(t, 2) }));
    }
    s.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: h - bottom, y2: h - bottom }));
    series.forEach((ser, k) => {
      const colour = SERIES_COLOURS[k % SERIES_COLOURS.length];
      if (ser.limit !== null && ser.limit !== undefined && k === 0) {
        s.append(svg("line", { class: "ref", x1: left, x2: w - right, y1: y(ser.limit), y2: y(ser.limit) }),
          svg("text", { x: left + 4, y: y(ser.limit) - 4, class: "muted-text", text: `limit ${ser.limit}` }));
      }
      const pts = ser.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
      if (pts.length > 1) s.append(svg("polyline", { class: "trend-line", points: pts.join(" "), stroke: colour }));
      ser.values.forEach((v, i) => {
        if (v === null) return;
        const st = String(rows[i].status || "").toLowerCase();
        const c = svg("circle", { class: `${["pass", "warn", "fail"].includes(st) ? st : "warn"}-dot`, cx: x(i), cy: y(v), r: 5, stroke: colour, "stroke-width": 2 });
        c.append(svg("title", { text: `${when(rows[i].created_at)}: ${ser.label} ${num(v)} (report ${st})` }));
        s.append(c);
      });
      const ly = h + 4 + k * 18;
      s.append(svg("line", { x1: left, x2: left + 24, y1: ly, y2: ly, stroke: colour, "stroke-width": 3 }),
        svg("text", { x: left + 30, y: ly + 4, text: ser.label }));
    });
    rows.forEach((r, i) => {
      if (n <= 8 || i === 0 || i === n - 1) {
        const anchor = n > 1 && i === 0 ? "start" : n > 1 && i === n - 1 ? "end" : "middle";
        s.append(svg("text", { x: x(i), y: h - bottom + 16, "text-anchor": anchor, class: "muted-text", text: when(r.created_at).slice(5, 16) }));
      }
    });
    s.append(svg("text", { x: left, y: h - 8, class: "muted-text", text: "report time (oldest → newest); dot colour = report status" }));
    return s;
  }

  async function openFullReport() {
    if (!latestReport) return;
    const id = latestReport.id;
    const button = $("open-report");
    button.disabled = true;
    try {
      const html = await api("GET", `/fairness/reports/${encodeURIComponent(id)}?format=html`, { accept: "text/html" });
      const frame = $("report-frame");
      // sandbox="" (no scripts, opaque origin): the report is shown, never run.
      frame.srcdoc = html;
      frame.hidden = false;
      const link = $("download-report");
      if (link.href && link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      link.setAttribute("download", `fairness-report-${id}.html`);
      link.hidden = false;
      frame.focus();
    } catch (err) {
      showError("fairness-error", err);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ thresholds page

  const AUDIT_FIELDS = {
    ratio_min: { label: "Minimum worst/best group ratio", min: 0.01, max: 1, step: 0.01,
      help: "A metric whose worst group reaches less than this share of the best group fails (0.8 = four-fifths rule)." },
    difference_max: { label: "Maximum group gap", min: 0, max: 1, step: 0.005,
      help: "A metric whose best and worst group differ by more than this fails." },
    min_group_size: { label: "Minimum group size", min: 1, max: 1000000, step: 1, integer: true,
      help: "Smaller groups are reported as too small to judge." },
    confidence: { label: "Interval confidence", min: 0.5, max: 0.999, step: 0.005,
      help: "Level of the bootstrap intervals." },
    resamples: { label: "Bootstrap resamples", min: 500, max: 20000, step: 100, integer: true,
      help: "More resamples give steadier intervals and slower audits." },
    k: { label: "List length judged (k)", min: 1, max: 100, step: 1, integer: true,
      help: "How many recommendations per customer the audit judges." },
  };

  let thresholds = null; // the version in force
  let historyVersions = [];
  let previewSeq = 0;
  let previewTimer = null;
  let baseline = null; // the preview point of the settings in force

  async function loadThresholds() {
    showError("thresholds-error", null);
    try {
      const [cur, hist] = await Promise.all([
        api("GET", "/admin/thresholds"), api("GET", "/admin/thresholds/history"),
      ]);
      thresholds = cur;
      historyVersions = hist.versions || [];
      fillForm(cur.settings);
      renderCurrent();
      renderHistory();
      baseline = null;
      try {
        // What the settings in force buy, read off the same sweep: the preview's own
        // "current" is the policy the latest audit ran with, which lags an apply.
        baseline = (await api("POST", "/admin/thresholds/preview", { body: { settings: cur.settings } })).proposed || null;
      } catch (_err) {
        baseline = null; // no report or no sweep: runPreview says so
      }
      schedulePreview(0);
    } catch (err) {
      showError("thresholds-error", err);
    }
  }

  function renderCurrent() {
    const t = thresholds;
    $("thresholds-current").textContent = `In force: version ${t.version}, set ${when(t.created_at)} by ${t.actor}`
      + (t.note ? ` (“${t.note}”)` : "") + ` — ${settingsSummary(t.settings)}.`;
  }

  function fillForm(settings) {
    const policy = settings.policy || {};
    $("rerank-strength").value = String(policy.rerank_strength ?? 0);
    $("rerank-strength-out").textContent = num(policy.rerank_strength ?? 0, 2);
    const hasMin = policy.min_score !== null && policy.min_score !== undefined;
    $("min-score-on").checked = hasMin;
    $("min-score").disabled = !hasMin;
    $("min-score").value = hasMin ? String(policy.min_score) : "";
    const box = clear($("audit-fields"));
    const onInput = () => schedulePreview();
    for (const [name, value] of Object.entries(settings.audit || {})) {
      const id = `audit-${name}`;
      if (typeof value === "number") {
        const spec = AUDIT_FIELDS[name] || { label: name, step: "any" };
        box.append(
          el("label", { for: id, text: spec.label }),
          el("input", { id, type: "number", "data-audit": name, value: String(value), min: spec.min, max: spec.max,
            step: spec.step, "aria-describedby": spec.help ? `${id}-help` : null,
            "data-integer": spec.integer ? "1" : null, oninput: onInput }),
          spec.help ? el("p", { id: `${id}-help`, class: "help", text: spec.help }) : null);
      } else if (Array.isArray(value)) {
        const label = name === "judged" ? "Metrics that set the report's status" : name;
        box.append(
          el("label", { for: id, text: label }),
          el("input", { id, type: "text", "data-audit-list": name, value: value.join(", "), spellcheck: "false",
            "aria-describedby": `${id}-help`, oninput: onInput }),
          el("p", { id: `${id}-help`, class: "help", text: "Metric names without @k, separated by commas; the others are reported for information." }));
      } else if (name === "limits" && value && typeof value === "object") {
        box.append(limitsTable(value, onInput));
      }
      // anything else is kept as it is (see proposedSettings)
    }
  }

  // Per-metric limits: one row per metric, two rules each; an empty box switches that rule off.
  function limitsTable(limits, onInput) {
    const wrap = el("div", { class: "stack" }, el("span", { class: "label", id: "limits-title", text: "Per-metric limits" }),
      el("p", { class: "help", id: "limits-help", text: "These metrics use their own limits instead of the two above; leave a box empty to switch that rule off." }));
    const table = el("table", { class: "limits", "aria-labelledby": "limits-title", "aria-describedby": "limits-help" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Metric" }),
        el("th", { scope: "col", text: "Min ratio" }), el("th", { scope: "col", text: "Max gap" }))));
    const tbody = el("tbody");
    for (const [metric, rules] of Object.entries(limits)) {
      const cell = (rule, spec) => el("td", {}, el("input", {
        type: "number", class: "narrow", "data-limit": metric, "data-rule": rule, min: spec.min, max: spec.max, step: spec.step,
        value: rules[rule] === null || rules[rule] === undefined ? "" : String(rules[rule]),
        "aria-label": `${metric}: ${rule === "ratio_min" ? "minimum worst/best ratio" : "maximum group gap"}`, oninput: onInput }));
      tbody.append(el("tr", {}, el("th", { scope: "row", text: metric }),
        cell("ratio_min", AUDIT_FIELDS.ratio_min), cell("difference_max", AUDIT_FIELDS.difference_max)));
    }
    table.append(tbody);
    wrap.append(table);
    return wrap;
  }

  // The proposed settings from the form; throws an Error naming a bad field.
  // Audit settings the form has no control for are sent back unchanged.
  function proposedSettings() {
    const strength = Number($("rerank-strength").value);
    let minScore = null;
    if ($("min-score-on").checked) {
      const raw = $("min-score").value.trim();
      if (raw === "" || !Number.isFinite(Number(raw))) throw new Error("Minimum score: enter a number, or untick “Drop items scoring below a minimum”.");
      minScore = Number(raw);
    }
    const audit = JSON.parse(JSON.stringify((thresholds && thresholds.settings.audit) || {}));
    for (const input of document.querySelectorAll("[data-audit]")) {
      const raw = input.value.trim();
      const label = document.querySelector(`label[for="${input.id}"]`).textContent;
      if (raw === "" || !Number.isFinite(Number(raw))) throw new Error(`${label}: enter a number.`);
      const v = Number(raw);
      if (input.dataset.integer && !Number.isInteger(v)) throw new Error(`${label}: enter a whole number.`);
      audit[input.dataset.audit] = v;
    }
    for (const input of document.querySelectorAll("[data-audit-list]")) {
      audit[input.dataset.auditList] = input.value.split(",").map((x) => x.trim()).filter(Boolean);
    }
    for (const input of document.querySelectorAll("[data-limit]")) {
      const raw = input.value.trim();
      if (raw !== "" && !Number.isFinite(Number(raw))) throw new Error(`${input.getAttribute("aria-label")}: enter a number or leave it empty.`);
      audit.limits = audit.limits || {};
      audit.limits[input.dataset.limit] = audit.limits[input.dataset.limit] || {};
      audit.limits[input.dataset.limit][input.dataset.rule] = raw === "" ? null : Number(raw);
    }
    return { policy: { min_score: minScore, rerank_strength: strength }, audit };
  }

  function schedulePreview(delay = 150) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, delay);
  }

  async function runPreview() {
    let settings;
    try {
      settings = proposedSettings();
    } catch (err) {
      showError("preview-error", err);
      return;
    }
    const seq = ++previewSeq;
    try {
      const preview = await api("POST", "/admin/thresholds/preview", { body: { settings } });
      if (seq !== previewSeq) return; // a newer request is on its way
      showError("preview-error", null);
      renderPreview(preview);
    } catch (err) {
      if (seq !== previewSeq) return;
      clear($("preview-table").tBodies[0]);
      clear($("tradeoff"));
      $("preview-source").textContent = "";
      const hint = err.status === 404 || err.status === 409 ? " Run an audit with a sweep (`clearshelf audit`) to see the trade-off." : "";
      showError("preview-error", { message: err.message + hint });
    }
  }

  const PREVIEW_ROWS = [
    ["ndcg", "Expected overall NDCG", 4, +1],
    ["max_gap", "Largest group gap", 4, -1],
    ["coverage", "Catalog coverage", 4, +1],
    ["strength", "Re-rank strength", 2, 0],
  ];

  function renderPreview(preview) {
    $("preview-source").textContent = `(report ${preview.report_id}${preview.metric ? `, ${preview.metric}` : ""}${preview.attribute ? ` by ${preview.attribute}` : ""})`;
    const tbody = clear($("preview-table").tBodies[0]);
    const cur = baseline || preview.current || {};
    const prop = preview.proposed || {};
    for (const [key, label, digits, better] of PREVIEW_ROWS) {
      const delta = prop[key] === undefined || cur[key] === undefined || prop[key] === null || cur[key] === null
        ? null : prop[key] - cur[key];
      const cls = delta === null || better === 0 || Math.abs(delta) < 1e-12 ? "" : (delta * better > 0 ? "better" : "worse");
      tbody.append(el("tr", { "data-measure": key },
        el("th", { scope: "row", text: label }),
        el("td", { text: num(cur[key], digits) }),
        el("td", { class: "proposed-value", text: num(prop[key], digits) }),
        el("td", { class: cls, text: delta === null ? "—" : signed(delta, digits) })));
    }
    for (const note of preview.notes || []) tbody.append(el("tr", {}, el("td", { colspan: 4, class: "help", text: String(note) })));
    clear($("tradeoff")).append(tradeoffChart(preview));
  }

  function tradeoffChart(preview) {
    const ok = (v) => v !== null && v !== undefined && Number.isFinite(Number(v));
    const sweep = (preview.sweep || []).filter((p) => ok(p.ndcg)).sort((a, b) => a.strength - b.strength);
    // Across: the largest group gap; when the sweep has none (every group too small), the strength itself.
    const byGap = sweep.some((p) => ok(p.max_gap));
    const xKey = byGap ? "max_gap" : "strength";
    const usable = (p) => p && ok(p.ndcg) && ok(p[xKey]);
    $("tradeoff-help").hidden = !byGap; // it explains the gap axis
    const curve = sweep.filter(usable);
    const now = baseline || preview.current;
    const audited = preview.current;
    const showAudited = usable(audited) && usable(now) && Math.abs(audited.strength - now.strength) > 1e-9;
    const pts = [...curve, now, preview.proposed, showAudited ? audited : null].filter(usable);
    const w = 560, h = 340, left = 58, right = 18, top = 16, bottom = 66;
    const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, "aria-labelledby": "tradeoff-title tradeoff-desc" },
      svg("title", { id: "tradeoff-title", text: byGap ? "Trade-off between overall NDCG and the largest group gap" : "Overall NDCG by re-rank strength" }),
      svg("desc", { id: "tradeoff-desc", text: `current: NDCG ${num(preview.current?.ndcg, 4)}, gap ${num(preview.current?.max_gap, 4)}; proposed: NDCG ${num(preview.proposed?.ndcg, 4)}, gap ${num(preview.proposed?.max_gap, 4)}` }));
    if (!pts.length) {
      s.append(svg("text", { x: w / 2, y: h / 2, "text-anchor": "middle", text: "no sweep in the latest report" }));
      return s;
    }
    const xs = pts.map((p) => p[xKey]), ys = pts.map((p) => p.ndcg);
    const span = (lo, hi) => { const d = hi - lo || Math.abs(hi) * 0.1 || 0.01; return [lo - d * 0.08, hi + d * 0.08]; };
    const [x0, x1] = span(Math.min(...xs), Math.max(...xs));
    const [y0, y1] = span(Math.min(...ys), Math.max(...ys));
    const x = (v) => left + ((v - x0) / (x1 - x0)) * (w - left - right);
    const y = (v) => top + (1 - (v - y0) / (y1 - y0)) * (h - top - bottom);
    for (let i = 0; i <= 4; i++) {
      const gx = x0 + ((x1 - x0) * i) / 4, gy = y0 + ((y1 - y0) * i) / 4;
      s.append(svg("line", { class: "grid", x1: x(gx), x2: x(gx), y1: top, y2: h - bottom }));
      s.append(svg("line", { class: "grid", x1: left, x2: w - right, y1: y(gy), y2: y(gy) }));
      s.append(svg("text", { x: x(gx), y: h - bottom + 15, "text-anchor": "middle", text: num(gx, 3) }));
      s.append(svg("text", { x: left - 6, y: y(gy) + 4, "text-anchor": "end", text: num(gy, 3) }));
    }
    s.append(svg("line", { class: "axis", x1: left, x2: w - right, y1: h - bottom, y2: h - bottom }));
    s.append(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: h - bottom }));
    s.append(svg("text", { x: (left + w - right) / 2, y: h - bottom + 34, "text-anchor": "middle",
      text: byGap ? "largest group gap (lower is fairer)" : "re-rank strength (the sweep has no group gap: groups too small)" }));
    s.append(svg("text", { x: 12, y: (top + h - bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(top + h - bottom) / 2})`, text: "overall NDCG" }));
    if (curve.length > 1) s.append(svg("polyline", { class: "curve", points: curve.map((p) => `${x(p[xKey])},${y(p.ndcg)}`).join(" ") }));
    for (const p of curve) {
      const dot = svg("circle", { class: "sweep-dot", cx: x(p[xKey]), cy: y(p.ndcg), r: 3.5 });
      dot.append(svg("title", { text: `strength ${num(p.strength, 2)}: NDCG ${num(p.ndcg, 4)}, gap ${num(p.max_gap, 4)}, coverage ${num(p.coverage, 3)}` }));
      s.append(dot, svg("text", { x: x(p[xKey]) + 6, y: y(p.ndcg) - 6, class: "muted-text", text: num(p.strength, 2) }));
    }
    if (showAudited) {
      const a = audited, ax = x(a[xKey]), ay = y(a.ndcg);
      s.append(svg("rect", { class: "audited", x: ax - 5, y: ay - 5, width: 10, height: 10, "data-point": "audited" },
        svg("title", { text: `the latest audit ran at strength ${num(a.strength, 2)}` })));
    }
    if (usable(now)) {
      const c = now;
      s.append(svg("circle", { class: "current", cx: x(c[xKey]), cy: y(c.ndcg), r: 9, "data-point": "current" },
        svg("title", { text: `in force now (strength ${num(c.strength, 2)})` })));
    }
    if (usable(preview.proposed)) {
      const p = preview.proposed, px = x(p[xKey]), py = y(p.ndcg), r = 7;
      s.append(svg("polygon", { class: "proposed", "data-point": "proposed",
        points: `${px},${py - r} ${px + r},${py} ${px},${py + r} ${px - r},${py}` },
        svg("title", { text: `proposed (strength ${num(p.strength, 2)})` })));
    }
    // legend
    const lx = left + 4, ly = h - 14;
    s.append(svg("circle", { class: "current", cx: lx, cy: ly + 4, r: 6 }),
      svg("text", { x: lx + 12, y: ly + 8, text: "in force" }),
      svg("polygon", { class: "proposed", points: `${lx + 80},${ly - 2} ${lx + 86},${ly + 4} ${lx + 80},${ly + 10} ${lx + 74},${ly + 4}` }),
      svg("text", { x: lx + 92, y: ly + 8, text: "proposed" }),
      svg("circle", { class: "sweep-dot", cx: lx + 170, cy: ly + 4, r: 3.5 }),
      svg("text", { x: lx + 178, y: ly + 8, text: "sweep point (label = strength)" }));
    if (showAudited) {
      s.append(svg("rect", { class: "audited", x: lx + 360, y: ly - 1, width: 10, height: 10 }),
        svg("text", { x: lx + 376, y: ly + 8, text: "latest audit" }));
    }
    return s;
  }

  // {"policy": {"min_score": 1}, "audit": {"limits": {"x": {...}}}} -> {"policy.min_score": 1, "audit.limits.x.ratio_min": ...};
  // lists compare as their JSON text.
  function flatten(settings, prefix = "", out = {}) {
    for (const [k, v] of Object.entries(settings || {})) {
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, `${prefix}${k}.`, out);
      else out[`${prefix}${k}`] = Array.isArray(v) ? v.join(", ") : v;
    }
    return out;
  }

  function showValue(v) {
    return v === null || v === undefined ? "none" : String(v);
  }

  function diffTable(before, after) {
    const a = flatten(before), b = flatten(after);
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
    if (!keys.length) return null;
    const table = el("table", { class: "diff" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Setting" }),
        el("th", { scope: "col", text: "Now" }), el("th", { scope: "col", text: "After" }))));
    const tbody = el("tbody");
    for (const k of keys) {
      tbody.append(el("tr", { "data-setting": k }, el("th", { scope: "row", text: k }),
        el("td", { class: "old", text: showValue(a[k]) }), el("td", { class: "new", text: showValue(b[k]) })));
    }
    table.append(tbody);
    return table;
  }

  function settingsSummary(settings) {
    const p = settings.policy || {}, a = settings.audit || {};
    const bits = [`re-rank strength ${num(p.rerank_strength, 2)}`,
      `minimum score ${p.min_score === null || p.min_score === undefined ? "none" : p.min_score}`];
    if (a.ratio_min !== undefined) bits.push(`ratio ≥ ${a.ratio_min}`);
    if (a.difference_max !== undefined) bits.push(`gap ≤ ${a.difference_max}`);
    return bits.join(", ");
  }

  async function applyThresholds() {
    let settings;
    try {
      settings = proposedSettings();
    } catch (err) {
      showError("thresholds-error", err);
      return;
    }
    showError("thresholds-error", null);
    const diff = diffTable(thresholds.settings, settings);
    if (!diff) {
      toast("Nothing to apply: the form matches the settings in force.");
      return;
    }
    const note = $("change-note").value.trim();
    const body = el("div", {}, el("p", { text: `These settings replace version ${thresholds.version}. Serving picks them up within seconds; the next audit judges against the new thresholds.` }),
      diff, note ? el("p", { class: "meta", text: `Note: ${note}` }) : null);
    if (!(await confirmDialog("Apply these thresholds?", body, "Apply"))) return;
    try {
      const saved = await api("PUT", "/admin/thresholds", { body: { settings, note: note || null } });
      $("change-note").value = "";
      toast(`Applied: thresholds version ${saved.version}.`);
      await loadThresholds();
    } catch (err) {
      showError("thresholds-error", err);
    }
  }

  async function rollbackThresholds(toVersion) {
    showError("thresholds-error", null);
    const target = toVersion === undefined
      ? thresholds.version - 1
      : toVersion;
    if (target < 0 || thresholds.version === 0) {
      showError("thresholds-error", { message: "Nothing to roll back: only the defaults (version 0) exist." });
      return;
    }
    const found = historyVersions.find((v) => v.version === target);
    const body = el("div", {}, el("p", { text: `A new version is written with the settings of version ${target}; the history keeps every version.` }),
      found ? (diffTable(thresholds.settings, found.settings) || el("p", { class: "meta", text: "Its settings equal the ones in force." })) : null);
    if (!(await confirmDialog(`Roll back to version ${target}?`, body, "Roll back"))) return;
    try {
      const saved = await api("POST", "/admin/thresholds/rollback", { body: { to_version: target } });
      toast(`Rolled back: version ${saved.version} now has the settings of version ${target}.`);
      await loadThresholds();
    } catch (err) {
      showError("thresholds-error", err);
    }
  }

  function renderHistory() {
    const tbody = clear($("history-table").tBodies[0]);
    for (const v of historyVersions) {
      const isCurrent = v.version === thresholds.version;
      tbody.append(el("tr", { class: isCurrent ? "active-row" : null, "data-version": v.version },
        el("td", {}, String(v.version), isCurrent ? [" ", el("span", { class: "badge ok", text: "in force" })] : null),
        el("td", { text: when(v.created_at) }),
        el("td", { text: String(v.actor ?? "—") }),
        el("td", { text: settingsSummary(v.settings || {}) }),
        el("td", { text: v.note ? String(v.note) : "" }),
        el("td", {}, isCurrent ? null : el("button", { type: "button", class: "secondary",
          "aria-label": `Restore version ${v.version}`, text: "Restore…", onclick: () => rollbackThresholds(v.version) }))));
    }
  }

  // ------------------------------------------------------------------ why-this page

  async function whyThis(event) {
    event.preventDefault();
    showError("why-error", null);
    const customer = $("why-customer").value.trim();
    const k = Number($("why-k").value || 10);
    if (!customer) {
      showError("why-error", { message: "Enter a customer id." });
      return;
    }
    if (!Number.isInteger(k) || k < 1 || k > 50) {
      showError("why-error", { message: "How many: enter a whole number from 1 to 50." });
      return;
    }
    const list = clear($("why-items"));
    $("why-meta").textContent = "Loading…";
    const query = new URLSearchParams({ customer_id: customer, k: String(k), explain: "true" });
    try {
      const result = await api("GET", `/recommendations?${query}`);
      // Deliberately no customer id here: the service answers with pseudonyms, and the
      // admin already sees what they typed in the box.
      const status = { known: "known customer", cold_start: "unknown customer (cold start: popular items)",
        not_personalised: "no personalisation consent (non-personalised list)" }[result.customer_status] || String(result.customer_status);
      $("why-meta").textContent = `${result.items.length} recommendations · ${status} · model ${result.model_version}`;
      for (const item of result.items) list.append(itemCard(item));
      if (!result.items.length) list.append(el("li", { class: "meta", text: "No items matched." }));
    } catch (err) {
      $("why-meta").textContent = "";
      showError("why-error", err);
    }
  }

  function itemCard(item) {
    const reason = item.reason || null;
    const facts = [item.category, item.price === null || item.price === undefined ? null : `price ${num(item.price, 2)}`,
      `score ${num(item.score, 4)}`].filter(Boolean).join(" · ");
    const card = el("li", { class: "card", "data-item": item.item_id },
      el("h3", {}, `${item.rank}. `, el("span", { class: "item-title", text: String(item.title ?? item.item_id) })),
      el("p", { class: "meta", text: facts }));
    if (reason) {
      card.append(el("p", { class: "reason" }, el("strong", { text: "Why: " }), String(reason.text ?? ""), " ",
        el("span", { class: reason.verified ? "badge ok" : "badge", text: reason.verified ? "verified" : "not verified" })));
      const evidence = reason.evidence || [];
      if (evidence.length) {
        card.append(el("p", { class: "help" }, "Evidence: ",
          evidence.map((e, i) => [i ? ", " : "", el("span", { class: "evidence", text: String(e.title ?? e.item_id) })])));
      }
    }
    const attr = item.attributions;
    if (attr && attr.contributions && attr.contributions.length) {
      card.append(el("div", { class: "shap" }, shapChart(attr)));
    } else {
      card.append(el("p", { class: "help", text: "No SHAP contributions: no ranker scored this item (cold start)." }));
    }
    return card;
  }

  function shapChart(attr) {
    const top = attr.contributions.slice().sort((a, b) => Math.abs(b.shap) - Math.abs(a.shap)).slice(0, 8);
    const rest = attr.contributions.length - top.length;
    const restSum = attr.contributions.reduce((acc, c) => acc + c.shap, 0) - top.reduce((acc, c) => acc + c.shap, 0);
    const rows = rest > 0 ? [...top, { label: `${rest} other features`, shap: restSum, value: null, other: true }] : top;
    const w = 820, rowH = 22, labelW = 370, valueW = 70, top0 = 8;
    const h = top0 + rows.length * rowH + 30;
    const maxAbs = Math.max(...rows.map((r) => Math.abs(r.shap)), 1e-9);
    const mid = labelW + (w - labelW - valueW) / 2;
    const scale = (w - labelW - valueW) / 2 / maxAbs;
    const s = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img",
      "aria-label": `SHAP contributions: base ${num(attr.base_value, 3)} plus contributions gives score ${num(attr.score, 3)}` });
    s.append(svg("line", { class: "axis", x1: mid, x2: mid, y1: top0 - 4, y2: top0 + rows.length * rowH }));
    rows.forEach((r, i) => {
      const yy = top0 + i * rowH;
      const width = Math.max(1, Math.abs(r.shap) * scale);
      const label = r.other ? r.label : String(r.label ?? r.feature) + (r.value === null || r.value === undefined ? "" : ` = ${formatFeature(r.value)}`);
      s.append(svg("text", { x: labelW - 8, y: yy + 15, "text-anchor": "end", text: label }));
      const bar = svg("rect", { class: r.shap >= 0 ? "bar-pos" : "bar-neg", x: r.shap >= 0 ? mid : mid - width, y: yy + 4, width, height: rowH - 8 });
      bar.append(svg("title", { text: `${label}: ${signed(r.shap, 4)}` }));
      s.append(bar, svg("text", { x: w - valueW + 6, y: yy + 15, text: signed(r.shap, 3) }));
    });
    s.append(svg("text", { x: 4, y: h - 8, class: "muted-text",
      text: `base ${num(attr.base_value, 3)} + contributions = score ${num(attr.score, 3)}` }));
    s.append(svg("text", { x: mid, y: h - 8, "text-anchor": "middle", class: "muted-text", text: "← lowers · raises →" }));
    return s;
  }

  function formatFeature(v) {
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(4)));
  }

  // ------------------------------------------------------------------ models page

  let models = null;

  async function loadModels() {
    showError("models-error", null);
    try {
      models = await api("GET", "/admin/models");
    } catch (err) {
      showError("models-error", err);
      return;
    }
    const list = models.models || [];
    $("models-meta").textContent = models.active ? `Active model: ${models.active} (${list.length} versions kept)` : "No active model: train one with `clearshelf train`.";
    const previous = previousModel();
    const rb = $("models-rollback");
    rb.disabled = !previous;
    rb.textContent = previous ? `Roll back to the previous model (${previous.version})…` : "Roll back to the previous model…";
    const tbody = clear($("models-table").tBodies[0]);
    for (const m of list) {
      const data = m.data || {};
      const trainedOn = [data.events !== undefined ? `${data.events} events` : null,
        data.customers !== undefined ? `${data.customers} customers` : null,
        data.items !== undefined ? `${data.items} items` : null].filter(Boolean).join(", ");
      tbody.append(el("tr", { class: m.active ? "active-row" : null, "data-version": m.version },
        el("td", {}, el("code", { text: String(m.version) })),
        el("td", { text: when(m.created_at) }),
        el("td", { text: trainedOn || "—" }),
        el("td", {}, metricList(m.metrics || {})),
        el("td", {}, m.active ? el("span", { class: "badge ok", text: "active" })
          : el("button", { type: "button", class: "secondary", "aria-label": `Activate model ${m.version}`,
            text: "Activate…", onclick: () => activateModel(m.version) }))));
    }
  }

  function metricList(metrics) {
    const items = [];
    for (const [k, v] of Object.entries(metrics)) {
      if (typeof v === "number") items.push(el("li", { text: `${k}: ${formatFeature(v)}` }));
    }
    const gain = metrics.feature_importance_gain;
    if (gain && typeof gain === "object") {
      const topFeatures = Object.entries(gain).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k]) => k);
      if (topFeatures.length) items.push(el("li", { text: `top features: ${topFeatures.join(", ")}` }));
    }
    return items.length ? el("ul", { class: "help" }, items) : "—";
  }

  function previousModel() {
    const list = (models && models.models) || [];
    const i = list.findIndex((m) => m.active);
    return i >= 0 && i + 1 < list.length ? list[i + 1] : null;
  }

  async function activateModel(version) {
    const body = el("p", { text: `Serving switches to model ${version} without dropping requests. The current model (${models.active}) stays available to switch back to.` });
    if (!(await confirmDialog(`Activate model ${version}?`, body, "Activate"))) return;
    try {
      await api("POST", `/admin/models/${encodeURIComponent(version)}/activate`);
      toast(`Model ${version} is active.`);
    } catch (err) {
      showError("models-error", err);
    }
    await loadModels();
  }

  // ------------------------------------------------------------------ audit log page

  const LOG_PAGE = 100;

  async function loadLog(beforeId) {
    showError("log-error", null);
    const query = new URLSearchParams({ limit: String(LOG_PAGE) });
    const action = $("log-action").value.trim();
    if (action) query.set("action", action);
    if (beforeId) query.set("before_id", String(beforeId));
    let entries;
    try {
      entries = (await api("GET", `/admin/audit-log?${query}`)).entries || [];
    } catch (err) {
      showError("log-error", err);
      return;
    }
    const tbody = $("log-table").tBodies[0];
    if (!beforeId) clear(tbody);
    for (const e of entries) {
      tbody.append(el("tr", { "data-action": e.action, "data-id": e.id },
        el("td", { text: when(e.at) }),
        el("td", {}, e.key_id ? el("code", { text: String(e.key_id) }) : "—"),
        el("td", {}, el("code", { text: String(e.action) })),
        el("td", { text: e.target ? String(e.target) : "" }),
        el("td", { class: "help" }, logDetail(e.detail || {}))));
    }
    if (!beforeId && !entries.length) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "meta", text: action ? `No entries with action ${action}.` : "No entries yet." })));
    const older = $("log-older");
    older.hidden = entries.length < LOG_PAGE;
    older.dataset.before = entries.length ? String(entries[entries.length - 1].id) : "";
  }

  // {"changes": {"policy.rerank_strength": {"old": 0, "new": 0.4}}, ...} -> "policy.rerank_strength: 0 → 0.4; ..."
  function logDetail(detail) {
    const parts = [];
    const { changes, ...rest } = detail;
    if (changes && typeof changes === "object") {
      for (const [k, v] of Object.entries(changes)) parts.push(`${k}: ${showValue(v && v.old)} → ${showValue(v && v.new)}`);
    }
    for (const [k, v] of Object.entries(rest)) {
      parts.push(`${k}: ${v !== null && typeof v === "object" ? JSON.stringify(v) : showValue(v)}`);
    }
    return parts.join("; ");
  }

  const LOADERS = { fairness: loadFairness, thresholds: loadThresholds, why: () => $("why-customer").focus(), models: loadModels, log: () => loadLog() };

  // ------------------------------------------------------------------ wiring

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(null));
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => go(tab.dataset.page));
    window.addEventListener("hashchange", () => { const p = pageFromHash(); if (p && p !== current) show(p); });
    $("open-report").addEventListener("click", openFullReport);
    $("run-audit").addEventListener("click", runAudit);
    $("train-model").addEventListener("click", trainModel);
    $("rerank-strength").addEventListener("input", () => {
      $("rerank-strength-out").textContent = num($("rerank-strength").value, 2);
      schedulePreview();
    });
    $("min-score-on").addEventListener("change", () => {
      $("min-score").disabled = !$("min-score-on").checked;
      if ($("min-score-on").checked && $("min-score").value === "") $("min-score").value = "0";
      schedulePreview();
    });
    $("min-score").addEventListener("input", () => schedulePreview());
    $("apply-thresholds").addEventListener("click", applyThresholds);
    $("reset-thresholds").addEventListener("click", () => { if (thresholds) { fillForm(thresholds.settings); schedulePreview(0); } });
    $("rollback-thresholds").addEventListener("click", () => rollbackThresholds(undefined));
    $("why-form").addEventListener("submit", whyThis);
    $("log-form").addEventListener("submit", (event) => { event.preventDefault(); loadLog(); });
    $("log-older").addEventListener("click", () => loadLog(Number($("log-older").dataset.before)));
    $("models-rollback").addEventListener("click", () => { const p = previousModel(); if (p) activateModel(p.version); });
    if (adminKey()) {
      showSignedIn(true);
      go(pageFromHash() || "fairness");
    } else {
      showSignedIn(false);
      $("api-key").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
