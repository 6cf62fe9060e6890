// Sign-in with OAuth, as a browser app in the atproto profile: a pushed authorization request
// with PKCE, the user signs in on their PDS's own page, and the tokens are bound to a DPoP key
// this browser keeps (WebCrypto, not extractable, in IndexedDB).
//
// On this machine (localhost or 127.0.0.1) the client is a loopback client
// ("http://localhost?redirect_uri=..."), which must be sent back to 127.0.0.1: sign-in starts
// there. Elsewhere its client id is the metadata document `strata web` serves.

const SCOPE = "atproto transition:generic";
const PENDING_KEY = "strata.oauth.pending";
const DB_NAME = "strata-oauth";

const encoder = new TextEncoder();

function b64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size) {
  return b64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function sha256(text) {
  return b64url(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

function loopback() {
  return ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
}

// Who this app is to the PDS, and where the PDS sends the user back to.
export function clientIdentity() {
  const redirectUri = `${location.origin}/`;
  if (loopback()) {
    const params = new URLSearchParams({ redirect_uri: redirectUri, scope: SCOPE });
    return { clientId: `http://localhost?${params}`, redirectUri };
  }
  return { clientId: `${location.origin}/oauth-client-metadata.json`, redirectUri };
}

// The DPoP key pair, kept in IndexedDB so that it survives reloads without ever leaving the
// browser's key store.
async function keyStore(mode, work) {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  try {
    return await new Promise((resolve, reject) => {
      const request = work(db.transaction("keys", mode).objectStore("keys"));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

export class DpopKey {
  constructor(keys, jwk) {
    this.keys = keys;
    this.jwk = jwk;
    this.nonce = null;
  }

  static async create() {
    const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    await keyStore("readwrite", (store) => store.put(keys, "dpop"));
    return DpopKey.from(keys);
  }

  static async load() {
    const keys = await keyStore("readonly", (store) => store.get("dpop"));
    return keys ? DpopKey.from(keys) : null;
  }

  static async from(keys) {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", keys.publicKey);
    return new DpopKey(keys, { kty, crv, x, y });
  }

  // A proof for one request (RFC 9449): ES256 over the request's method and URL.
  async proof(method, url, accessToken) {
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: this.jwk };
    const payload = {
      jti: randomString(16),
      htm: method,
      htu: url.split(/[?#]/)[0],
      iat: Math.floor(Date.now() / 1000),
    };
    if (this.nonce) payload.nonce = this.nonce;
    if (accessToken) payload.ath = await sha256(accessToken);
    const input = `${b64url(encoder.encode(JSON.stringify(header)))}.${b64url(encoder.encode(JSON.stringify(payload)))}`;
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, this.keys.privateKey, encoder.encode(input));
    return `${input}.${b64url(signature)}`;
  }

  // A request signed with a fresh proof, retried once with the nonce the server asks for.
  async fetch(url, { method = "GET", headers = {}, body, accessToken } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(url, {
        method,
        body,
        headers: { ...headers, DPoP: await this.proof(method, url, accessToken) },
      });
      const nonce = response.headers.get("DPoP-Nonce");
      const fresh = nonce && nonce !== this.nonce;
      if (nonce) this.nonce = nonce;
      if (attempt > 0 || !fresh || !(await asksForNonce(response))) return response;
    }
  }
}

async function asksForNonce(response) {
  if (response.status === 401) {
    return (response.headers.get("WWW-Authenticate") || "").includes("use_dpop_nonce");
  }
  if (response.status !== 400) return false;
  const body = await response.clone().json().catch(() => ({}));
  return body.error === "use_dpop_nonce";
}

async function json(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error_description || body.message || body.error || `HTTP ${response.status}`);
  return body;
}

// The PDS's authorization server (its own, in Strata and in the reference PDS).
async function authorizationServer(service) {
  const resource = await json(await fetch(`${service}/.well-known/oauth-protected-resource`));
  const issuer = resource.authorization_servers[0];
  const metadata = await json(await fetch(`${issuer}/.well-known/oauth-authorization-server`));
  if (metadata.issuer !== issuer) throw new Error("the authorization server names another issuer");
  return metadata;
}

function form(values) {
  return { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(values).toString() };
}

// Start signing in: push the request, remember what the answer must match, and go to the
// PDS's sign-in page.
export async function beginSignIn(service, handle) {
  const base = service.replace(/\/+$/, "");
  const server = await authorizationServer(base);
  const { clientId, redirectUri } = clientIdentity();
  const key = await DpopKey.create();
  const verifier = randomString(48);
  const state = randomString(16);
  const params = {
    client_id: clientId,
    response_type: "code",
    redirect_uri: redirectUri,
    scope: SCOPE,
    state,
    code_challenge: await sha256(verifier),
    code_challenge_method: "S256",
  };
  if (handle) params.login_hint = handle;
  const pushed = await json(await key.fetch(server.pushed_authorization_request_endpoint, { method: "POST", ...form(params) }));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, verifier, service: base, server, clientId, redirectUri }));
  const page = new URL(server.authorization_endpoint);
  page.searchParams.set("client_id", clientId);
  page.searchParams.set("request_uri", pushed.request_uri);
  location.assign(page.href);
}

// Back from the sign-in page (`?code=...&state=...&iss=...`): exchange the code. Returns the
// session to keep, or null when this page load is not an OAuth answer.
export async function finishSignIn() {
  const answer = new URLSearchParams(location.search);
  if (!answer.has("state") || !(answer.has("code") || answer.has("error"))) return null;
  history.replaceState(null, "", `${location.pathname}${location.hash || "#/"}`);
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY);
  if (!pending || pending.state !== answer.get("state")) throw new Error("This sign-in was not started here; start again.");
  if (answer.has("error")) throw new Error(answer.get("error_description") || answer.get("error"));
  if (answer.get("iss") !== pending.server.issuer) throw new Error("The answer came from another server.");
  const key = await DpopKey.load();
  const tokens = await json(
    await key.fetch(pending.server.token_endpoint, {
      method: "POST",
      ...form({
        grant_type: "authorization_code",
        client_id: pending.clientId,
        redirect_uri: pending.redirectUri,
        code: answer.get("code"),
        code_verifier: pending.verifier,
      }),
    }),
  );
  return {
    kind: "oauth",
    service: pending.service,
    did: tokens.sub,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    tokenEndpoint: pending.server.token_endpoint,
    revocationEndpoint: pending.server.revocation_endpoint,
    clientId: pending.clientId,
  };
}

// New tokens for a session whose access token expired (the refresh token changes too).
export async function refreshTokens(session, key) {
  const tokens = await json(
    await key.fetch(session.tokenEndpoint, {
      method: "POST",
      ...form({ grant_type: "refresh_token", client_id: session.clientId, refresh_token: session.refreshToken }),
    }),
  );
  return { ...session, accessToken: tokens.access_token, refreshToken: tokens.refresh_token };
}

export async function revoke(session, key) {
  await key.fetch(session.revocationEndpoint, {
    method: "POST",
    ...form({ client_id: session.clientId, token: session.refreshToken }),
  });
}
