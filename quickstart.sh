#!/usr/bin/env bash
# Brings up a complete local Herald: a server on a fresh data dir (its own CA
# and sled store), an org unit, an enrollment token, an enrolled agent service
# with a session part, and heraldctl logged in as the bootstrap admin.
#
#   ./quickstart.sh          start (or restart) everything
#   ./quickstart.sh stop     stop what it started
#   ./quickstart.sh reset    stop and delete the local data
#
# Everything lives under $HERALD_LOCAL (default ./.herald-local).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
LOCAL="${HERALD_LOCAL:-$ROOT/.herald-local}"
ADDR="${HERALD_QUICKSTART_ADDR:-127.0.0.1:7443}"
URL="https://$ADDR"
BIN="$ROOT/target/debug"

stop() {
  for name in console session agent server; do
    if [ -f "$LOCAL/$name.pid" ]; then
      kill "$(cat "$LOCAL/$name.pid")" 2>/dev/null || true
      rm -f "$LOCAL/$name.pid"
    fi
  done
}

case "${1:-start}" in
  stop) stop; echo "stopped"; exit 0 ;;
  reset) stop; rm -rf "$LOCAL"; echo "removed $LOCAL"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop|reset]" >&2; exit 2 ;;
esac

stop
echo "==> building Herald (first build takes a few minutes)"
cargo build --bins --quiet

mkdir -p "$LOCAL"
chmod 700 "$LOCAL"
if [ ! -f "$LOCAL/server/tls/ca.pem" ]; then
  echo "==> creating the server's data dir, CA and bootstrap admin"
  PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)"
  (umask 077; printf '%s\n' "$PASSWORD" > "$LOCAL/admin-password")
  HERALD_BOOTSTRAP_PASSWORD="$PASSWORD" "$BIN/herald-server" init --data-dir "$LOCAL/server" \
    --org-name "Local Organisation" | grep -v '^password' || true
fi
PASSWORD="$(cat "$LOCAL/admin-password")"

echo "==> starting herald-server on $ADDR"
"$BIN/herald-server" run --data-dir "$LOCAL/server" --listen "$ADDR" >"$LOCAL/server.out" 2>"$LOCAL/server.log" &
echo $! > "$LOCAL/server.pid"
for _ in $(seq 1 100); do
  grep -q '^listening on' "$LOCAL/server.out" 2>/dev/null && break
  if ! kill -0 "$(cat "$LOCAL/server.pid")" 2>/dev/null; then
    echo "herald-server failed to start:" >&2; cat "$LOCAL/server.log" >&2; exit 1
  fi
  sleep 0.1
done

echo "==> logging heraldctl in as admin"
printf '%s\n' "$PASSWORD" | "$BIN/heraldctl" login --server "$URL" --ca-file "$LOCAL/server/tls/ca.pem" \
  --user admin --password-stdin

if [ ! -f "$LOCAL/agent/agent.toml" ]; then
  "$BIN/heraldctl" org list --json | grep -q '"/Local PCs"' || "$BIN/heraldctl" org create / "Local PCs" >/dev/null
  echo "==> creating an enrollment token and enrolling this computer"
  TOKEN="$("$BIN/heraldctl" token create --unit "/Local PCs" --valid-for 1h --uses 1)"
  "$BIN/herald-agent" enroll --server "$URL" --token "$TOKEN" --state-dir "$LOCAL/agent"
fi

echo "==> starting the agent service and this user's session part"
rm -f "$LOCAL/agent/session.sock"
"$BIN/herald-agent" service --state-dir "$LOCAL/agent" --socket "$LOCAL/agent/session.sock" \
  >"$LOCAL/agent.out" 2>"$LOCAL/agent.log" &
echo $! > "$LOCAL/agent.pid"
for _ in $(seq 1 100); do [ -S "$LOCAL/agent/session.sock" ] && break; sleep 0.1; done
"$BIN/herald-agent" session --socket "$LOCAL/agent/session.sock" >"$LOCAL/session.log" 2>&1 &
echo $! > "$LOCAL/session.pid"

for _ in $(seq 1 100); do
  "$BIN/heraldctl" --json computers list | grep -q '"online": *true' && break
  sleep 0.1
done
echo
"$BIN/heraldctl" computers list

# With a desktop, open the admin console logged in with heraldctl's session
# (no password is passed or stored).
CONSOLE_NOTE="open it with:  $BIN/herald-console --cli-session"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  "$BIN/herald-console" --cli-session >"$LOCAL/console.log" 2>&1 &
  echo $! > "$LOCAL/console.pid"
  CONSOLE_NOTE="opened on your screen; again later with:  $BIN/herald-console --cli-session"
fi
cat <<EOT

Herald is running locally.
  server:        $URL   (data in $LOCAL/server, log $LOCAL/server.log)
  admin login:   admin / $(cat "$LOCAL/admin-password")   (also in $LOCAL/admin-password)
  CA file:       $LOCAL/server/tls/ca.pem
  send an alert: $BIN/heraldctl alert send --to all --title "Hello" --body "First alert"
                 (with a desktop session it pops up on this screen at once)
  try also:      $BIN/heraldctl alert list; $BIN/heraldctl org list; $BIN/heraldctl audit
  admin console: $CONSOLE_NOTE
  stop:          ./quickstart.sh stop     (reset: ./quickstart.sh reset)
EOT
