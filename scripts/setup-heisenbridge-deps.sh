#!/usr/bin/env bash
# Installs Heisenbridge's dependencies into the Synapse sid chroot, for the side-by-side bridge bench
# (bench/bridge.ts; Heisenbridge's source is in ../shared/peers/heisenbridge, it is on no registry reachable here).
# Debian sid packages them all: python3-mautrix (0.20.7, inside Heisenbridge's >=0.20.5,<0.21 pin), python3-aiohttp,
# python3-ruamel.yaml, python3-python-socks, python3-irc (20.5, above its <20.4 pin: the bench checks that it
# starts and bridges). They only add packages to the chroot (checked with apt-get -s: nothing is upgraded or
# removed), so Synapse's own packages are untouched. Idempotent: does nothing when all are present.
#
# Usage (as root): bash scripts/setup-heisenbridge-deps.sh      Env: SYNAPSE_CHROOT
set -euo pipefail

TARGET="${SYNAPSE_CHROOT:-/var/cache/matrix-otr-irc/synapse-sid}"
PKGS=(python3-mautrix python3-aiohttp python3-ruamel.yaml python3-python-socks python3-irc)
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive
log() { printf '[setup-heisenbridge-deps] %s\n' "$*" >&2; }

[[ -f "$TARGET/.matrix-otr-irc-ready" ]] || { log "no Synapse chroot at $TARGET: run scripts/setup-synapse-chroot.sh first"; exit 1; }
missing=()
for p in "${PKGS[@]}"; do
  chroot "$TARGET" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then log "ready: ${PKGS[*]}"; exit 0; fi
[[ $EUID -eq 0 ]] || { log "must run as root (chroot needs it)"; exit 1; }

# Serialised with the chroot's own builder, since both run apt inside it.
exec 9>"$(dirname "$TARGET")/.synapse-chroot.lock"
flock 9
log "installing ${missing[*]} into $TARGET"
# The lists the chroot was built with first (same versions as Synapse's dependencies); a fresh update only if
# the mirror no longer has those files.
if ! chroot "$TARGET" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" >/tmp/matrix-otr-irc-heisenbridge-apt.log 2>&1; then
  chroot "$TARGET" apt-get "${APT_OPTS[@]}" update >>/tmp/matrix-otr-irc-heisenbridge-apt.log 2>&1
  chroot "$TARGET" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" >>/tmp/matrix-otr-irc-heisenbridge-apt.log 2>&1 || {
    tail -30 /tmp/matrix-otr-irc-heisenbridge-apt.log >&2; exit 1; }
fi
chroot "$TARGET" apt-get clean
chroot "$TARGET" python3 -c 'import mautrix, aiohttp, ruamel.yaml, python_socks, irc' || { log "the packages do not import"; exit 1; }
log "ready: ${PKGS[*]}"
