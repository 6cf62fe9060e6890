// The client: routes (#/...), sign-in, home with its feeds, profiles, threads, notifications,
// and the notice shown when an answer is stale or degraded.

import { Client, XrpcError, ago } from "./api.js";
import { h, count, since } from "./dom.js";
import { renderPost, setupCompose, postPath } from "./post.js";
import { renderProviders } from "./providers.js";
import { renderDashboard } from "./dashboard.js";
import { loadPreferences, renderList, renderModeration } from "./moderation.js";
import { beginSignIn } from "./oauth.js";

const FOLLOWING = "following";
const SAVED_FEEDS_KEY = "strata.feeds";
// Background reads whose staleness is not what the reader is looking at.
const QUIET = new Set(["app.bsky.notification.getUnreadCount", "app.bsky.feed.getPosts", "app.bsky.feed.getFeedGenerators"]);
const REASONS = {
  "appview-unreachable": "the AppView is unreachable",
  "appview-upstream-failed": "the AppView could not reach what it depends on",
  "feedgen-unreachable": "the feed generator is unreachable",
  "relays-unreachable": "the AppView has no relay connection, so newer posts may be missing",
};

class App {
  constructor(config) {
    this.config = config;
    this.client = new Client();
    this.view = document.getElementById("view");
    this.notice = document.getElementById("notice");
    this.stale = new Map();
    this.client.onStale = (nsid, stale) => this.noteStaleness(nsid, stale);
    this.feed = sessionStorage.getItem("strata.feed") || FOLLOWING;
    this.stopView = () => {};
    this.compose = setupCompose(this);
    document.getElementById("compose-button").addEventListener("click", () => this.compose());
    document.getElementById("logout").addEventListener("click", () => {
      this.client.logout();
      location.hash = "#/login";
      this.route();
    });
    window.addEventListener("hashchange", () => this.route());
    document.addEventListener("keydown", (event) => this.shortcut(event));
  }

  // --- staleness ---------------------------------------------------------------------------

  noteStaleness(nsid, stale) {
    if (QUIET.has(nsid)) return;
    if (stale) this.stale.set(nsid, stale);
    else this.stale.delete(nsid);
    this.showNotice();
  }

  showNotice() {
    const messages = [];
    for (const [nsid, stale] of this.stale) {
      const what = nsid.endsWith("getTimeline") || nsid.endsWith("getFeed") ? "your feed" : "this page";
      if (stale.degraded && stale.degraded.startsWith("fallback-feed")) {
        messages.push(`Showing a fallback feed instead of the one you chose; ${REASONS["feedgen-unreachable"]}.`);
      } else if (stale.degraded === "local-profile") {
        messages.push("Showing this profile from its own records; the AppView is unreachable.");
      } else if (stale.seconds !== null) {
        const why = REASONS[stale.reason] || "a service it depends on is unreachable";
        messages.push(`Showing ${what} from ${ago(stale.seconds)}; ${why}.`);
      }
    }
    const text = [...new Set(messages)].join(" ");
    this.notice.hidden = !text;
    this.notice.textContent = text;
  }

  toast(text) {
    const node = h("div", { class: "toast", role: "alert" }, text);
    document.body.append(node);
    setTimeout(() => node.remove(), 5000);
  }

  // --- routing -----------------------------------------------------------------------------

