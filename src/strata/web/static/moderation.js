// Moderation in the client: what the reader's preferences say to do with the labels on a post
// or an account (show it, warn before it, or hide it), and the page where the reader manages
// mutes, lists and label preferences.

import { h } from "./dom.js";

const PREFS = "app.bsky.actor.defs#contentLabelPref";
const DEFAULTS = { "!hide": "hide", "!warn": "warn", "!no-unauthenticated": "ignore", "!no-promote": "ignore" };
const CHOICES = ["ignore", "warn", "hide"];

// The reader's label preferences, by "labeler|value" (or "|value" for any labeler).
export async function loadPreferences(client) {
  const choices = new Map();
  const answer = await client.get("app.bsky.actor.getPreferences", {});
  for (const pref of answer.preferences || []) {
    if (pref.$type === PREFS) choices.set(`${pref.labelerDid || ""}|${pref.label}`, pref.visibility);
  }
  return { choices, raw: answer.preferences || [] };
}

function visibility(label, prefs) {
  const { choices } = prefs || { choices: new Map() };
  const chosen = choices.get(`${label.src}|${label.val}`) || choices.get(`|${label.val}`);
  return chosen || DEFAULTS[label.val] || "warn";
}

// What to do with content carrying `labels`: { hide: [values], warn: [values] }.
export function decide(labels, prefs) {
  const decision = { hide: [], warn: [] };
  for (const label of labels || []) {
    const seen = visibility(label, prefs);
    if (seen === "hide") decision.hide.push(label.val);
    else if (seen === "warn") decision.warn.push(label.val);
  }
  return decision;
}

// Content behind a warning the reader opens (a native <details>, so the keyboard works too).
export function behindWarning(values, ...content) {
  const names = [...new Set(values)].join(", ");
  return h("details", { class: "label-warning" }, h("summary", {}, `Content warning: ${names}`), ...content);
}

export async function renderModeration(app, view) {
  const client = app.client;
  const me = client.session.did;
  const status = h("p", { class: "muted", role: "status" });
  const section = (title, ...content) => h("section", { class: "card" }, h("h2", {}, title), ...content);

  const mutes = h("ul", { class: "people" });
  const answer = await client.get("app.bsky.graph.getMutes", { limit: 100 });
  for (const person of answer.mutes) {
    mutes.append(h("li", {},
      h("a", { href: `#/profile/${person.did}` }, person.displayName || person.handle), " ",
      h("button", { type: "button", onclick: async () => {
        await client.post("app.bsky.graph.unmuteActor", { actor: person.did });
        app.route();
      } }, "Unmute"),
    ));
  }
  if (!answer.mutes.length) mutes.append(h("li", { class: "muted" }, "You mute nobody."));

  const lists = h("ul", { class: "lists" });
  const mine = await client.get("app.bsky.graph.getLists", { actor: me, limit: 100 });
  for (const list of mine.lists) {
    lists.append(h("li", {}, h("a", { href: `#/list/${encodeURIComponent(list.uri)}` }, list.name),
      ` (${list.purpose.split("#")[1]}, ${list.listItemCount || 0} accounts)`));
  }
  if (!mine.lists.length) lists.append(h("li", { class: "muted" }, "No lists yet."));
  const name = h("input", { id: "list-name", required: true, maxlength: 64, "aria-label": "List name" });
  const purpose = h("select", { id: "list-purpose", "aria-label": "Purpose" },
    h("option", { value: "app.bsky.graph.defs#curatelist" }, "curation (a feed of its accounts)"),
    h("option", { value: "app.bsky.graph.defs#modlist" }, "moderation (to mute or block)"));
  const create = h("form", { class: "inline" }, name, purpose, h("button", { type: "submit" }, "Create list"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    await client.createRecord("app.bsky.graph.list", { name: name.value, purpose: purpose.value });
    status.textContent = `List "${name.value}" created; it appears once indexed.`;
  });

  const prefs = await loadPreferences(client);
  const choices = h("ul", {});
  for (const [key, seen] of prefs.choices) choices.append(h("li", {}, `${key.split("|")[1]}: ${seen}`));
  const value = h("input", { id: "label-value", required: true, placeholder: "spam", "aria-label": "Label" });
  const choice = h("select", { id: "label-choice", "aria-label": "What to do" }, ...CHOICES.map((c) => h("option", { value: c }, c)));
  const choose = h("form", { class: "inline" }, value, choice, h("button", { type: "submit" }, "Save"));
  choose.addEventListener("submit", async (event) => {
    event.preventDefault();
    const kept = prefs.raw.filter((p) => !(p.$type === PREFS && p.label === value.value && !p.labelerDid));
    const preferences = [...kept, { $type: PREFS, label: value.value, visibility: choice.value }];
    await client.post("app.bsky.actor.putPreferences", { preferences });
    app.moderation = await loadPreferences(client);
    app.route();
  });

  view.append(
    status,
    section("Muted accounts", mutes),
    section("Your lists", lists, create),
    section("Labels", h("p", { class: "muted" }, "Posts and accounts with these labels are shown, put behind a warning, or hidden. Labels you have not chosen for are put behind a warning; !hide hides."), choices, choose),
  );
}

export async function renderList(app, view, uri) {
  const client = app.client;
  const answer = await client.get("app.bsky.graph.getList", { list: uri, limit: 100 });
  const list = answer.list;
  const viewer = list.viewer || {};
  const mine = list.creator.did === client.session.did;
  const members = h("ul", { class: "people" });
  for (const item of answer.items) {
    members.append(h("li", {}, h("a", { href: `#/profile/${item.subject.did}` }, item.subject.displayName || item.subject.handle)));
  }
  if (!answer.items.length) members.append(h("li", { class: "muted" }, "Nobody on this list yet."));
  const actions = h("div", { class: "profile-actions" });
  if (list.purpose === "app.bsky.graph.defs#modlist") {
    actions.append(h("button", { type: "button", onclick: async () => {
      await client.post(viewer.muted ? "app.bsky.graph.unmuteActorList" : "app.bsky.graph.muteActorList", { list: uri });
      app.route();
    } }, viewer.muted ? "Unmute list" : "Mute list"));
    actions.append(h("button", { type: "button", onclick: async () => {
      await client.toggleRecord(viewer.blocked, "app.bsky.graph.listblock", { subject: uri });
      app.toast(viewer.blocked ? "List unblocked." : "List blocked; it applies once indexed.");
    } }, viewer.blocked ? "Unblock list" : "Block list"));
  }
  if (mine) {
    const handle = h("input", { id: "member-handle", required: true, placeholder: "bob.test", "aria-label": "Handle to add" });
    const add = h("form", { class: "inline" }, handle, h("button", { type: "submit" }, "Add"));
    add.addEventListener("submit", async (event) => {
      event.preventDefault();
      const found = await client.get("com.atproto.identity.resolveHandle", { handle: handle.value.replace(/^@/, "") });
      await client.createRecord("app.bsky.graph.listitem", { list: uri, subject: found.did });
      app.toast("Added; it appears once indexed.");
    });
    actions.append(add);
  }
  view.append(h("section", { class: "card" }, h("h2", {}, list.name), h("p", { class: "muted" }, list.description || ""), actions, members));
}
