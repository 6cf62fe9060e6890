// XRPC to the signed-in account's PDS, as the official app does: a session kept in this
// browser (a password session, or OAuth tokens bound to this browser's DPoP key), refreshed
// when its access token expires, and every answer's staleness reported.

import { DpopKey, finishSignIn, refreshTokens, revoke } from "./oauth.js";

const SESSION_KEY = "strata.session";

export class XrpcError extends Error {
  constructor(status, error, message) {
    super(message || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

// How fresh an answer is: null when fresh, else what the services said about it.
export function staleness(headers) {
  const seconds = headers.get("strata-stale-seconds");
  const degraded = headers.get("strata-degraded");
  if (seconds === null && degraded === null) return null;
  return {
    seconds: seconds === null ? null : Number(seconds),
    reason: headers.get("strata-stale-reason"),
    degraded,
  };
}

export class Client {
  constructor() {
    this.session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    this.onStale = () => {};
  }

  get signedIn() {
    return this.session !== null;
  }

  save(session) {
    this.session = session;
    if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else localStorage.removeItem(SESSION_KEY);
  }

  async login(service, identifier, password) {
    const base = service.replace(/\/+$/, "");
    const body = await this.request(base, "POST", "com.atproto.server.createSession", {
      body: { identifier, password },
      anonymous: true,
    });
    this.save({
      service: pdsEndpoint(body.didDoc) || base,
      did: body.did,
      handle: body.handle,
      didDoc: body.didDoc || null,
      accessJwt: body.accessJwt,
      refreshJwt: body.refreshJwt,
    });
  }

  // Back from the PDS's sign-in page: keep the OAuth session. False when this page load is
  // not an OAuth answer.
  async completeOAuth() {
    const session = await finishSignIn();
    if (!session) return false;
    this.save(session);
    const about = await this.get("com.atproto.server.getSession");
    this.save({ ...session, handle: about.handle, didDoc: about.didDoc || null, service: pdsEndpoint(about.didDoc) || session.service });
    return true;
  }

  async dpopKey() {
    if (!this.key) this.key = await DpopKey.load();
    if (!this.key) throw new XrpcError(401, "AuthenticationRequired", "This browser lost its sign-in key; sign in again.");
    return this.key;
  }

  logout() {
    const session = this.session;
    this.save(null);
    if (session && session.kind === "oauth") {
      this.dpopKey().then((key) => revoke(session, key)).catch(() => {});
    } else if (session) {
      fetch(`${session.service}/xrpc/com.atproto.server.deleteSession`, {
        method: "POST",
        headers: { Authorization: `Bearer ${session.refreshJwt}` },
      }).catch(() => {});
    }
  }

  async refresh() {
    const session = this.session;
    if (session.kind === "oauth") {
      try {
        this.save(await refreshTokens(session, await this.dpopKey()));
      } catch {
        this.save(null);
        throw new XrpcError(401, "AuthenticationRequired", "Your session ended; sign in again.");
      }
      return;
    }
    const response = await fetch(`${session.service}/xrpc/com.atproto.server.refreshSession`, {
      method: "POST",
      headers: { Authorization: `Bearer ${session.refreshJwt}` },
    });
    if (!response.ok) {
      this.save(null);
      throw new XrpcError(401, "AuthenticationRequired", "Your session ended; sign in again.");
    }
    const body = await response.json();
    this.save({ ...session, accessJwt: body.accessJwt, refreshJwt: body.refreshJwt });
  }

  async request(base, method, nsid, { params, body, blob, anonymous } = {}) {
    const url = new URL(`${base}/xrpc/${nsid}`);
    for (const [key, value] of Object.entries(params || {})) {
      if (value === undefined || value === null) continue;
      for (const item of [].concat(value)) url.searchParams.append(key, item);
    }
    const oauth = !anonymous && this.session && this.session.kind === "oauth";
    const key = oauth ? await this.dpopKey() : null;
    const send = async () => {
      const headers = {};
      let payload;
      if (blob) {
        headers["Content-Type"] = blob.type || "application/octet-stream";
        payload = blob;
      } else if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
      if (oauth) {
        const accessToken = this.session.accessToken;
        headers.Authorization = `DPoP ${accessToken}`;
        return key.fetch(url.href, { method, headers, body: payload, accessToken });
      }
      if (!anonymous && this.session) headers.Authorization = `Bearer ${this.session.accessJwt}`;
      return fetch(url, { method, headers, body: payload });
    };
    let response;
    try {
      response = await send();
    } catch {
      throw new XrpcError(0, "Unreachable", `${new URL(base).host} cannot be reached.`);
    }
    let answer = await parse(response);
    const expired = oauth ? response.status === 401 && answer.error === "invalid_token" : response.status === 400 && answer.error === "ExpiredToken";
    if (expired && !anonymous) {
      await this.refresh();
      response = await send();
      answer = await parse(response);
    }
    if (!response.ok) throw new XrpcError(response.status, answer.error, answer.message);
    if (method === "GET") this.onStale(nsid, staleness(response.headers));
    return answer;
  }

  get(nsid, params) {
    return this.request(this.session.service, "GET", nsid, { params });
  }

  post(nsid, body) {
    return this.request(this.session.service, "POST", nsid, { body });
  }

  upload(file) {
    return this.request(this.session.service, "POST", "com.atproto.repo.uploadBlob", { blob: file });
  }

  createRecord(collection, record) {
    return this.post("com.atproto.repo.createRecord", {
      repo: this.session.did,
      collection,
      record: { $type: collection, createdAt: new Date().toISOString(), ...record },
    });
  }

  // A like, repost, follow or block switched: the record at `uri` is deleted, or, with no
  // `uri`, the record is created. Returns the new record's URI, or undefined once deleted.
  async toggleRecord(uri, collection, record) {
    if (uri) {
      await this.deleteRecord(uri);
      return undefined;
    }
    return (await this.createRecord(collection, record)).uri;
  }

  deleteRecord(uri) {
    const [, , repo, collection, rkey] = uri.split("/");
    return this.post("com.atproto.repo.deleteRecord", { repo, collection, rkey });
  }
}

async function parse(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { message: text };
  }
}

// The PDS named in a DID document: where the account lives.
export function pdsEndpoint(didDoc) {
  const services = (didDoc && didDoc.service) || [];
  const pds = services.find((s) => s.id === "#atproto_pds" || s.id.endsWith("#atproto_pds"));
  return pds ? String(pds.serviceEndpoint).replace(/\/+$/, "") : null;
}

// A time, as "3 minutes ago".
export function ago(seconds) {
  const units = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const count = Math.floor(seconds / size);
      return `${count} ${name}${count === 1 ? "" : "s"} ago`;
    }
  }
  const count = Math.max(0, Math.floor(seconds));
  return `${count} second${count === 1 ? "" : "s"} ago`;
}