  async route() {
    this.stopView();
    this.stopView = () => {};
    this.stale.clear();
    this.showNotice();
    const hash = location.hash.replace(/^#/, "") || "/";
    const [, page, ...rest] = hash.split("/");
    const argument = decodeURIComponent(rest.join("/"));
    const signedIn = this.client.signedIn;
    document.getElementById("compose-button").hidden = !signedIn;
    document.getElementById("logout").hidden = !signedIn;
    for (const link of document.querySelectorAll("[data-nav]")) {
      const active = link.dataset.nav === (page || "home") || (page === "me" && link.dataset.nav === "profile");
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (page === "dashboard") return this.show("Dashboard", (view) => renderDashboard(this, view));
    if (page === "oauth") {
      const params = new URLSearchParams(argument);
      return this.signInWithOAuth(params.get("service"), params.get("handle")).catch((failure) => {
        this.oauthError = failure.message;
        location.hash = "#/login";
      });
    }
    if (!signedIn && page !== "login") {
      location.hash = "#/login";
      return;
    }
    const pages = {
      login: () => this.show("Sign in", (view) => this.login(view)),
      "": () => this.show("Home", (view) => this.home(view)),
      notifications: () => this.show("Notifications", (view) => this.notifications(view)),
      me: () => this.show("Profile", (view) => this.profile(view, this.client.session.did)),
      profile: () => this.show("Profile", (view) => this.profile(view, argument)),
      thread: () => this.show("Thread", (view) => this.thread(view, argument)),
      providers: () => this.show("Your providers", (view) => renderProviders(this, view)),
      moderation: () => this.show("Moderation", (view) => renderModeration(this, view)),
      list: () => this.show("List", (view) => renderList(this, view, argument)),
    };
    if (signedIn && !this.moderation) {
      try {
        this.moderation = await loadPreferences(this.client);
      } catch {
        // Without preferences, labels get their defaults (warn; !hide hides).
      }
    }
    const show = pages[page] || pages[""];
    await show();
    if (signedIn) this.refreshUnread();
  }

  async show(title, render) {
    document.title = `${title} · Strata`;
    this.view.replaceChildren(h("h1", { class: "visually-hidden" }, title));
    try {
      await render(this.view);
    } catch (error) {
      if (error instanceof XrpcError && error.status === 401 && !this.client.signedIn) {
        location.hash = "#/login";
        return;
      }
      this.view.append(h("p", { class: "error", role: "alert" }, `Could not load: ${error.message}`));
    }
  }

  shortcut(event) {
    if (event.target.closest("input, textarea, select, dialog") || event.metaKey || event.ctrlKey) return;
    const posts = [...this.view.querySelectorAll("article.post")];
    const at = posts.indexOf(document.activeElement);
    if (event.key === "j" || event.key === "k") {
      const next = posts[event.key === "j" ? at + 1 : Math.max(0, at - 1)];
      if (next) {
        next.focus();
        event.preventDefault();
      }
    } else if (event.key === "n" && this.client.signedIn) {
      event.preventDefault();
      this.compose();
    }
  }

  // --- sign in -----------------------------------------------------------------------------

  login(view) {
    const error = h("p", { class: "error", role: "alert" });
    const service = h("input", { id: "login-service", name: "service", type: "url", required: true, value: this.config.pds });
    const identifier = h("input", { id: "login-identifier", name: "identifier", autocomplete: "username", required: true });
    const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const form = h(
      "form",
      { class: "card login" },
      h("h2", {}, "Sign in"),
      h("label", { for: "login-service" }, "Hosting provider (your PDS)"),
      service,
      h("label", { for: "login-identifier" }, "Handle or email"),
      identifier,
      h("label", { for: "login-password" }, "Password"),
      password,
      error,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await this.client.login(service.value, identifier.value.trim().replace(/^@/, ""), password.value);
        location.hash = "#/";
      } catch (failure) {
        error.textContent = `Could not sign in: ${failure.message}`;
      }
    });
    // OAuth: the password is typed on the PDS's own page, never here.
    const oauth = h("button", { type: "button", id: "login-oauth" }, "Sign in on your PDS's page (OAuth)");
    oauth.addEventListener("click", async () => {
      error.textContent = "";
      if (!service.reportValidity()) return;
      const handle = identifier.value.trim().replace(/^@/, "");
      try {
        await this.signInWithOAuth(service.value, handle);
      } catch (failure) {
        error.textContent = `Could not sign in: ${failure.message}`;
      }
    });
    form.append(oauth);
    if (this.oauthError) {
      error.textContent = `Could not sign in: ${this.oauthError}`;
      this.oauthError = null;
    }
    view.append(form);
    identifier.focus();
  }

