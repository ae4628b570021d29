#!/usr/bin/env bash
# Builds a Debian sid chroot holding matrix-synapse, for the e2e tests and the demo.
# Synapse is packaged only in sid; installing sid packages into the host would pull a sid libc into bookworm,
# so it lives in its own root. Idempotent: a finished chroot carries a marker file and is left alone.
# Atomic: the build happens in a temp dir next to the target and is renamed only when complete, so an
# interrupted build can never be mistaken for a good one.
#
# Usage (as root): bash scripts/setup-synapse-chroot.sh [--force]
# Env: SYNAPSE_CHROOT (default /var/cache/matrix-otr-irc/synapse-sid), DEBIAN_MIRROR.
set -euo pipefail

TARGET="${SYNAPSE_CHROOT:-/var/cache/matrix-otr-irc/synapse-sid}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
MARKER="$TARGET/.matrix-otr-irc-ready"
# The mirror's sid Release file can be older than its Valid-Until date.
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup-synapse-chroot] %s\n' "$*" >&2; }

if [[ "${1:-}" != "--force" && -f "$MARKER" ]]; then
  log "ready: $TARGET ($(cat "$MARKER"))"
  exit 0
fi

if [[ $EUID -ne 0 ]]; then
  log "must run as root (debootstrap and chroot need it)"
  exit 1
fi
command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }

PARENT="$(dirname "$TARGET")"
mkdir -p "$PARENT"

# Serialise concurrent runs (several test processes may find the chroot missing at once).
exec 9>"$PARENT/.synapse-chroot.lock"
flock 9
if [[ "${1:-}" != "--force" && -f "$MARKER" ]]; then
  log "ready (built by a concurrent run): $TARGET ($(cat "$MARKER"))"
  exit 0
fi

# Leftovers of interrupted builds are garbage by construction.
for old in "$PARENT"/.synapse-sid.build.*; do
  [[ -e "$old" ]] || continue
  log "removing stale partial build $old"
  umount -l "$old/proc" 2>/dev/null || true
  rm -rf --one-file-system "$old"
done

BUILD="$(mktemp -d "$PARENT/.synapse-sid.build.XXXXXX")"
cleanup() {
  umount -l "$BUILD/proc" 2>/dev/null || true
  [[ -d "$BUILD" ]] && rm -rf --one-file-system "$BUILD"
}
trap cleanup EXIT

start=$(date +%s)
log "debootstrap sid into $BUILD"
debootstrap --variant=minbase sid "$BUILD" "$MIRROR" >"$PARENT/debootstrap.log" 2>&1 || {
  log "debootstrap failed; last lines of $PARENT/debootstrap.log:"; tail -20 "$PARENT/debootstrap.log" >&2; exit 1; }

# Keep service scripts from starting anything inside the chroot during install.
printf '#!/bin/sh\nexit 101\n' >"$BUILD/usr/sbin/policy-rc.d"
chmod +x "$BUILD/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$BUILD/etc/resolv.conf" 2>/dev/null || true

log "installing matrix-synapse inside"
chroot "$BUILD" apt-get "${APT_OPTS[@]}" update >"$PARENT/apt.log" 2>&1 || {
  tail -20 "$PARENT/apt.log" >&2; exit 1; }
chroot "$BUILD" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends matrix-synapse ca-certificates \
  >>"$PARENT/apt.log" 2>&1 || { tail -30 "$PARENT/apt.log" >&2; exit 1; }
chroot "$BUILD" apt-get clean

VERSION="$(chroot "$BUILD" dpkg-query -W -f='${Version}' matrix-synapse)"
chroot "$BUILD" python3 -c 'import synapse.app.homeserver' || { log "synapse does not import"; exit 1; }
mkdir -p "$BUILD/srv"
printf 'matrix-synapse %s built %s\n' "$VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$BUILD/.matrix-otr-irc-ready"

# Swap in atomically; an old chroot (with --force) is moved aside first, then removed.
if [[ -e "$TARGET" ]]; then
  OLD="$PARENT/.synapse-sid.old.$$"
  mv "$TARGET" "$OLD"
  mv "$BUILD" "$TARGET"
  rm -rf --one-file-system "$OLD"
else
  mv "$BUILD" "$TARGET"
fi
trap - EXIT
log "ready: $TARGET (matrix-synapse $VERSION, $(( $(date +%s) - start ))s)"
