// A post as the timeline, feeds, profiles and threads show it, with its actions (reply,
// repost, quote, like), and the compose dialog.

import { h, count, since, webLink } from "./dom.js";
import { behindWarning, decide } from "./moderation.js";
import { detectFacets, graphemes, renderText } from "./richtext.js";

export function postPath(uri) {
  return `#/thread/${encodeURIComponent(uri)}`;
}

function avatar(author, size = "") {
  return author.avatar
    ? h("img", { class: `avatar ${size}`, src: author.avatar, alt: "" })
    : h("span", { class: `avatar ${size} blank`, "aria-hidden": "true" }, (author.handle || "?")[0]);
}

function authorLine(author, indexedAt) {
  return h(
    "div",
    { class: "author" },
    h("a", { href: `#/profile/${author.did}`, class: "name" }, author.displayName || author.handle),
    h("span", { class: "handle" }, `@${author.handle}`),
    indexedAt ? h("time", { datetime: indexedAt, title: indexedAt }, since(indexedAt)) : null,
  );
}

function images(view) {
  return h(
    "div",
    { class: `images n${view.images.length}` },
    view.images.map((image) =>
      h("a", { href: webLink(image.fullsize), target: "_blank", rel: "noopener" },
        h("img", { src: image.thumb, alt: image.alt || "", loading: "lazy" })),
    ),
  );
}

function quoted(record) {
  if (!record || !record.author) {
    return h("div", { class: "quote missing" }, "The quoted post is not available.");
  }
  const value = record.value || {};
  return h(
    "a",
    { class: "quote", href: postPath(record.uri) },
    authorLine(record.author, record.indexedAt),
    h("p", {}, value.text || ""),
  );
}

function embed(view) {
  if (!view) return null;
  switch (view.$type) {
    case "app.bsky.embed.images#view":
      return images(view);
    case "app.bsky.embed.external#view":
      return h(
        "a",
        {
          class: "external",
          href: webLink(view.external.uri),
          target: "_blank",
          rel: "noopener noreferrer",
        },
        h("strong", {}, view.external.title || view.external.uri),
        h("span", {}, view.external.description || ""),
      );
    case "app.bsky.embed.record#view":
      return quoted(view.record);
    case "app.bsky.embed.recordWithMedia#view":
      return h("div", {}, embed(view.media), quoted(view.record && view.record.record));
    default:
      return null;
  }
}

// Like and repost toggle: the record is created or deleted, the count follows.
function toggle(app, post, kind, label, collection) {
  const countKey = `${kind}Count`;
  const button = h("button", { type: "button", class: `action ${kind}` });
  const paint = () => {
    const on = Boolean(post.viewer && post.viewer[kind]);
    button.setAttribute("aria-pressed", String(on));
    button.setAttribute("aria-label", `${on ? "Undo " : ""}${label} (${post[countKey] || 0})`);
    button.textContent = `${label} ${count(post[countKey] || 0)}`;
  };
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    button.disabled = true;
    try {
      post.viewer = post.viewer || {};
      const subject = { subject: { uri: post.uri, cid: post.cid } };
      post.viewer[kind] = await app.client.toggleRecord(post.viewer[kind], collection, subject);
      post[countKey] = Math.max(0, (post[countKey] || 0) + (post.viewer[kind] ? 1 : -1));
    } catch (error) {
      app.toast(`Could not ${label.toLowerCase()}: ${error.message}`);
    } finally {
      button.disabled = false;
      paint();
    }
  });
  paint();
  return button;
}