  async signInWithOAuth(service, handle) {
    // A loopback client is sent back to 127.0.0.1, so on localhost sign-in starts there.
    if (location.hostname === "localhost") {
      const params = new URLSearchParams({ service, handle });
      location.assign(`${location.protocol}//127.0.0.1:${location.port}/#/oauth/${params}`);
      return;
    }
    await beginSignIn(service, handle);
  }

  // --- home and feeds ----------------------------------------------------------------------

  savedFeeds() {
    const saved = JSON.parse(localStorage.getItem(SAVED_FEEDS_KEY) || "[]");
    return [...new Set([...this.config.feeds, ...saved])];
  }

  async home(view) {
    const feeds = this.savedFeeds();
    const names = new Map();
    if (feeds.length) {
      try {
        const answer = await this.client.get("app.bsky.feed.getFeedGenerators", { feeds });
        for (const generator of answer.feeds) names.set(generator.uri, generator.displayName);
      } catch {
        // Names are a nicety: the tabs fall back to the feeds' record keys.
      }
    }
    if (this.feed !== FOLLOWING && !feeds.includes(this.feed)) this.feed = FOLLOWING;
    const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Feeds" });
    const list = h("div", { class: "feed", id: "feed-list", role: "tabpanel" });
    const addTab = (id, label) => {
      const tab = h("button", {
        type: "button",
        role: "tab",
        "aria-selected": String(id === this.feed),
        "data-feed": id,
        onclick: () => {
          this.feed = id;
          sessionStorage.setItem("strata.feed", id);
          for (const other of tabs.querySelectorAll("[role=tab]")) {
            other.setAttribute("aria-selected", String(other === tab));
          }
          this.stale.clear();
          this.showNotice();
          this.loadFeed(list);
        },
      }, label);
      tabs.append(tab);
    };
    addTab(FOLLOWING, "Following");
    for (const uri of feeds) addTab(uri, names.get(uri) || uri.split("/").pop());
    const input = h("input", { id: "add-feed", placeholder: "at://did:.../app.bsky.feed.generator/...", "aria-label": "Feed URI" });
    const addFeed = h(
      "form",
      { class: "add-feed" },
      input,
      h("button", { type: "submit" }, "Add feed"),
    );
    addFeed.addEventListener("submit", (event) => {
      event.preventDefault();
      const uri = input.value.trim();
      if (!/^at:\/\/[^/]+\/app\.bsky\.feed\.generator\/[^/]+$/.test(uri)) {
        this.toast("A feed is named by its at:// URI: at://<did>/app.bsky.feed.generator/<name>");
        return;
      }
      const saved = JSON.parse(localStorage.getItem(SAVED_FEEDS_KEY) || "[]");
      localStorage.setItem(SAVED_FEEDS_KEY, JSON.stringify([...new Set([...saved, uri])]));
      this.feed = uri;
      sessionStorage.setItem("strata.feed", uri);
      this.route();
    });
    view.append(tabs, addFeed, list);
    await this.loadFeed(list);
  }

  feedPage(cursor) {
    const params = { limit: 30, cursor };
    if (this.feed === FOLLOWING) return this.client.get("app.bsky.feed.getTimeline", params);
    return this.client.get("app.bsky.feed.getFeed", { ...params, feed: this.feed });
  }

