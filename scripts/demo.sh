#!/usr/bin/env bash
# The strangler demo: two demo backends (legacy on :9001, the default, and new
# on :9002), a few routes from rules/demo.sh, and `strangler serve` on :8080
# with its admin listener on :9901 (the dashboard, /metrics, the control API).
# Prints curl lines to paste, then waits; Ctrl-C stops everything it started.
#
#   scripts/demo.sh            run the demo (state in ./demo-data, reset each run)
#   scripts/demo.sh --check    same setup, run the curls, assert each answer, stop, exit 0/1
#
# Options: --no-build (use the binaries as they are), --build-dir DIR (default build),
#   --dir DIR (state; default ./demo-data, --check uses a temp dir), --legacy-port N,
#   --new-port N, --port N (proxy), --admin-port N. Port 0 lets the system pick a
#   free port, so `--check --legacy-port 0 --new-port 0 --port 0 --admin-port 0`
#   can run beside anything.
# Needs Debian 12 and root only when packages are missing (scripts/deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

check=0
build=1
build_dir=build
data_dir=""
legacy_port=9001
new_port=9002
proxy_port=8080
admin_port=9901

die_usage() { echo "demo.sh: $*" >&2; echo "try: scripts/demo.sh --help" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --check) check=1 ;;
    --no-build) build=0 ;;
    --build-dir) (($# >= 2)) || die_usage "--build-dir needs a value"; build_dir=$2; shift ;;
    --dir) (($# >= 2)) || die_usage "--dir needs a value"; data_dir=$2; shift ;;
    --legacy-port) (($# >= 2)) || die_usage "--legacy-port needs a value"; legacy_port=$2; shift ;;
    --new-port) (($# >= 2)) || die_usage "--new-port needs a value"; new_port=$2; shift ;;
    --port) (($# >= 2)) || die_usage "--port needs a value"; proxy_port=$2; shift ;;
    --admin-port) (($# >= 2)) || die_usage "--admin-port needs a value"; admin_port=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
  shift
done
for p in "$legacy_port" "$new_port" "$proxy_port" "$admin_port"; do
  if ! [[ "$p" =~ ^[0-9]{1,5}$ ]] || ((10#$p > 65535)); then die_usage "bad port '$p'"; fi
done

say() { echo "demo.sh: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# --- build ------------------------------------------------------------------
if ((build)); then
  scripts/deps.sh
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$build_dir" -j "$(nproc 2>/dev/null || echo 2)" \
    --target strangler strangler-demo-backend
fi
BIN=$(cd "$build_dir" && pwd)
for b in strangler strangler-demo-backend; do
  [[ -x "$BIN/$b" ]] || fail "$BIN/$b is missing; build it (drop --no-build)"
done

# --- state and process bookkeeping -------------------------------------------
if [[ -z "$data_dir" ]]; then
  if ((check)); then
    data_dir=$(mktemp -d "${TMPDIR:-/tmp}/strangler-demo.XXXXXX")
    remove_data_dir=1
  else
    data_dir=demo-data
  fi
fi
mkdir -p "$data_dir"
DIR=$(cd "$data_dir" && pwd)
DB="$DIR/demo.db"
LOG="$DIR/decisions.log"
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.admin" "$LOG" "$DIR"/*.out "$DIR"/*.err "$DIR/tokens"

PIDS=()
NAMES=()
stop_failed=0
stop_all() {
  local i pid rc
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "${NAMES[i]} (pid $pid) did not stop within 5 s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      stop_failed=1
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if ((rc != 0)); then
      say "${NAMES[i]} (pid $pid) exited with status $rc after SIGTERM (expected 0)"
      stop_failed=1
    fi
  done
  PIDS=()
  NAMES=()
}
on_exit() {
  local rc=$?
  stop_all
  if [[ -n "${remove_data_dir:-}" ]]; then
    if ((rc == 0)); then rm -rf "$DIR"; else say "logs kept in $DIR"; fi
  fi
}
trap on_exit EXIT

# `host port` succeeds when something accepts connections there.
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# start_backend NAME PORT: starts a demo backend, waits for its "listening on"
# line and sets STARTED_PORT to the port it got.
start_backend() {
  local name=$1 port=$2 out="$DIR/$1.out" err="$DIR/$1.err" line=""
  if ((port != 0)) && port_busy 127.0.0.1 "$port"; then
    fail "port $port is already in use (another demo still running?); stop it, or pick another port with --$name-port"
  fi
  "$BIN/strangler-demo-backend" --name "$name" --listen "127.0.0.1:$port" >"$out" 2>"$err" &
  PIDS+=($!)
  NAMES+=("backend $name")
  for _ in $(seq 100); do
    line=$(grep -m1 '^listening on ' "$out" 2>/dev/null || true)
    [[ -n "$line" ]] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || fail "backend $name did not start: $(cat "$err")"
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "backend $name did not say it was listening within 5 s"
  STARTED_PORT=${line##*:}
}

# The CLI as rules/demo.sh expects it: a function that passes the demo's store.
# While setting up, a failed command stops the demo.
export STRANGLER_ACTOR=demo
cli() { "$BIN/strangler" --db "$DB" "$@"; }
strangler() { cli "$@" || fail "'strangler $*' failed (exit $?)"; }

# --- start ----------------------------------------------------------------------
if ((proxy_port != 0)) && port_busy 127.0.0.1 "$proxy_port"; then
  fail "port $proxy_port is already in use (another demo still running?); stop it, or pick another port with --port"
fi
if ((admin_port != 0)) && port_busy 127.0.0.1 "$admin_port"; then
  fail "port $admin_port is already in use (another demo still running?); stop it, or pick another port with --admin-port"
fi
start_backend legacy "$legacy_port"
legacy_port=$STARTED_PORT
start_backend new "$new_port"
new_port=$STARTED_PORT

strangler backend add legacy "http://127.0.0.1:$legacy_port" --default >/dev/null
strangler backend add new "http://127.0.0.1:$new_port" >/dev/null
# shellcheck disable=SC1091  # rules/demo.sh, relative to the repo root
. rules/demo.sh >/dev/null
# A write token for the dashboard and the API (reads need none: the demo's
# admin listener is on loopback with --admin-public-read).
TOKEN=$(cli token add demo --role write --file "$DIR/tokens" 2>/dev/null) || fail "'strangler token add' failed"

"$BIN/strangler" --db "$DB" serve --listen "127.0.0.1:$proxy_port" --log "$LOG" \
  --admin "127.0.0.1:$admin_port" --admin-token-file "$DIR/tokens" --admin-public-read \
  >"$DIR/serve.out" 2>"$DIR/serve.err" &
PIDS+=($!)
NAMES+=("strangler serve")
serve_pid=$!
if ((proxy_port == 0)); then
  # serve logs "... listening on HOST:PORT ..." to stderr once it is bound (after
  # "admin listening on ...", which is not the proxy).
  for _ in $(seq 100); do
    line=$(grep -v 'admin listening' "$DIR/serve.err" 2>/dev/null | grep -m1 -o 'listening on [^ ]*:[0-9]*' || true)
    [[ -n "$line" ]] && break
    kill -0 "$serve_pid" 2>/dev/null || fail "strangler serve did not start: $(cat "$DIR/serve.err")"
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "strangler serve did not say which port it got; see $DIR/serve.err"
  proxy_port=${line##*:}
fi
PROXY="http://127.0.0.1:$proxy_port"
# serve logs "admin listening on HOST:PORT" before it serves.
line=$(grep -m1 -o 'admin listening on [^ ]*:[0-9]*' "$DIR/serve.err" 2>/dev/null || true)
for _ in $(seq 100); do
  [[ -n "$line" ]] && break
  kill -0 "$serve_pid" 2>/dev/null || fail "strangler serve did not start: $(cat "$DIR/serve.err")"
  sleep 0.05
  line=$(grep -m1 -o 'admin listening on [^ ]*:[0-9]*' "$DIR/serve.err" 2>/dev/null || true)
done
[[ -n "$line" ]] || fail "strangler serve did not say where its admin listener is; see $DIR/serve.err"
admin_port=${line##*:}
ADMIN="http://127.0.0.1:$admin_port"
up=0
for _ in $(seq 100); do
  if curl -s -o /dev/null --max-time 1 "$PROXY/healthz"; then up=1; break; fi
  kill -0 "$serve_pid" 2>/dev/null || fail "strangler serve did not start: $(cat "$DIR/serve.err")"
  sleep 0.1
done
((up)) || fail "strangler serve did not answer on $PROXY within 10 s; see $DIR/serve.err"

# --- check mode -------------------------------------------------------------------
# bucket SALT KEY: fnv1a64(salt, 0x00, key) % 10000 as PRODUCT.md defines it,
# computed here independently of the binary (ASCII keys; bash wraps at 64 bits).
bucket() {
  local s=$1 k=$2 h=-3750763034362895579 i c r  # the offset basis as a signed 64-bit value
  for ((i = 0; i < ${#s}; i++)); do printf -v c '%d' "'${s:i:1}"; h=$(((h ^ c) * 1099511628211)); done
  h=$((h * 1099511628211))  # the 0x00 separator
  for ((i = 0; i < ${#k}; i++)); do printf -v c '%d' "'${k:i:1}"; h=$(((h ^ c) * 1099511628211)); done
  r=$((h % 10000))
  ((h >= 0)) || r=$(((r + 1616 + 10000) % 10000))  # 2^64 % 10000 == 1616
  echo "$r"
}

failures=0
# backend_of CURL_ARGS...: "STATUS BACKEND" of one request through the proxy.
backend_of() { curl -s -o /dev/null --max-time 5 -w '%{http_code} %header{x-backend}' "$@"; }
expect() {  # expect BACKEND DESCRIPTION CURL_ARGS...
  local want=$1 what=$2 got
  shift 2
  got=$(backend_of "$@" || true)
  if [[ "$got" == "200 $want" ]]; then
    echo "ok   $what -> $want"
  else
    echo "FAIL $what: want 200 from $want, got '${got}'"
    failures=$((failures + 1))
  fi
}
# users_on_new PERCENT: checks the 20 demo users against the bucketing formula;
# sets ON_NEW to how many went to new. Retries for up to 2 s, because a change
# made with the CLI reaches a running serve within a second.
users_on_new() {
  local percent=$1 attempt u want got bad
  for attempt in $(seq 20); do
    bad=""
    ON_NEW=0
    for u in $(seq 1 20); do
      want=legacy
      (($(bucket users "user-$u") < percent * 100)) && want=new
      got=$(backend_of -H "X-User-Id: user-$u" "$PROXY/api/users/$u" || true)
      [[ "$got" == "200 $want" ]] || bad+=" user-$u:want=$want,got='$got'"
      [[ "$want" == new ]] && ON_NEW=$((ON_NEW + 1))
    done
    [[ -z "$bad" ]] && break
    sleep 0.1
  done
  if [[ -z "$bad" ]]; then
    echo "ok   sticky $percent%: $ON_NEW of 20 users on new, as fnv1a64 says (settled after try $attempt)"
  else
    echo "FAIL sticky $percent%:$bad"
    failures=$((failures + 1))
  fi
}

if ((check)); then
  expect new "path: /api/orders/7" "$PROXY/api/orders/7"
  expect new "path: /api/orders" "$PROXY/api/orders"
  expect legacy "path: /api/ordersX (segment prefix)" "$PROXY/api/ordersX"
  expect legacy "path: /api/invoices" "$PROXY/api/invoices"
  expect new "header: X-Beta: 1 on /api/invoices" -H "X-Beta: 1" "$PROXY/api/invoices"
  expect new "header: X-Beta: 1 on /api/users/1" -H "X-Beta: 1" "$PROXY/api/users/1"
  expect legacy "header: X-Beta: 0 on /api/invoices" -H "X-Beta: 0" "$PROXY/api/invoices"
  expect new "POST /api/orders" -X POST -d '{"item":1}' "$PROXY/api/orders"

  users_on_new 30
  users_on_new 30  # repeated: the same users, the same side
  cli route set users --percent 80 -m "demo: widen users to 80%" >/dev/null ||
    { echo "FAIL route set users --percent 80"; failures=$((failures + 1)); }
  users_on_new 80

  if out=$(cli explain GET /api/users/4 -H "X-User-Id: user-4" 2>&1) &&
    grep -q 'new' <<<"$out" && grep -q 'users' <<<"$out"; then
    echo "ok   explain GET /api/users/4 (user-4) names route users and backend new"
  else
    echo "FAIL explain: $out"
    failures=$((failures + 1))
  fi
  if out=$(cli explain --json GET /api/invoices 2>&1) &&
    grep -Eq '"backend": *"legacy"' <<<"$out" && grep -Eq '"reason": *"default"' <<<"$out"; then
    echo "ok   explain --json GET /api/invoices -> legacy, reason default"
  else
    echo "FAIL explain --json: $out"
    failures=$((failures + 1))
  fi
  if out=$(cli history users 2>&1) && grep -q '80' <<<"$out"; then
    echo "ok   history users shows the change to 80%"
  else
    echo "FAIL history users: $out"
    failures=$((failures + 1))
  fi

  # The running router's own view: status (found through DB.admin), /metrics.
  if out=$(cli status 2>&1) && grep -q '^users ' <<<"$out"; then
    echo "ok   status shows route users' last minute"
  else
    echo "FAIL status: $out"
    failures=$((failures + 1))
  fi
  if out=$(curl -s --max-time 5 "$ADMIN/metrics") &&
    grep -q '^strangler_requests_total{route="users",backend="new"' <<<"$out"; then
    echo "ok   $ADMIN/metrics counts route users' requests"
  else
    echo "FAIL /metrics: $(head -c 300 <<<"$out")"
    failures=$((failures + 1))
  fi
  if curl -s --max-time 5 "$ADMIN/" | grep -q 'data-testid="token-form"'; then
    echo "ok   the dashboard is at $ADMIN/"
  else
    echo "FAIL no dashboard at $ADMIN/"
    failures=$((failures + 1))
  fi

  # The decision log is written off the request path: give it a moment.
  log_ok=0
  for _ in $(seq 30); do
    if [[ -s "$LOG" ]] && grep -q '"path":"/api/orders/7"' "$LOG" &&
      grep -q '"route":"users"' "$LOG"; then
      log_ok=1
      break
    fi
    sleep 0.1
  done
  if ((log_ok)); then
    echo "ok   decision log $LOG has $(wc -l <"$LOG") lines"
  else
    echo "FAIL decision log $LOG lacks the expected lines; it has:"
    head -5 "$LOG" 2>/dev/null || true
    failures=$((failures + 1))
  fi

  stop_all
  if ((stop_failed)); then
    echo "FAIL a process did not exit 0 on SIGTERM"
    failures=$((failures + 1))
  fi
  if ((failures)); then
    say "$failures check(s) failed"
    exit 1
  fi
  say "all checks passed"
  exit 0
fi

# --- interactive demo ---------------------------------------------------------------
rel() { case "$1" in "$ROOT"/*) echo "${1#"$ROOT"/}" ;; *) echo "$1" ;; esac; }
S="$(rel "$BIN")/strangler --db $(rel "$DB")"
P="127.0.0.1:$proxy_port"
cat <<EOF

strangler is serving on http://$P
  legacy (default) on 127.0.0.1:$legacy_port, new on 127.0.0.1:$new_port
  rules from rules/demo.sh; store $(rel "$DB"); logs in $(rel "$DIR")/

The migration dashboard: open $ADMIN/ in a browser (on this machine). It shows
each route's last minute; to change a percent or pause a ramp there, sign in with
the demo's write token: $TOKEN

From another terminal, in $ROOT, paste:

# The routes, and the backends:
$S route list
$S backend list

# A path moves: orders go to new, invoices stay on legacy (see "backend" in each answer)
curl -s $P/api/orders/7
curl -s $P/api/invoices

# A header: beta testers get new everywhere
curl -s -H 'X-Beta: 1' $P/api/invoices

# A sticky percentage: 30% of users (by X-User-Id) get the new /api/users; repeat it, same answer
for u in \$(seq 1 20); do echo "user-\$u -> \$(curl -s -o /dev/null -w '%header{x-backend}' -H "X-User-Id: user-\$u" $P/api/users/\$u)"; done

# A live flip: raise it to 80% while it serves, then run the loop again
# (everyone who was on new stays on new; more users join them)
$S route set users --percent 80 -m "more users"

# Why did a request go where it went?
$S explain GET /api/users/4 -H 'X-User-Id: user-4'

# Who changed what:
$S history

# Each route's last minute, as the running router sees it (and Prometheus text):
$S status
curl -s $ADMIN/metrics | grep '^strangler_requests_total'

# Every decision, one JSON line each:
tail -f $(rel "$LOG")

Ctrl-C here stops the demo.
EOF

trap 'echo; say "stopping"; stop_all; exit 0' INT TERM
# Wait in the foreground; wake on Ctrl-C (trap) or if one of ours dies.
while true; do
  rc=0
  wait -n "${PIDS[@]}" || rc=$?
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      fail "${NAMES[i]} stopped unexpectedly (status $rc); see the logs in $DIR"
    fi
  done
done
