// The status page: reads the job API with the session cookie and redraws every few seconds.
// Job data is only ever put into the page as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)lg_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (init.method && init.method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign("/login");
    throw new Error("signed out");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function age(seconds) {
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds >= size) return `${Math.round(seconds / size)}${unit}`;
  }
  return `${Math.round(seconds)}s`;
}

function stateOf(job) {
  const now = Date.now() / 1000;
  if (job.state === "queued" && job.not_before > now) return `queued (retry in ${Math.round(job.not_before - now)}s)`;
  if (job.state === "running" && job.cancel_requested) return "cancelling";
  return job.state;
}

function progressOf(job) {
  return job.epoch === null ? "-" : `${job.epoch}/${job.epochs ?? "?"} (${job.step ?? 0})`;
}

function bestOf(job) {
  return job.best_metric === null ? "-" : `${job.metric} ${job.best_metric.toFixed(4)}`;
}

function when(stamp) {
  return stamp ? new Date(stamp * 1000).toLocaleString() : "-";
}

function stateBadge(job) {
  const text = stateOf(job);
  return el("span", text, { class: `state ${text.split(" ")[0]}` });
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

function stamp() {
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// Re-run `step` every REFRESH_MS, after the previous run finished (never two at once).
function every(step) {
  const run = async () => {
    try {
      await step();
      showError("");
      stamp();
    } catch (error) {
      showError(`Could not refresh: ${error.message}`);
    }
    setTimeout(run, REFRESH_MS);
  };
  run();
}

// --- the job list ---------------------------------------------------------------------------------
async function refreshList() {
  const { jobs } = await (await api("/v1/jobs")).json();
  const body = document.querySelector("#jobs tbody");
  const now = Date.now() / 1000;
  const rows = jobs.slice().reverse().map((job) => {
    const row = el("tr", null, { "data-job": job.name, "data-state": job.state });
    const link = el("a", job.name, { href: `/jobs/${encodeURIComponent(job.name)}` });
    const task = { node_classification: "node", link_prediction: "link" }[job.task] || job.task;
    const cells = [["id", job.id], ["name", link], ["task", task], ["state", stateBadge(job)],
      ["attempt", job.attempt], ["progress", progressOf(job)], ["best", bestOf(job)],
      ["age", age(now - job.submitted_at)]];
    for (const [column, value] of cells) {
      const cell = el("td", value instanceof Node ? null : value, { "data-col": column });
      if (value instanceof Node) cell.append(value);
      row.append(cell);
    }
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("empty").hidden = jobs.length > 0;
}

// --- one job --------------------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A line chart of (x, y) points with its value range on the axis; empty while there are none.
function drawChart(svg, points) {
  const W = 420, H = 220, left = 48, right = 12, top = 12, bottom = 28;
  const good = points.filter(([, y]) => y !== null && Number.isFinite(y));
  svg.setAttribute("data-points", String(good.length));
  const parts = [svgNode("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis" }),
    svgNode("line", { x1: left, y1: top, x2: left, y2: H - bottom, class: "axis" })];
  if (good.length === 0) {
    parts.push(svgNode("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label" }, "no epochs yet"));
    svg.replaceChildren(...parts);
    return;
  }
  const xs = good.map(([x]) => x), ys = good.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.05 || 0.5; y1 += Math.abs(y1) * 0.05 || 0.5; }
  const sx = (x) => left + (x1 === x0 ? (W - left - right) / 2 : (x - x0) / (x1 - x0) * (W - left - right));
  const sy = (y) => H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom);
  const path = good.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
  parts.push(svgNode("polyline", { points: path, class: "curve" }));
  for (const [x, y] of good) parts.push(svgNode("circle", { cx: sx(x), cy: sy(y), r: 3, class: "dot" }));
  parts.push(svgNode("text", { x: left - 6, y: top + 8, "text-anchor": "end", class: "label" }, y1.toPrecision(3)));
  parts.push(svgNode("text", { x: left - 6, y: H - bottom, "text-anchor": "end", class: "label" }, y0.toPrecision(3)));
  parts.push(svgNode("text", { x: left, y: H - 8, class: "label" }, `epoch ${x0}`));
  parts.push(svgNode("text", { x: W - right, y: H - 8, "text-anchor": "end", class: "label" }, `epoch ${x1}`));
  svg.replaceChildren(...parts);
}

function showFacts(job) {
  const facts = [["task", job.task], ["attempt", `${job.attempt} (retries ${job.failures}/${job.max_retries})`],
    ["epoch/step", progressOf(job)], ["best", bestOf(job)], ["submitted", when(job.submitted_at)],
    ["run dir", job.run_dir], ["last error", job.last_error || "-"]];
  document.getElementById("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
}

function showAttempts(attempts) {
  const rows = attempts.map((a) => {
    const row = el("tr");
    for (const value of [a.attempt, when(a.started_at), when(a.ended_at), a.outcome || "running", a.exit_code ?? "-"]) {
      row.append(el("td", value));
    }
    return row;
  });
  document.querySelector("#attempts tbody").replaceChildren(...rows);
}

async function refreshJob(name) {
  const path = `/v1/jobs/${encodeURIComponent(name)}`;
  const [detail, metrics, log] = await Promise.all([
    api(path).then((r) => r.json()),
    api(`${path}/metrics`).then((r) => r.json()),
    api(`${path}/logs?offset=-16384`).then((r) => r.text()),
  ]);
  const job = detail.job;
  document.title = `largegraph · ${job.name}`;
  document.getElementById("job-name").textContent = job.name;
  document.getElementById("job-state").replaceWith(Object.assign(stateBadge(job), { id: "job-state" }));
  document.getElementById("cancel").disabled = ["succeeded", "failed", "cancelled"].includes(job.state)
    || Boolean(job.cancel_requested);
  showFacts(job);
  showAttempts(detail.attempts);
  const epochs = metrics.records.filter((r) => r.kind === "epoch");
  const metric = job.metric || "acc";
  document.getElementById("metric-caption").textContent = `validation ${metric}`;
  drawChart(document.getElementById("loss-chart"), epochs.map((r) => [r.epoch, r.loss ?? null]));
  drawChart(document.getElementById("metric-chart"), epochs.map((r) => [r.epoch, r[`valid_${metric}`] ?? null]));
  const logBox = document.getElementById("log");
  const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
  // Progress bars redraw their line with carriage returns: show each line as it was drawn last.
  logBox.textContent = log.split("\n").map((line) => line.split("\r").filter(Boolean).pop() || "").join("\n");
  if (atEnd) logBox.scrollTop = logBox.scrollHeight;
  const config = document.getElementById("config");
  if (!config.textContent) config.textContent = detail.config;
}

function setUpCancel(name) {
  const button = document.getElementById("cancel");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/v1/jobs/${encodeURIComponent(name)}/cancel`, { method: "POST" });
    } catch (error) {
      showError(`Cancel failed: ${error.message}`);
    }
  });
}

function setUpSignOut() {
  document.getElementById("sign-out").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() } });
    location.assign("/login");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpSignOut();
  const [, section, name] = location.pathname.split("/");
  if (section === "jobs" && name) {
    document.getElementById("job-view").hidden = false;
    setUpCancel(decodeURIComponent(name));
    every(() => refreshJob(decodeURIComponent(name)));
  } else {
    document.getElementById("list-view").hidden = false;
    every(refreshList);
  }
});
