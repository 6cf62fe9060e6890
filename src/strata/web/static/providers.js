// "Your providers": the PDS the account lives on (from its DID document), and what that PDS
// and its AppViews depend on (their /xrpc/_upstreams), each with its health as this browser
// sees it, and which fallbacks are in use.

import { pdsEndpoint } from "./api.js";
import { h } from "./dom.js";

const KINDS = [
  ["directory", "Directories (PLC)", "Where the account's DID document is looked up."],
  ["appview", "AppViews", "Build your timeline, threads, profiles and notifications."],
  ["relay", "Relays", "Carry every repository's changes to the AppViews and feed generators."],
  ["feedgen", "Feed generators", "Choose the posts of the custom feeds you have opened."],
];

async function health(url) {
  const started = performance.now();
  try {
    const response = await fetch(`${url}/xrpc/_health`, { signal: AbortSignal.timeout(3000) });
    const ms = Math.round(performance.now() - started);
    return response.ok ? { ok: true, text: `healthy, ${ms} ms` } : { ok: false, text: `unhealthy (${response.status})` };
  } catch {
    return { ok: false, text: "unreachable" };
  }
}

async function upstreams(url) {
  try {
    const response = await fetch(`${url}/xrpc/_upstreams`, { signal: AbortSignal.timeout(3000) });
    return response.ok ? (await response.json()).upstreams : null;
  } catch {
    return null;
  }
}

function row(entry, check, via) {
  const state = h("span", { class: "state" }, "checking…");
  check.then((result) => {
    state.textContent = result.text;
    state.classList.add(result.ok ? "ok" : "bad");
  });
  const tags = [];
  if (entry.inUse) tags.push(h("span", { class: "pill ok" }, entry.fallback ? "fallback in use" : "in use"));
  if (entry.state && !["closed", "connected", "standby"].includes(entry.state)) {
    tags.push(h("span", { class: "pill bad" }, `breaker ${entry.state}`));
  }
  if (entry.state === "standby") tags.push(h("span", { class: "pill" }, "standby"));
  return h(
    "li",
    { class: "provider" },
    h("div", {}, h("strong", {}, entry.url), entry.did ? h("span", { class: "muted" }, ` ${entry.did}`) : null),
    h("div", { class: "provider-state" }, state, ...tags, via ? h("span", { class: "muted" }, ` via ${via}`) : null),
  );
}

// Mark, per kind and per service that listed them, an endpoint in use that is not the first
// listed: the service has fallen back.
function markFallbacks(entries) {
  const first = new Map();
  for (const entry of entries) {
    const key = `${entry.via}|${entry.kind}`;
    if (!first.has(key)) first.set(key, entry);
    else if (entry.inUse) entry.fallback = true;
  }
}

export async function renderProviders(app, view) {
  const session = app.client.session;
  const pds = pdsEndpoint(session.didDoc) || session.service;
  view.append(
    h("h2", {}, "Your providers"),
    h("p", { class: "muted" }, `Everything @${session.handle} depends on, and how each one is doing right now.`),
  );
  const pdsSection = h("section", { class: "card" }, h("h3", {}, "Your PDS"),
    h("p", { class: "muted" }, "Holds your repository and signs in for you; your DID document names it."),
    h("ul", { class: "providers" }, row({ url: pds, inUse: true }, health(pds))));
  view.append(pdsSection);

  const fromPds = (await upstreams(pds)) || [];
  const entries = fromPds.map((entry) => ({ ...entry, via: "your PDS" }));
  const appviews = fromPds.filter((entry) => entry.kind === "appview");
  const nested = await Promise.all(appviews.map((entry) => upstreams(entry.url)));
  nested.forEach((list, i) => {
    for (const entry of list || []) {
      if (entry.kind !== "appview") entries.push({ ...entry, via: `AppView ${appviews[i].url}` });
    }
  });
  markFallbacks(entries);
  const checks = new Map();
  const check = (url) => {
    if (!checks.has(url)) checks.set(url, health(url));
    return checks.get(url);
  };
  for (const [kind, title, about] of KINDS) {
    const mine = entries.filter((entry) => entry.kind === kind);
    const list = h("ul", { class: "providers" });
    for (const entry of mine) list.append(row(entry, check(entry.url), entry.via));
    if (!mine.length) {
      list.append(h("li", { class: "muted" }, kind === "feedgen" ? "None called yet: open a custom feed." : "Not reported by your providers."));
    }
    view.append(h("section", { class: "card", "data-kind": kind }, h("h3", {}, title), h("p", { class: "muted" }, about), list));
  }
  if (!fromPds.length) {
    view.append(h("p", { class: "muted" }, "Your PDS does not report its upstreams (only Strata services answer /xrpc/_upstreams)."));
  }
}