// One post. `reason` is the feed item's reason (a repost), `parent` the post it replies to.
export function renderPost(app, post, { reason, parent, focus } = {}) {
  const record = post.record || {};
  const moderation = decide([...(post.labels || []), ...(post.author.labels || [])], app.moderation);
  if (moderation.hide.length) {
    return h("article", { class: "post hidden-post", "data-uri": post.uri },
      h("p", { class: "muted" }, `A post hidden by a moderation label: ${[...new Set(moderation.hide)].join(", ")}.`));
  }
  let content = [h("p", { class: "text" }, renderText(record.text || "", record.facets)), embed(post.embed)];
  if (moderation.warn.length) content = [behindWarning(moderation.warn, ...content)];
  const article = h(
    "article",
    {
      class: `post${focus ? " focus" : ""}`,
      tabindex: "0",
      "data-uri": post.uri,
      "aria-label": `Post by ${post.author.displayName || post.author.handle}`,
    },
    reason && reason.$type === "app.bsky.feed.defs#reasonRepost"
      ? h("p", { class: "reason" }, `Reposted by ${reason.by.displayName || reason.by.handle}`)
      : null,
    parent && parent.author
      ? h("p", { class: "reason" }, `Replying to @${parent.author.handle}`)
      : null,
    h(
      "div",
      { class: "post-body" },
      avatar(post.author),
      h(
        "div",
        { class: "post-main" },
        authorLine(post.author, post.indexedAt),
        ...content,
        h(
          "div",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              class: "action",
              "aria-label": `Reply (${post.replyCount || 0})`,
              onclick: (event) => {
                event.stopPropagation();
                app.compose({ reply: post });
              },
            },
            `Reply ${count(post.replyCount || 0)}`,
          ),
          toggle(app, post, "repost", "Repost", "app.bsky.feed.repost"),
          h(
            "button",
            {
              type: "button",
              class: "action",
              onclick: (event) => {
                event.stopPropagation();
                app.compose({ quote: post });
              },
            },
            "Quote",
          ),
          toggle(app, post, "like", "Like", "app.bsky.feed.like"),
        ),
      ),
    ),
  );
  const open = (event) => {
    if (event.target.closest("a, button")) return;
    if (!focus) location.hash = postPath(post.uri);
  };
  article.addEventListener("click", open);
  article.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === article) open(event);
  });
  return article;
}

// The compose dialog: text with facets, one image with its description, reply or quote.
export function setupCompose(app) {
  const dialog = document.getElementById("compose");
  const text = document.getElementById("compose-text");
  const image = document.getElementById("compose-image");
  const alt = document.getElementById("compose-alt");
  const counter = document.getElementById("compose-count");
  const error = document.getElementById("compose-error");
  const context = document.getElementById("compose-context");
  const submit = document.getElementById("compose-submit");
  let target = {};

  const update = () => {
    const n = graphemes(text.value);
    counter.textContent = `${n} / 300`;
    counter.classList.toggle("over", n > 300);
    submit.disabled = n > 300 || (!text.value.trim() && !image.files.length);
  };
  text.addEventListener("input", update);
  image.addEventListener("change", () => {
    alt.hidden = !image.files.length;
    update();
  });
  document.getElementById("compose-cancel").addEventListener("click", () => dialog.close());

  document.getElementById("compose-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const resolve = async (handle) => {
        try {
          const answer = await app.client.get("com.atproto.identity.resolveHandle", { handle });
          return answer.did;
        } catch {
          return null;
        }
      };
      const record = { text: text.value, langs: [navigator.language.split("-")[0] || "en"] };
      const facets = await detectFacets(text.value, resolve);
      if (facets.length) record.facets = facets;
      if (target.reply) {
        const parent = { uri: target.reply.uri, cid: target.reply.cid };
        const root = (target.reply.record && target.reply.record.reply && target.reply.record.reply.root) || parent;
        record.reply = { root, parent };
      }
      let media = null;
      if (image.files.length) {
        const uploaded = await app.client.upload(image.files[0]);
        media = {
          $type: "app.bsky.embed.images",
          images: [{ image: uploaded.blob, alt: alt.value || "" }],
        };
      }
      const quote = target.quote
        ? { $type: "app.bsky.embed.record", record: { uri: target.quote.uri, cid: target.quote.cid } }
        : null;
      if (media && quote) {
        record.embed = { $type: "app.bsky.embed.recordWithMedia", record: quote, media };
      } else if (media || quote) {
        record.embed = media || quote;
      }
      const made = await app.client.createRecord("app.bsky.feed.post", record);
      dialog.close();
      app.posted(made.uri);
    } catch (failure) {
      error.textContent = `Could not post: ${failure.message}`;
    } finally {
      submit.disabled = false;
    }
  });

  return ({ reply, quote } = {}) => {
    target = { reply, quote };
    text.value = "";
    image.value = "";
    alt.value = "";
    alt.hidden = true;
    error.textContent = "";
    context.replaceChildren();
    const about = reply || quote;
    if (about) {
      context.append(
        h("p", { class: "reason" }, `${reply ? "Replying to" : "Quoting"} @${about.author.handle}:`),
        h("blockquote", {}, (about.record && about.record.text) || ""),
      );
    }
    document.getElementById("compose-title").textContent = reply ? "Reply" : quote ? "Quote post" : "New post";
    update();
    dialog.showModal();
    text.focus();
  };
}
