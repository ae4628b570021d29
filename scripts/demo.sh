#!/usr/bin/env bash
# Starts the whole thing on this machine: Synapse (from the sid chroot), ngIRCd on 6667 and the bridge with its
# embedded SQLite store, creates a test user and prints how to log in and whom to talk to. Runs in the
# foreground; Ctrl-C stops everything it started. State persists in $DEMO_DIR between runs.
#
# Usage (as root, fresh Debian 12): sudo bash scripts/demo.sh
# Env: DEMO_DIR (/var/lib/matrix-otr-irc-demo), DEMO_HS_PORT (8008), DEMO_IRC_PORT (6667),
#      DEMO_AS_PORT (8090), DEMO_METRICS_PORT (9102), DEMO_SKIP_DEPS=1 to skip install and build,
#      DEMO_SMOKE=1 to drive one DM through it (scripts/demo-smoke.ts), stop, and exit with the result.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

DEMO_DIR="${DEMO_DIR:-/var/lib/matrix-otr-irc-demo}"
HS_PORT="${DEMO_HS_PORT:-8008}"
IRC_PORT="${DEMO_IRC_PORT:-6667}"
AS_PORT="${DEMO_AS_PORT:-8090}"
METRICS_PORT="${DEMO_METRICS_PORT:-9102}"
CHROOT="${SYNAPSE_CHROOT:-/var/cache/matrix-otr-irc/synapse-sid}"
SERVER_NAME=localhost
NETWORK_ID=demo
BOT_LOCALPART=ircotr
DEMO_USER=demo
# Synapse's data dir as Synapse sees it; one per DEMO_DIR so two demos never share a homeserver.
HS_IN_CHROOT="/srv/matrix-otr-irc-demo-$(printf '%s' "$DEMO_DIR" | md5sum | cut -c1-8)"

