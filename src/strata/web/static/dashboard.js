// The operator dashboard: every service of the node, probed by the web server every two
// seconds (/api/services): health, request rate, shedding, firehose lag, loop lag, memory and
// breaker states, with the last two minutes drawn as small charts.

import { h } from "./dom.js";

const EVERY_MS = 2000;
const KEEP = 60;

function sparkline(values, label) {
  const width = 120;
  const height = 28;
  const finite = values.filter((v) => Number.isFinite(v));
  const top = Math.max(1e-9, ...finite);
  const step = width / Math.max(1, KEEP - 1);
  const offset = KEEP - values.length;
  const points = values
    .map((v, i) => (Number.isFinite(v) ? `${((offset + i) * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}` : null))
    .filter(Boolean)
    .join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

function fixed(value, digits, unit) {
  return Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : "–";
}

// The operator labels a post or an account with the node's labeler (its admin password, from
// data/labeler/secrets.json, is asked for and sent to the labeler only).
function labelForm() {
  const field = (id, label, attrs = {}) => [h("label", { for: id }, label), h("input", { id, ...attrs })];
  const status = h("p", { role: "status" });
  const form = h(
    "form",
    { class: "card label-form" },
    h("h3", {}, "Label a post or an account"),
    ...field("label-uri", "at:// URI of a post, or an account's DID", { required: true }),
    ...field("label-val", "Label", { required: true, placeholder: "!warn" }),
    h("label", {}, h("input", { id: "label-neg", type: "checkbox" }), " Take the label back"),
    ...field("label-password", "Labeler admin password", { type: "password", required: true, autocomplete: "off" }),
    h("button", { type: "submit", class: "primary" }, "Label"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (id) => form.querySelector(`#${id}`);
    status.textContent = "";
    try {
      const services = (await (await fetch("/api/services")).json()).services;
      const labeler = services.find((s) => s.name === "labeler");
      if (!labeler) throw new Error("this node runs no labeler");
      const response = await fetch(`${labeler.url}/admin/label`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Basic ${btoa(`admin:${value("label-password").value}`)}` },
        body: JSON.stringify({ uri: value("label-uri").value.trim(), val: value("label-val").value.trim(), neg: value("label-neg").checked }),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.message || answer.error);
      status.textContent = `${answer.neg ? "Took back" : "Labeled"} ${answer.uri}: ${answer.val}`;
    } catch (error) {
      status.textContent = `Could not label: ${error.message}`;
    }
  });
  return form;
}

export function renderDashboard(app, view) {
  const history = new Map();
  const table = h("tbody");
  const breakers = h("ul", { class: "breakers" });
  const updated = h("p", { class: "muted", "aria-live": "off" });
  view.append(
    h("h2", {}, "Dashboard"),
    updated,
    h(
      "table",
      { class: "services" },
      h("caption", { class: "visually-hidden" }, "Services of this node"),
      h("thead", {}, h("tr", {}, ...["Service", "Health", "Latency", "Requests/s", "", "Shed", "In flight", "Loop lag", "Firehose lag", "", "Memory"].map((t) => h("th", { scope: "col" }, t)))),
      table,
    ),
    h("h3", {}, "Circuit breakers"),
    breakers,
    labelForm(),
  );
  let previous = null;
  let timer = null;
  let stopped = false;

  const tick = async () => {
    let answer;
    try {
      answer = await (await fetch("/api/services")).json();
    } catch {
      updated.textContent = "The web server cannot be reached.";
      return;
    }
    const now = performance.now();
    table.replaceChildren();
    breakers.replaceChildren();
    for (const s of answer.services) {
      const before = previous && previous.values.get(s.name);
      const rate = before ? Math.max(0, (s.requests - before.requests) / ((now - previous.at) / 1000)) : NaN;
      const series = history.get(s.name) || { rate: [], lag: [] };
      series.rate = [...series.rate, rate].slice(-KEEP);
      series.lag = [...series.lag, s.firehose_lag_s ?? NaN].slice(-KEEP);
      history.set(s.name, series);
      const ok = s.health === "ok";
      table.append(
        h(
          "tr",
          { "data-service": s.name },
          h("th", { scope: "row" }, h("a", { href: s.url }, s.name)),
          h("td", { class: ok ? "ok" : "bad" }, s.health),
          h("td", {}, fixed(s.latency_ms, 1, " ms")),
          h("td", {}, fixed(rate, 1, "")),
          h("td", {}, sparkline(series.rate, `${s.name} requests per second`)),
          h("td", {}, String(s.shed || 0)),
          h("td", {}, String(s.in_flight || 0)),
          h("td", {}, fixed(s.loop_lag_ms, 1, " ms")),
          h("td", {}, s.firehose_lag_s == null ? "–" : fixed(s.firehose_lag_s, 2, " s") + (s.disconnected_s ? `, no relay for ${s.disconnected_s.toFixed(0)} s` : "")),
          h("td", {}, s.firehose_lag_s == null ? "" : sparkline(series.lag, `${s.name} firehose lag`)),
          h("td", {}, s.memory_bytes ? `${(s.memory_bytes / 2 ** 20).toFixed(0)} MiB` : "–"),
        ),
      );
      for (const b of s.breakers || []) {
        breakers.append(
          h("li", {}, h("span", { class: `pill ${b.state === "closed" ? "ok" : "bad"}` }, b.state), ` ${s.name} → ${b.pool} ${b.endpoint}`),
        );
      }
    }
    if (!breakers.children.length) breakers.append(h("li", { class: "muted" }, "No upstream called yet."));
    previous = { at: now, values: new Map(answer.services.map((s) => [s.name, s])) };
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; every ${EVERY_MS / 1000} s.`;
  };

  const loop = async () => {
    await tick();
    if (!stopped) timer = setTimeout(loop, EVERY_MS);
  };
  app.stopView = () => {
    stopped = true;
    clearTimeout(timer);
  };
  return loop();
}
