#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on a fresh Debian 12 machine, as root.
# Idempotent: re-running only does what is missing. Daemons that Debian would start on install (ngircd,
# inspircd, postgresql, atheme) are kept from starting, so they never hold the ports tests and the demo use.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-deps] %s\n' "$*" >&2; }
export DEBIAN_FRONTEND=noninteractive

PKGS=(ca-certificates ngircd inspircd atheme-services postgresql sqlite3 debootstrap
      libotr5-dev libgcrypt20-dev gcc make python3 build-essential util-linux procps openssl curl)

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

# npm ci on a clean clone must build better-sqlite3's native module (package.json allowScripts).
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