  // A list of posts that loads more as the reader nears its end.
  async infinite(list, fetchPage, render) {
    this.stopView();
    list.replaceChildren();
    const sentinel = h("div", { class: "more", "aria-hidden": "true" });
    let cursor;
    let loading = false;
    let done = false;
    const token = {};
    this.listToken = token;
    const more = async () => {
      if (loading || done) return;
      loading = true;
      sentinel.textContent = "Loading…";
      try {
        const page = await fetchPage(cursor);
        if (this.listToken !== token) return;
        render(page, list, sentinel);
        cursor = page.cursor;
        done = !cursor;
        sentinel.textContent = done ? (list.children.length > 1 ? "End of feed" : "Nothing here yet.") : "";
      } catch (error) {
        sentinel.textContent = "";
        sentinel.before(h("p", { class: "error", role: "alert" }, `Could not load: ${error.message}`));
        done = true;
      } finally {
        loading = false;
      }
    };
    list.append(sentinel);
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) more();
    }, { rootMargin: "600px" });
    observer.observe(sentinel);
    this.stopView = () => observer.disconnect();
    await more();
  }

  loadFeed(list) {
    return this.infinite(list, (cursor) => this.feedPage(cursor), (page, into, sentinel) => {
      for (const item of page.feed) {
        sentinel.before(renderPost(this, item.post, { reason: item.reason, parent: item.reply && item.reply.parent }));
      }
    });
  }

  // After posting: the post appears once the AppView has indexed it.
  async posted(uri) {
    this.toast("Posted.");
    const route = location.hash;
    for (let attempt = 0; attempt < 20; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (location.hash !== route) return;
      try {
        const answer = await this.client.get("app.bsky.feed.getPosts", { uris: [uri] });
        if (answer.posts.length) break;
      } catch {
        // Not indexed yet, or the AppView is away: try again shortly.
      }
    }
    if (location.hash === route) this.route();
  }

  // --- profiles ----------------------------------------------------------------------------

  async profile(view, actor) {
    const profile = await this.client.get("app.bsky.actor.getProfile", { actor });
    const me = profile.did === this.client.session.did;
    const viewer = profile.viewer || {};
    const buttons = h("div", { class: "profile-actions" });
    const subject = { subject: profile.did };
    const follow = async () => {
      viewer.following = await this.client.toggleRecord(viewer.following, "app.bsky.graph.follow", subject);
    };
    const block = async () => {
      viewer.blocking = await this.client.toggleRecord(viewer.blocking, "app.bsky.graph.block", subject);
    };
    const mute = async () => {
      await this.client.post(viewer.muted ? "app.bsky.graph.unmuteActor" : "app.bsky.graph.muteActor", { actor: profile.did });
      viewer.muted = !viewer.muted;
    };
    const paint = () => {
      buttons.replaceChildren();
      if (me) return;
      const action = (label, pressed, run) =>
        h("button", {
          type: "button",
          class: pressed ? "" : "primary",
          "aria-pressed": String(Boolean(pressed)),
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              await run();
            } catch (error) {
              this.toast(`Could not ${label.toLowerCase()}: ${error.message}`);
            }
            paint();
          },
        }, label);
      if (!viewer.blocking) buttons.append(action(viewer.following ? "Unfollow" : "Follow", viewer.following, follow));
      buttons.append(action(viewer.muted ? "Unmute" : "Mute", viewer.muted, mute));
      buttons.append(action(viewer.blocking ? "Unblock" : "Block", viewer.blocking, block));
    };
    paint();
    view.append(
      h(
        "section",
        { class: "card profile", "aria-label": "Profile" },
        profile.avatar ? h("img", { class: "avatar large", src: profile.avatar, alt: "" }) : null,
        h("h2", {}, profile.displayName || profile.handle),
        h("p", { class: "handle" }, `@${profile.handle}`, viewer.followedBy ? h("span", { class: "pill" }, "Follows you") : null),
        profile.description ? h("p", { class: "bio" }, profile.description) : null,
        h(
          "p",
          { class: "stats" },
          h("span", {}, h("strong", {}, count(profile.followersCount)), " followers"),
          h("span", {}, h("strong", {}, count(profile.followsCount)), " following"),
          h("span", {}, h("strong", {}, count(profile.postsCount)), " posts"),
        ),
        buttons,
      ),
    );
    const list = h("div", { class: "feed" });
    view.append(list);
    if (viewer.blocking || viewer.blockedBy) {
      list.append(h("p", { class: "muted" }, viewer.blocking ? "You block this account." : "This account blocks you."));
      return;
    }
    await this.infinite(
      list,
      (cursor) => this.client.get("app.bsky.feed.getAuthorFeed", { actor: profile.did, limit: 30, cursor }),
      (page, into, sentinel) => {
        for (const item of page.feed) sentinel.before(renderPost(this, item.post, { reason: item.reason }));
      },
    );
  }

  // --- threads -----------------------------------------------------------------------------

  async thread(view, uri) {
    const answer = await this.client.get("app.bsky.feed.getPostThread", { uri, depth: 6, parentHeight: 20 });
    const thread = answer.thread;
    if (thread.$type !== "app.bsky.feed.defs#threadViewPost") {
      view.append(h("p", { class: "muted" }, thread.blocked ? "This post is not available to you." : "Post not found."));
      return;
    }
    const parents = [];
    for (let node = thread.parent; node && node.post; node = node.parent) parents.unshift(node.post);
    const column = h("div", { class: "thread" });
    for (const post of parents) column.append(renderPost(this, post));
    const main = renderPost(this, thread.post, { focus: true });
    const root = (thread.post.record.reply && thread.post.record.reply.root.uri) || thread.post.uri;
    let muted = Boolean(thread.post.viewer && thread.post.viewer.threadMuted);
    const muteThread = h("button", { type: "button", class: "mute-thread", onclick: async () => {
      await this.client.post(muted ? "app.bsky.graph.unmuteThread" : "app.bsky.graph.muteThread", { root });
      muted = !muted;
      muteThread.textContent = muted ? "Unmute thread" : "Mute thread";
    } }, muted ? "Unmute thread" : "Mute thread");
    column.append(main, muteThread);
    const replies = (node, depth) => {
      for (const reply of node.replies || []) {
        if (!reply.post) continue;
        const item = renderPost(this, reply.post);
        item.classList.add("reply");
        item.style.setProperty("--depth", depth);
        column.append(item);
        replies(reply, depth + 1);
      }
    };
    replies(thread, 1);
    view.append(column);
    main.focus();
  }

  // --- notifications -----------------------------------------------------------------------

  async notifications(view) {
    const words = {
      like: "liked your post",
      repost: "reposted your post",
      follow: "followed you",
      mention: "mentioned you",
      reply: "replied to you",
      quote: "quoted your post",
    };
    const list = h("ul", { class: "notifications" });
    view.append(list);
    const answer = await this.client.get("app.bsky.notification.listNotifications", { limit: 50 });
    for (const n of answer.notifications) {
      const link = n.reasonSubject ? postPath(n.reasonSubject) : ["reply", "mention", "quote"].includes(n.reason) ? postPath(n.uri) : `#/profile/${n.author.did}`;
      list.append(
        h(
          "li",
          { class: n.isRead ? "" : "unread" },
          h("a", { href: link },
            h("strong", {}, n.author.displayName || n.author.handle),
            ` ${words[n.reason] || n.reason}`,
            n.record && n.record.text && n.reason !== "like" ? h("span", { class: "excerpt" }, `: ${n.record.text}`) : null,
          ),
          h("time", { datetime: n.indexedAt }, since(n.indexedAt)),
        ),
      );
    }
    if (!answer.notifications.length) list.append(h("li", { class: "muted" }, "No notifications yet."));
    try {
      await this.client.post("app.bsky.notification.updateSeen", { seenAt: new Date().toISOString() });
    } catch {
      // Marking as seen can wait for the next visit.
    }
    this.refreshUnread();
  }

  async refreshUnread() {
    const badge = document.getElementById("unread");
    try {
      const answer = await this.client.request(this.client.session.service, "GET", "app.bsky.notification.getUnreadCount", {});
      badge.hidden = !answer.count;
      badge.textContent = answer.count;
      badge.setAttribute("aria-label", `${answer.count} unread`);
    } catch {
      badge.hidden = true;
    }
  }
}

async function start() {
  const config = await (await fetch("/config.json")).json();
  const app = new App(config);
  window.strata = app;
  try {
    await app.client.completeOAuth();
  } catch (failure) {
    app.oauthError = failure.message;
    location.hash = "#/login";
  }
  await app.route();
}

start();