log() { printf '[demo] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root: sudo bash scripts/demo.sh"

export PATH="/usr/local/bin:$PATH"   # where install-deps puts Node 24 (ahead of an older system node)
if [[ "${DEMO_SKIP_DEPS:-}" != 1 ]]; then
  log "installing dependencies (first run: a few minutes)"
  bash scripts/install-deps.sh
  log "building"
  npm run -s build
fi
[[ -f dist/cli.js ]] || die "dist/cli.js missing: npm run build failed?"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$HS_PORT" "$IRC_PORT" "$AS_PORT" "$METRICS_PORT"; do
  port_busy "$p" && die "port $p on 127.0.0.1 is in use (another demo running?); set DEMO_*_PORT to move it"
done

mkdir -p "$DEMO_DIR"/{logs,synapse,ngircd/conf.d,ngircd/run,bridge}
chown nobody:nogroup "$DEMO_DIR/ngircd/run"   # ngIRCd writes its pid file after switching to nobody
chmod 755 "$DEMO_DIR" "$DEMO_DIR/ngircd" "$DEMO_DIR/ngircd/conf.d"   # ngIRCd runs as nobody
chmod 700 "$DEMO_DIR/synapse" "$DEMO_DIR/bridge"

PIDS=()
MOUNTED=0
cleanup() {
  trap - EXIT INT TERM
  log "stopping"
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "process $pid did not stop within 10 s of SIGTERM; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # A killed process keeps its ports until it is reaped: the next demo (or a test) must find them free.
    wait "$pid" 2>/dev/null || true
  done
  if ((MOUNTED)); then
    umount "$CHROOT$HS_IN_CHROOT" 2>/dev/null || umount -l "$CHROOT$HS_IN_CHROOT" 2>/dev/null || true
    rmdir "$CHROOT$HS_IN_CHROOT" 2>/dev/null || true   # only the empty mount point; the data is in $DEMO_DIR
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" as its own process group with output to a log file; records its pid.
start_bg() {
  local name="$1"; shift
  setsid "$@" >>"$DEMO_DIR/logs/$name.log" 2>&1 &
  PIDS+=("$!")
}

wait_until() { # description, timeout seconds, command...
  local what="$1" t="$2"; shift 2
  for _ in $(seq 1 $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out waiting for $what (logs in $DEMO_DIR/logs)"
}

# --- Synapse: data lives in $DEMO_DIR/synapse, bind-mounted into the chroot so a chroot rebuild keeps it.
mkdir -p "$CHROOT$HS_IN_CHROOT"
if mountpoint -q "$CHROOT$HS_IN_CHROOT"; then
  MOUNTED=1
elif mount --bind "$DEMO_DIR/synapse" "$CHROOT$HS_IN_CHROOT" 2>/dev/null; then
  MOUNTED=1
else
  log "bind mount not possible here: Synapse's data stays inside the chroot at $CHROOT$HS_IN_CHROOT"
fi
HS_HOST_DIR="$CHROOT$HS_IN_CHROOT"

[[ -f "$DEMO_DIR/bridge/shared_secret" ]] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEMO_DIR/bridge/shared_secret"
SHARED_SECRET="$(cat "$DEMO_DIR/bridge/shared_secret")"

# --- Bridge config and registration (generated once, kept).
CONFIG="$DEMO_DIR/bridge/config.yaml"
REGISTRATION="$DEMO_DIR/bridge/registration.yaml"
if [[ ! -f "$CONFIG" ]]; then
  cat >"$CONFIG" <<EOF
# Written by scripts/demo.sh; see config/config.sample.yaml and docs/configuration.md.
homeserver:
  url: http://127.0.0.1:$HS_PORT
  domain: $SERVER_NAME
appservice:
  id: matrix-otr-irc
  bind_address: 127.0.0.1
  port: $AS_PORT
  url: http://127.0.0.1:$AS_PORT
  bot_localpart: $BOT_LOCALPART
networks:
  - id: $NETWORK_ID
    name: Demo ngIRCd
    host: 127.0.0.1
    port: $IRC_PORT
    tls: false
permissions:
  $SERVER_NAME: user
otr:
  default_policy: opportunistic
# End-to-bridge encryption (docs/encryption.md): the demo's Synapse runs with the appservice flags it needs.
encryption:
  allow: true
  default: true
  require: true
store:
  engine: sqlite
  sqlite_path: $DEMO_DIR/bridge/bridge.db
  master_key_file: $DEMO_DIR/bridge/master.key
metrics:
  enabled: true
  bind_address: 127.0.0.1
  port: $METRICS_PORT
logging:
  level: info
  format: logfmt
EOF
fi
# A demo dir from before the demo was encrypted: turn encryption on there too, with a registration to match.
if grep -q "do not do Matrix encryption yet" "$CONFIG"; then
  sed -i '/do not do Matrix encryption yet/,/^  allow: false$/c\# End-to-bridge encryption (docs/encryption.md).\nencryption:\n  allow: true\n  default: true\n  require: true' "$CONFIG"
  rm -f "$REGISTRATION"
fi
node dist/cli.js check-config -c "$CONFIG" >&2 || die "the demo config does not pass check-config: $CONFIG"
if [[ ! -f "$REGISTRATION" ]]; then
  node dist/cli.js generate-registration -c "$CONFIG" -f "$REGISTRATION" >&2
fi
cp "$REGISTRATION" "$HS_HOST_DIR/registration.yaml"

if [[ ! -f "$HS_HOST_DIR/homeserver.yaml" ]]; then
  signing_seed="$(head -c 32 /dev/urandom | base64 | tr -d '=')"
  cat >"$HS_HOST_DIR/homeserver.yaml" <<EOF
# Written by scripts/demo.sh: a loopback-only homeserver for trying the bridge.
server_name: "$SERVER_NAME"
pid_file: $HS_IN_CHROOT/homeserver.pid
listeners:
  - port: $HS_PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $HS_IN_CHROOT/homeserver.db
media_store_path: $HS_IN_CHROOT/media_store
signing_key: "ed25519 a_demo $signing_seed"
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
presence:
  enabled: false
enable_registration: false
registration_shared_secret: "$SHARED_SECRET"
macaroon_secret_key: "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
form_secret: "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
app_service_config_files:
  - $HS_IN_CHROOT/registration.yaml
# What the bridge's end-to-bridge encryption needs from Synapse (docs/encryption.md).
experimental_features:
  msc2409_to_device_messages_enabled: true
  msc3202_transaction_extensions: true
rc_message: {per_second: 100, burst_count: 1000}
rc_joins:
  local: {per_second: 100, burst_count: 1000}
rc_invites:
  per_room: {per_second: 100, burst_count: 1000}
  per_user: {per_second: 100, burst_count: 1000}
EOF
  chmod 600 "$HS_HOST_DIR/homeserver.yaml"
fi

# A homeserver.yaml from before the demo was encrypted lacks the appservice encryption flags.
grep -q msc2409_to_device_messages_enabled "$HS_HOST_DIR/homeserver.yaml" || cat >>"$HS_HOST_DIR/homeserver.yaml" <<EOF
experimental_features:
  msc2409_to_device_messages_enabled: true
  msc3202_transaction_extensions: true
EOF

log "starting Synapse on 127.0.0.1:$HS_PORT"
start_bg synapse env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root PYTHONUNBUFFERED=1 \
  chroot "$CHROOT" python3 -m synapse.app.homeserver -c "$HS_IN_CHROOT/homeserver.yaml"
wait_until "Synapse" 120 curl -fsS "http://127.0.0.1:$HS_PORT/_matrix/client/versions"

# --- ngIRCd on 6667.
cat >"$DEMO_DIR/ngircd/ngircd.conf" <<EOF
[Global]
  Name = irc.demo
  Info = matrix-otr-irc demo
  Listen = 127.0.0.1
  Ports = $IRC_PORT
  MotdFile = $DEMO_DIR/ngircd/ngircd.motd
  PidFile = $DEMO_DIR/ngircd/run/ngircd.pid
  AdminInfo1 = matrix-otr-irc demo
  AdminInfo2 = loopback only
  AdminEMail = root@localhost
[Limits]
  MaxConnectionsIP = 0
  MaxNickLength = 30
[Options]
  DNS = no
  Ident = no
  PAM = no
  IncludeDir = $DEMO_DIR/ngircd/conf.d
EOF
echo "matrix-otr-irc demo network" >"$DEMO_DIR/ngircd/ngircd.motd"
chmod 644 "$DEMO_DIR/ngircd/ngircd.conf" "$DEMO_DIR/ngircd/ngircd.motd"
log "starting ngIRCd on 127.0.0.1:$IRC_PORT"
start_bg ngircd /usr/sbin/ngircd --nodaemon --config "$DEMO_DIR/ngircd/ngircd.conf"
wait_until "ngIRCd" 30 port_busy "$IRC_PORT"

# --- The test user (created once; its password is kept next to the bridge state).
if [[ ! -f "$DEMO_DIR/bridge/demo-user-password" ]]; then
  head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$DEMO_DIR/bridge/demo-user-password"
  chroot "$CHROOT" synapse_register_new_matrix_user -u "$DEMO_USER" -p "$(cat "$DEMO_DIR/bridge/demo-user-password")" \
    --no-admin -k "$SHARED_SECRET" "http://127.0.0.1:$HS_PORT" >&2 \
    || { rm -f "$DEMO_DIR/bridge/demo-user-password"; die "could not create the test user"; }
fi
DEMO_PASSWORD="$(cat "$DEMO_DIR/bridge/demo-user-password")"

# --- The bridge.
log "starting the bridge (appservice 127.0.0.1:$AS_PORT, metrics 127.0.0.1:$METRICS_PORT)"
start_bg bridge "$REPO/bin/matrix-otr-irc.js" start -c "$CONFIG" -f "$REGISTRATION"   # the launcher: its node flags
BRIDGE_PID="${PIDS[-1]}"
wait_until "the bridge's /health" 60 curl -fsS "http://127.0.0.1:$METRICS_PORT/health"

cat <<EOF

================================================================================
 matrix-otr-irc demo is running (Ctrl-C stops everything)

 Matrix (log in with any Matrix client that can reach this machine's loopback):
   homeserver   http://127.0.0.1:$HS_PORT
   user         @$DEMO_USER:$SERVER_NAME
   password     $DEMO_PASSWORD

 Talk to the bridge: start a direct chat with   @$BOT_LOCALPART:$SERVER_NAME
   (Element makes it encrypted; the bridge reads it with devices of its own, docs/encryption.md)
   then type:  connect $NETWORK_ID
               msg $NETWORK_ID alice hello from Matrix

 IRC side (another terminal; apt-get install irssi if needed):
   irssi -c 127.0.0.1 -p $IRC_PORT -n alice
   then:       /msg $DEMO_USER hello from IRC
   For OTR, use an OTR-capable client (e.g. irssi with irssi-plugin-otr: /load otr, /otr init).

 Logs:   $DEMO_DIR/logs/{synapse,ngircd,bridge}.log
 Metrics http://127.0.0.1:$METRICS_PORT/metrics
================================================================================
EOF

if [[ "${DEMO_SMOKE:-}" == 1 ]]; then
  DEMO_HS_URL="http://127.0.0.1:$HS_PORT" DEMO_SERVER_NAME="$SERVER_NAME" DEMO_USER="$DEMO_USER" \
  DEMO_PASSWORD="$DEMO_PASSWORD" DEMO_BOT_LOCALPART="$BOT_LOCALPART" DEMO_NETWORK="$NETWORK_ID" \
  DEMO_IRC_PORT="$IRC_PORT" node --import tsx scripts/demo-smoke.ts
  exit $?
fi

# Foreground until the bridge exits or Ctrl-C; the EXIT trap stops the rest.
wait "$BRIDGE_PID" || die "the bridge exited with status $?; see $DEMO_DIR/logs/bridge.log"
