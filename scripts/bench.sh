#!/usr/bin/env bash
# Throughput benchmark: strangler serve against an nginx reverse proxy doing the
# same job, both in front of the same two nginx backends, driven by wrk with one
# Lua script (bench/wrk.lua), on loopback, in a temp dir, alternating runs.
#
#   scripts/bench.sh              build (Release, in build/), run the comparison at
#                                 1, 16 and 64 connections, the large-body step and
#                                 the Decide() micro-benchmarks; print the table
#   scripts/bench.sh --large      only the large-body step (1 GiB down, 1 GiB up
#                                 through the router, peak RSS must stay < 64 MiB)
#
#   scripts/bench.sh --baseline /tmp/strangler-base/build/strangler --ramp --no-large --no-micro
#                                 this build against an older strangler binary instead
#                                 of nginx, with a ramp running on this build's route
#
# Options: --no-large, --no-micro, --no-build, --build-dir DIR (default build),
#   --rounds N (alternations per connection count, default $ROUNDS or 3),
#   --duration S (seconds per wrk run, default $DURATION or 8),
#   --conns "1 16 64" (default $CONNS or "1 16 64"), --keep (keep the whole temp dir),
#   --haproxy (the peer is HAProxy from Debian instead of nginx: nbthread = cores, the
#     same 30% split on a hash of X-User-Id by an ACL, keep-alive to the backends with
#     http-reuse always, the same header work, a JSON log line per request to a file),
#   --baseline BIN (the peer is a second `strangler serve` run from a copy of BIN, with
#     the same rules in its own store made by BIN, instead of the nginx proxy; the
#     ratios are this build / BIN),
#   --ramp (this build only: a ramp runs on the route during the measurement,
#     `ramp orders --to 100 --step 0.01 --every 1h --max-error-rate 5%`, so that serve
#     counts per-route requests and flushes them to the store every second),
#   --mirror P (this build only: a second route `pages`, /legacy/page to legacy, copies
#     P% of its requests to the new backend, compared ignoring the `backend` field; the
#     baseline gets the same route without the mirror),
#   --max-conns N (this build only: both backends get `--max-conns N`, a cap on connections
#     per instance with a queue; with --baseline pointing at this same build, the ratios
#     are what the cap and its queue cost),
#   --reuse-quiet-ms N (this build only: both backends get `--reuse-quiet-ms N`, how long a
#     pooled connection must have been quiet since its answer before it is reused),
#   --tls (the clients speak TLS to the router and to the peer, both with the same
#     certificate made here with the openssl CLI (EC P-256); after the keep-alive runs,
#     a handshake run per round: 16 clients, every request on a new connection
#     (Connection: close), so its req/s is full TLS handshakes per second; --idle is
#     not combined with it),
#   --idle N (after the comparison: N keep-alive clients make one request each through a
#     fresh router and stay open and quiet; prints its resident memory before, while
#     they are held (per connection) and 5 s after they left; the same for the peer:
#     a fresh baseline router, or a fresh nginx proxy with the comparison's settings,
#     master and workers summed; bench/idle_clients.py).
# Exits 1 when any request failed (socket error or non-2xx) on either side, idle
# clients included, when a large body did not pass whole, or when the router's peak
# RSS reached 64 MiB.
# Installs wrk, nginx and curl (and haproxy for --haproxy) from Debian when missing
# (needs root only then).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-"1 16 64"}
build=1
build_dir=build
run_main=1
run_large=1
run_micro=1
keep=0
peer=nginx      # or haproxy (--haproxy), or baseline (--baseline BIN)
base_bin=""
ramp=0
mirror_pct=""
idle_n=0
max_conns=""
reuse_quiet=""
tls=0

die_usage() { echo "bench.sh: $*" >&2; echo "try: scripts/bench.sh --help" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --large) run_main=0; run_large=1; run_micro=0 ;;
    --no-large) run_large=0 ;;
    --no-micro) run_micro=0 ;;
    --no-build) build=0 ;;
    --build-dir) (($# >= 2)) || die_usage "--build-dir needs a value"; build_dir=$2; shift ;;
    --rounds) (($# >= 2)) || die_usage "--rounds needs a value"; ROUNDS=$2; shift ;;
    --duration) (($# >= 2)) || die_usage "--duration needs a value"; DURATION=$2; shift ;;
    --conns) (($# >= 2)) || die_usage "--conns needs a value"; CONNS=$2; shift ;;
    --keep) keep=1 ;;
    --haproxy) peer=haproxy ;;
    --baseline) (($# >= 2)) || die_usage "--baseline needs a value"; peer=baseline; base_bin=$2; shift ;;
    --ramp) ramp=1 ;;
    --mirror) (($# >= 2)) || die_usage "--mirror needs a value"; mirror_pct=$2; shift ;;
    --max-conns) (($# >= 2)) || die_usage "--max-conns needs a value"; max_conns=$2; shift ;;
    --reuse-quiet-ms) (($# >= 2)) || die_usage "--reuse-quiet-ms needs a value"; reuse_quiet=$2; shift ;;
    --idle) (($# >= 2)) || die_usage "--idle needs a value"; idle_n=$2; shift ;;
    --tls) tls=1 ;;
    -h|--help) sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
  shift
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die_usage "bad --rounds '$ROUNDS'"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die_usage "bad --duration '$DURATION' (whole seconds)"
for c in $CONNS; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die_usage "bad connection count '$c'"; done
[[ "$idle_n" =~ ^[0-9]+$ ]] && ((idle_n <= 15000)) || die_usage "bad --idle '$idle_n' (0 to 15000 connections)"
((run_main || run_large)) || die_usage "--no-large with --large leaves nothing to run"
((tls && idle_n > 0)) && die_usage "--idle is not measured with --tls"
((tls)) && [[ $peer == baseline ]] && die_usage "--tls compares with nginx or HAProxy, not --baseline"
if [[ $peer == baseline ]]; then
  [[ -x "$base_bin" && -f "$base_bin" ]] || die_usage "--baseline '$base_bin' is not an executable file"
  base_bin=$(cd "$(dirname "$base_bin")" && pwd)/$(basename "$base_bin")
fi
[[ -z "$mirror_pct" || "$mirror_pct" =~ ^[0-9]+(\.[0-9]{1,2})?%?$ ]] || die_usage "bad --mirror '$mirror_pct' (a percent, 0-100)"

say() { echo "bench.sh: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# --- packages and build ---------------------------------------------------------
# wrk, nginx and curl from Debian, like scripts/deps.sh does for the build.
# perl (for bench/sink.pl) is perl-base, which every Debian system has.
missing=()
pkgs=(wrk nginx curl)
[[ $peer == haproxy ]] && pkgs+=(haproxy)
for pkg in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    fail "missing Debian packages: ${missing[*]}; run as root, or: apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  # Installing nginx (or haproxy) would start the system's service; keep it stopped.
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  rc=0
  { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
  [[ -n "$policy" ]] && rm -f "$policy"
  ((rc == 0)) || fail "apt-get install ${missing[*]} failed"
fi
for t in wrk nginx curl perl; do
  command -v "$t" >/dev/null || [[ -x "/usr/sbin/$t" ]] || fail "'$t' is not installed"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[[ $peer != haproxy || -x "$HAPROXY" ]] || fail "'haproxy' is not installed"

if ((build)); then
  scripts/deps.sh
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  targets=(strangler)
  if ((run_micro)) && cmake --build "$build_dir" --target help 2>/dev/null | grep -q strangler_bench; then
    targets+=(strangler_bench)
  fi
  cmake --build "$build_dir" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}"
fi
BIN=$(cd "$build_dir" && pwd)
[[ -x "$BIN/strangler" ]] || fail "$BIN/strangler is missing; build it (drop --no-build)"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BIN/CMakeCache.txt" 2>/dev/null || true)
[[ "$build_type" == Release ]] ||
  say "warning: $BIN is a '${build_type:-unknown}' build, not Release; numbers will not be representative"

# --- temp dir and process bookkeeping ----------------------------------------------
DIR=$(mktemp -d "${TMPDIR:-/tmp}/strangler-bench.XXXXXX")
# nginx's workers run as nobody when we are root: let them into the temp dir.
chmod 755 "$DIR"
commit=$(git -C "$ROOT" log -1 --format=%h 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  commit+=" + uncommitted changes"
fi
RAW="$DIR/raw.tsv"
SUMMARY="$DIR/summary.txt"

PIDS=()
NAMES=()
# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL; forgets the PID.
stop_pid() {
  local pid=$1 i rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    for i in "${!PIDS[@]}"; do [[ "${PIDS[i]}" == "$pid" ]] && say "${NAMES[i]} (pid $pid) ignored SIGTERM for 10 s; killing it"; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  for i in "${!PIDS[@]}"; do
    if [[ "${PIDS[i]}" == "$pid" ]]; then unset 'PIDS[i]' 'NAMES[i]'; fi
  done
  return "$rc"
}
on_exit() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in "${!PIDS[@]}"; do stop_pid "${PIDS[i]}" || true; done
  if ((keep)); then
    say "temp dir kept: $DIR"
  else
    # Keep the small files (raw numbers, wrk outputs, configs, error logs); drop the
    # big ones (the decision and access logs run to hundreds of MB, sparse files).
    rm -rf "$DIR/www" "$DIR/up.bin" "$DIR/strangler" "$DIR/strangler-baseline" "$DIR"/*.db "$DIR"/*.db-* "$DIR"/decisions*.log \
      "$DIR"/proxy/access.log "$DIR"/*/tmp 2>/dev/null || true
    if [[ -s "$RAW" || -s "$SUMMARY" ]]; then say "raw numbers and logs kept in $DIR"; else rm -rf "$DIR"; fi
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# Run a copy of the binary, so that a rebuild during the run cannot mix two versions.
cp -p "$BIN/strangler" "$DIR/strangler"
STRANGLER="$DIR/strangler"
BASE_STRANGLER=""
if [[ $peer == baseline ]]; then
  cp -p "$base_bin" "$DIR/strangler-baseline"
  BASE_STRANGLER="$DIR/strangler-baseline"
fi

# pick_port: sets PORT to a port nobody uses now (not in /proc/net/tcp{,6}) and
# that this script has not handed out, below the ephemeral range so that no
# outgoing connection takes it before our server binds it.
PICKED=" "
pick_port() {
  local lo hi p hex base span
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  if ((lo > 21000)); then base=20000; span=$((lo - 20000)); else base=$((hi + 1)); span=$((65535 - hi)); fi
  for _ in $(seq 500); do
    p=$((base + (RANDOM * 32768 + RANDOM) % span))
    printf -v hex ':%04X ' "$p"
    [[ "$PICKED" == *" $p "* ]] && continue
    grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null && continue
    PICKED+="$p "
    PORT=$p
    return 0
  done
  fail "found no free port"
}

# wait_http URL PID NAME: until URL answers (any HTTP status), 10 s at most.
wait_http() {
  local code
  for _ in $(seq 100); do
    code=$(curl -s -k -o /dev/null --max-time 1 -w '%{http_code}' "$1" 2>/dev/null || true)
    [[ -n "$code" && "$code" != 000 ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# cpu_ticks PID...: utime + stime (clock ticks) summed over the processes.
cpu_ticks() {
  local pid s f total=0
  for pid in "$@"; do
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    s=${s##*) }  # past "pid (comm) "
    read -ra f <<<"$s"
    total=$((total + f[11] + f[12]))  # fields 14 and 15 of stat
  done
  echo "$total"
}
# hwm_kb PID...: VmHWM (peak resident set, kB) summed over the processes.
hwm_kb() {
  local pid v total=0
  for pid in "$@"; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# nginx_pids MASTER: sets NGINX_PIDS to the master and its workers.
nginx_pids() {
  local kids
  kids=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
  read -ra NGINX_PIDS <<<"$1 $kids"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }  # calc FORMAT EXPR
mib() { calc '%.1f' "$1 / 1024"; }             # kB -> MiB

CLK_TCK=$(getconf CLK_TCK)
NPROC=$(nproc)
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "strangler bench, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $NPROC cores, ${CPU_MODEL:-unknown CPU}, Linux $(uname -r)"
  echo "tools: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | awk 'NR == 1 {print $1, $2}'), strangler ${build_type:-?} build in $BIN (commit $commit, binary of $(date -u -r "$STRANGLER" '+%H:%M:%S UTC'))"
  if [[ $peer == baseline ]]; then
    echo "peer: baseline router, a copy of $base_bin ($("$BASE_STRANGLER" --version 2>&1 | head -1), binary of $(date -u -r "$BASE_STRANGLER" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$BASE_STRANGLER" | cut -c1-12)); this build's binary: sha256 $(sha256sum "$STRANGLER" | cut -c1-12)"
  elif [[ $peer == haproxy ]]; then
    echo "peer: $("$HAPROXY" -v 2>&1 | head -1 | sed 's/ - https.*//'), nbthread $NPROC"
  else
    echo "peer: nginx reverse proxy"
  fi
  [[ -n "$max_conns" ]] && echo "this build: both backends capped at --max-conns $max_conns per instance"
  [[ -n "$reuse_quiet" ]] && echo "this build: both backends reuse a pooled connection after --reuse-quiet-ms $reuse_quiet"
  ((tls)) && echo "TLS: clients speak TLS to the router and to the peer (the same EC P-256 certificate); backends plain HTTP"
  ((ramp)) && echo "this build: a ramp runs on route orders (--to 100 --step 0.01 --every 1h --max-error-rate 5%)"
  [[ -n "$mirror_pct" ]] && echo "this build: route pages (/legacy/page -> legacy) mirrors ${mirror_pct%\%}% of its requests to new"
  echo "load average before: $LOAD_BEFORE   ($(uptime | sed 's/^ *//'))"
  echo "temp dir: $DIR"
} | tee "$SUMMARY" >&2

# --- the two backends: one nginx, one worker, two server blocks --------------------
# Each answers every request 200 with a ~100-byte JSON body and `X-Backend: NAME`.
# The legacy block also serves a sparse 1 GiB file under /big/ for --large.
pick_port; LEGACY_PORT=$PORT
pick_port; NEW_PORT=$PORT
mkdir -p "$DIR/backends/tmp" "$DIR/www/big"
# The users directive only applies as root; then the workers run as nobody.
nginx_user=""
[[ $(id -u) -eq 0 ]] && nginx_user="user nobody nogroup;"
temp_paths() {  # temp paths inside the prefix (Debian's default is /var/lib/nginx)
  local t
  for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path tmp/$t;"; done
}
body() { printf '{"backend":"%s","ok":true,"items":[1,2,3,4,5],"note":"a fixed answer of about one hundred bytes"}' "$1"; }
cat >"$DIR/backends/nginx.conf" <<EOF
# The backends: legacy (the default) and new. Started by scripts/bench.sh.
$nginx_user
daemon off;
worker_processes 1;
pid $DIR/backends/nginx.pid;
error_log $DIR/backends/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
$(temp_paths)
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  sendfile on;
  default_type application/json;
  server {
    listen 127.0.0.1:$LEGACY_PORT;
    location /big/ { root $DIR/www; default_type application/octet-stream; }
    location / { add_header X-Backend legacy always; return 200 '$(body legacy)'; }
  }
  server {
    listen 127.0.0.1:$NEW_PORT;
    location / { add_header X-Backend new always; return 200 '$(body new)'; }
  }
}
EOF
"$NGINX" -e "$DIR/backends/error.log" -p "$DIR/backends/" -c "$DIR/backends/nginx.conf" \
  >"$DIR/backends/stdout" 2>&1 &
PIDS+=($!); NAMES+=("backend nginx"); BACKENDS_PID=$!
if ! wait_http "http://127.0.0.1:$LEGACY_PORT/" "$BACKENDS_PID" ||
  ! wait_http "http://127.0.0.1:$NEW_PORT/" "$BACKENDS_PID"; then
  fail "the backend nginx did not start: $(cat "$DIR/backends/stdout" "$DIR/backends/error.log" 2>/dev/null)"
fi

# --- TLS (--tls): one certificate for the router and the peer ---------------------
SCHEME=http
ROUTER_EXTRA=()  # more `serve` options
if ((tls)); then
  SCHEME=https
  mkdir -p "$DIR/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
    fail "openssl could not make the bench's certificate"
  cat "$DIR/tls/cert.pem" "$DIR/tls/key.pem" >"$DIR/tls/both.pem"  # HAProxy's crt
  chmod 644 "$DIR/tls/"*.pem  # nginx's workers run as nobody
  ROUTER_EXTRA+=(--tls-cert "$DIR/tls/cert.pem" --tls-key "$DIR/tls/key.pem")
fi

# --- the router(s) ---------------------------------------------------------------
export STRANGLER_ACTOR=bench
DB="$DIR/strangler.db"
# in_store BIN DB ARGS...: one strangler command on that store (each binary gets its
# own store, made by itself: an older binary refuses a newer schema).
in_store() { "$1" --db "$2" "${@:3}" >/dev/null || fail "'$(basename "$1") --db $2 ${*:3}' failed"; }
S() { in_store "$STRANGLER" "$DB" "$@"; }
# make_store BIN DB: the backends and the route that every router in the bench has.
make_store() {
  in_store "$1" "$2" backend add legacy "http://127.0.0.1:$LEGACY_PORT"
  in_store "$1" "$2" backend add new "http://127.0.0.1:$NEW_PORT"
  in_store "$1" "$2" route add orders --to new --path /api/orders --percent 30 --sticky header:X-User-Id
}
make_store "$STRANGLER" "$DB"
if [[ -n "$max_conns" ]]; then
  S backend set legacy --max-conns "$max_conns"
  S backend set new --max-conns "$max_conns"
fi
if [[ -n "$reuse_quiet" ]]; then
  S backend set legacy --reuse-quiet-ms "$reuse_quiet"
  S backend set new --reuse-quiet-ms "$reuse_quiet"
fi
if [[ -n "$mirror_pct" ]]; then
  # A route on the other half of the requests (all to legacy, as without it), copying
  # a few of them to new; the orders requests are never mirrored. The answers differ
  # only in their "backend" field: ignored, so that the copies compare equal (parity).
  S route add pages --to legacy --path /legacy/page --mirror new --mirror-percent "${mirror_pct%\%}" \
    --ignore-field backend
fi
if ((ramp)); then
  # A long ramp: its first step (30% -> 30.01%) is taken at serve's first tick, the
  # next one in an hour; meanwhile serve counts the route's requests per side and
  # writes the counts to the store about once a second.
  S ramp orders --to 100 --step 0.01 --every 1h --max-error-rate 5%
fi
if [[ $peer == baseline ]]; then
  BASE_DB="$DIR/baseline.db"
  make_store "$BASE_STRANGLER" "$BASE_DB"
  [[ -n "$mirror_pct" ]] && in_store "$BASE_STRANGLER" "$BASE_DB" route add pages --to legacy --path /legacy/page
fi

# start_router LOG [BIN DB]: starts `strangler serve` (from BIN on store DB; default
# this build on its store) on a port it picks; sets ROUTER_PID, ROUTER, ROUTER_ERR.
ROUTERS_STARTED=0
start_router() {
  local log=$1 bin=${2:-$STRANGLER} db=${3:-$DB} line="" n=$((++ROUTERS_STARTED))
  "$bin" --db "$db" serve --listen 127.0.0.1:0 --log "$log" "${ROUTER_EXTRA[@]}" \
    >"$DIR/serve$n.out" 2>"$DIR/serve$n.err" &
  ROUTER_PID=$!
  PIDS+=("$ROUTER_PID"); NAMES+=("strangler serve ($(basename "$bin"))")
  for _ in $(seq 100); do
    line=$(grep -m1 -o 'listening on [^ ]*:[0-9]*' "$DIR/serve$n.err" 2>/dev/null || true)
    [[ -n "$line" ]] && break
    kill -0 "$ROUTER_PID" 2>/dev/null || fail "strangler serve did not start: $(cat "$DIR/serve$n.err")"
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "strangler serve did not say its port; see $DIR/serve$n.err"
  ROUTER="$SCHEME://127.0.0.1:${line##*:}"
  ROUTER_ERR="$DIR/serve$n.err"
  wait_http "$ROUTER/" "$ROUTER_PID" || fail "strangler serve does not answer on $ROUTER; see $ROUTER_ERR"
}
# stop_router [PID ERRFILE]: SIGTERM (default: the last router started); it must
# finish, flush its log and exit 0.
stop_router() {
  local pid=${1:-$ROUTER_PID} err=${2:-$ROUTER_ERR} rc=0
  stop_pid "$pid" || rc=$?
  ((rc == 0)) || fail "strangler serve exited with status $rc on SIGTERM (expected 0); see $err"
}

# --- the throughput comparison -----------------------------------------------------
main_failed=()
if ((run_main)); then
  if [[ $peer == nginx ]]; then
  # The nginx proxy doing the router's job: /api/orders (segment prefix, like
  # --path /api/orders) split 30% on X-User-Id, sticky; everything else to legacy.
  # The same header work as the router (Host kept, X-Forwarded-*, X-Request-Id in
  # and out), keep-alive to the backends, one JSON line per request, buffered.
  pick_port; NGINX_PORT=$PORT
  mkdir -p "$DIR/proxy/tmp"
  cat >"$DIR/proxy/nginx.conf" <<EOF
# The nginx reverse proxy compared with strangler serve. Started by scripts/bench.sh.
$nginx_user
daemon off;
worker_processes 2;
pid $DIR/proxy/nginx.pid;
error_log $DIR/proxy/error.log warn;
events { worker_connections 16384; }
http {
$(temp_paths)
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  log_format decision escape=json '{"ts":"\$time_iso8601","request_id":"\$req_id",'
    '"method":"\$request_method","path":"\$uri","backend":"\$upstream_addr",'
    '"status":\$status,"upstream_ms":"\$upstream_response_time","total_ms":\$request_time,'
    '"bytes_in":\$request_length,"bytes_out":\$bytes_sent,"client":"\$remote_addr"}';
  access_log $DIR/proxy/access.log decision buffer=64k flush=1s;

  upstream legacy { server 127.0.0.1:$LEGACY_PORT; keepalive 64; keepalive_requests 1000000; }
  upstream new { server 127.0.0.1:$NEW_PORT; keepalive 64; keepalive_requests 1000000; }
  # MurmurHash2 of the user id, not strangler's FNV-1a: the same 30% share,
  # not the same users.
  split_clients "\${http_x_user_id}" \$orders_upstream { 30% new; * legacy; }
  map \$http_x_request_id \$req_id { "" \$request_id; default \$http_x_request_id; }

  server {
    listen 127.0.0.1:$NGINX_PORT$( ((tls)) && echo " ssl");
$( ((tls)) && printf '    ssl_certificate %s;\n    ssl_certificate_key %s;\n' "$DIR/tls/cert.pem" "$DIR/tls/key.pem")
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Host \$host;
    proxy_set_header X-Request-Id \$req_id;
    add_header X-Request-Id \$req_id always;
    location = /api/orders { proxy_pass http://\$orders_upstream; }
    location /api/orders/ { proxy_pass http://\$orders_upstream; }
    location / { proxy_pass http://legacy; }
  }
}
EOF
  "$NGINX" -e "$DIR/proxy/error.log" -p "$DIR/proxy/" -c "$DIR/proxy/nginx.conf" \
    >"$DIR/proxy/stdout" 2>&1 &
  PIDS+=($!); NAMES+=("nginx proxy"); PROXY_PID=$!
  NGINX_URL="$SCHEME://127.0.0.1:$NGINX_PORT"
  wait_http "$NGINX_URL/" "$PROXY_PID" ||
    fail "the nginx proxy did not start: $(cat "$DIR/proxy/stdout" "$DIR/proxy/error.log" 2>/dev/null)"
  PEER_URL=$NGINX_URL
  elif [[ $peer == haproxy ]]; then
  # HAProxy doing the same job: /api/orders (segment prefix) split 30% by an ACL
  # on a hash of X-User-Id (CRC32, not FNV-1a: the same share, not the same
  # users); the same header work; keep-alive to the backends, reused by any
  # client (http-reuse always); one JSON line per request, to a file.
  pick_port; HAPROXY_PORT=$PORT
  mkdir -p "$DIR/proxy"
  # Two descriptors per connection (client and backend) and some to spare,
  # within what this shell may open (raised to its hard limit first).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  HAPROXY_MAXCONN=$(( ($(ulimit -n) - 200) / 2 ))
  cat >"$DIR/proxy/haproxy.cfg" <<EOF
# The HAProxy compared with strangler serve. Started by scripts/bench.sh.
global
  nbthread $NPROC
  maxconn $HAPROXY_MAXCONN
  log stdout format raw local0
defaults
  mode http
  log global
  option http-keep-alive
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client 65s
  timeout server 30s
  timeout http-keep-alive 65s
  log-format '{"ts":"%tr","request_id":"%[var(txn.rid)]","method":"%HM","path":"%HP","backend":"%b","status":%ST,"upstream_ms":%Tr,"total_ms":%Ta,"bytes_in":%U,"bytes_out":%B,"client":"%ci"}'
frontend router
  bind 127.0.0.1:$HAPROXY_PORT$( ((tls)) && echo " ssl crt $DIR/tls/both.pem alpn http/1.1")
  unique-id-format %{+X}o%ci%cp%Ts%rt%pid
  http-request set-var(txn.rid) req.hdr(X-Request-Id)
  http-request set-var(txn.rid) unique-id if !{ var(txn.rid) -m found }
  http-request set-header X-Request-Id %[var(txn.rid)]
  http-request set-header X-Forwarded-Proto $SCHEME
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-Id %[var(txn.rid)]
  acl orders path /api/orders
  acl orders path_beg /api/orders/
  acl to_new req.hdr(X-User-Id),crc32(1),mod(100) -m int lt 30
  use_backend new if orders to_new
  default_backend legacy
backend legacy
  server legacy 127.0.0.1:$LEGACY_PORT
backend new
  server new 127.0.0.1:$NEW_PORT
EOF
  "$HAPROXY" -c -f "$DIR/proxy/haproxy.cfg" >"$DIR/proxy/check" 2>&1 ||
    fail "haproxy refused its configuration: $(cat "$DIR/proxy/check")"
  "$HAPROXY" -db -f "$DIR/proxy/haproxy.cfg" >"$DIR/proxy/access.log" 2>"$DIR/proxy/error.log" &
  PIDS+=($!); NAMES+=("haproxy"); PROXY_PID=$!
  HAPROXY_URL="$SCHEME://127.0.0.1:$HAPROXY_PORT"
  wait_http "$HAPROXY_URL/" "$PROXY_PID" ||
    fail "haproxy did not start: $(cat "$DIR/proxy/error.log" 2>/dev/null)"
  PEER_URL=$HAPROXY_URL
  else
    # The baseline: the same router code path, another binary, its own store.
    start_router "$DIR/decisions-baseline.log" "$BASE_STRANGLER" "$BASE_DB"
    PROXY_PID=$ROUTER_PID
    BASE_ERR=$ROUTER_ERR
    PEER_URL=$ROUTER
  fi
  # peer_pids: sets PEER_PIDS to the peer's processes (nginx: master and workers).
  peer_pids() {
    if [[ $peer == nginx ]]; then nginx_pids "$PROXY_PID"; PEER_PIDS=("${NGINX_PIDS[@]}")
    else PEER_PIDS=("$PROXY_PID"); fi
  }

  start_router "$DIR/decisions.log"
  MAIN_ROUTER_PID=$ROUTER_PID

  # Both send a sample the right way before we measure.
  for target in "$ROUTER" "$PEER_URL"; do
    got=$(curl -s -k -o /dev/null -w '%{http_code} %header{x-backend}' "$target/legacy/page/1")
    [[ "$got" == "200 legacy" ]] || fail "$target/legacy/page/1 gave '$got', want '200 legacy'"
  done

  printf 'conns\tround\ttarget\trequests\tduration_us\trps\tp50_us\tp90_us\tp99_us\tmax_us\tconnect\tread\twrite\tstatus\ttimeout\tnon2xx\tnew\n' >"$RAW"
  mkdir -p "$DIR/wrk"
  declare -A R
  # run_wrk TARGET URL CONNS LABEL: one wrk run; sets R[...] from its BENCH line.
  run_wrk() {
    local url=$2 c=$3 label=$4 threads=2 out line kv rc=0
    ((c < 2)) && threads=1
    out="$DIR/wrk/$label.txt"
    wrk -t"$threads" -c"$c" -d"${WRK_DURATION}s" --latency -s bench/wrk.lua "$url" >"$out" 2>&1 || rc=$?
    line=$(grep -m1 '^BENCH ' "$out" || true)
    [[ $rc -eq 0 && -n "$line" ]] || fail "wrk against $1 ($url) failed (exit $rc); its output: $(cat "$out")"
    R=()
    for kv in ${line#BENCH }; do R[${kv%%=*}]=${kv#*=}; done
  }

  # A short warm-up of each (not counted): connections, pools, page faults.
  WRK_DURATION=2
  run_wrk router "$ROUTER" 16 warmup-router
  run_wrk "$peer" "$PEER_URL" 16 "warmup-$peer"
  WRK_DURATION=$DURATION

  router_ticks0=$(cpu_ticks "$MAIN_ROUTER_PID")
  peer_pids
  peer_ticks0=$(cpu_ticks "${PEER_PIDS[@]}")
  router_requests=0
  peer_requests=0
  runs=$(( $(wc -w <<<"$CONNS") * ROUNDS * 2 ))
  say "measuring: $runs wrk runs of ${DURATION}s (about $((runs * (DURATION + 1) / 60 + 1)) min)"
  declare -A RPS P50 P99 NEWSHARE
  for c in $CONNS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      for target in router "$peer"; do
        url=$ROUTER; [[ $target == router ]] || url=$PEER_URL
        run_wrk "$target" "$url" "$c" "c$c-r$r-$target"
        printf '%s\t%s\t%s' "$c" "$r" "$target" >>"$RAW"
        for k in requests duration_us rps p50_us p90_us p99_us max_us connect read write status timeout non2xx new; do
          printf '\t%s' "${R[$k]}" >>"$RAW"
        done
        printf '\n' >>"$RAW"
        errs=$((R[connect] + R[read] + R[write] + R[timeout] + R[non2xx]))
        if ((errs)); then
          main_failed+=("$target at $c connections, round $r: connect=${R[connect]} read=${R[read]} write=${R[write]} timeout=${R[timeout]} non-2xx=${R[non2xx]} of ${R[requests]} requests (see $DIR/wrk/c$c-r$r-$target.txt)")
        fi
        RPS[$c,$r,$target]=${R[rps]}
        P50[$c,$r,$target]=${R[p50_us]}
        P99[$c,$r,$target]=${R[p99_us]}
        NEWSHARE[$c,$r,$target]=$(calc '%.4f' "${R[new]} / (${R[requests]} > 0 ? ${R[requests]} : 1)")
        if [[ $target == router ]]; then
          router_requests=$((router_requests + R[requests]))
          if ! kill -0 "$MAIN_ROUTER_PID" 2>/dev/null; then
            # Ctrl-C reaches the whole process group: the router stops on it too.
            grep -q 'signal 2:' "$ROUTER_ERR" && { say "interrupted"; exit 130; }
            fail "strangler serve died during the run at $c connections, round $r; see $ROUTER_ERR"
          fi
        else
          peer_requests=$((peer_requests + R[requests]))
          if [[ $peer == baseline ]] && ! kill -0 "$PROXY_PID" 2>/dev/null; then
            grep -q 'signal 2:' "$BASE_ERR" && { say "interrupted"; exit 130; }
            fail "the baseline strangler serve died during the run at $c connections, round $r; see $BASE_ERR"
          fi
        fi
        printf '  %-8s c=%-3s round %s: %9.0f req/s  p50 %6d us  p99 %7d us  errors %d\n' \
          "$target" "$c" "$r" "${R[rps]}" "${R[p50_us]}" "${R[p99_us]}" "$errs" >&2
      done
    done
  done

  # CPU and memory, read before anything stops.
  router_ticks=$(($(cpu_ticks "$MAIN_ROUTER_PID") - router_ticks0))
  peer_pids
  peer_ticks=$(($(cpu_ticks "${PEER_PIDS[@]}") - peer_ticks0))
  router_hwm=$(hwm_kb "$MAIN_ROUTER_PID")
  peer_hwm=$(hwm_kb "${PEER_PIDS[@]}")
  router_threads=$(awk '/^Threads:/ {print $2}' "/proc/$MAIN_ROUTER_PID/status")
  peer_threads=$(awk '/^Threads:/ {print $2}' "/proc/$PROXY_PID/status")
  # With --ramp: the ramp's state and the counts serve wrote for its window, read
  # while it still runs (the final flush at exit adds the last second).
  ramp_state=""
  if ((ramp)); then
    ramp_state=$("$STRANGLER" --db "$DB" ramp list --json 2>&1 | tr -d ' \n' |
      sed -E 's/.*"current":\{"else_5xx":([0-9]+),"else_n":([0-9]+),"to_5xx":([0-9]+),"to_n":([0-9]+)\}.*"percent":([0-9.]+).*"state":"([a-z_]+)".*"steps":([0-9]+).*/state \6, percent \5, \7 step(s) taken; counts written for the current window: to_n=\4 to_5xx=\3 else_n=\2 else_5xx=\1/')
  fi
  # With --tls: full handshakes per second, every request on a new connection
  # (bench/wrk.lua sends Connection: close when BENCH_CONNECTION_CLOSE is set).
  declare -A HS
  if ((tls)); then
    for ((r = 1; r <= ROUNDS; r++)); do
      for target in router "$peer"; do
        url=$ROUTER; [[ $target == router ]] || url=$PEER_URL
        BENCH_CONNECTION_CLOSE=1 run_wrk "$target" "$url" 16 "handshakes-r$r-$target"
        errs=$((R[connect] + R[read] + R[write] + R[timeout] + R[non2xx]))
        ((errs == 0)) || main_failed+=("$target, handshake run $r: connect=${R[connect]} read=${R[read]} write=${R[write]} timeout=${R[timeout]} non-2xx=${R[non2xx]} of ${R[requests]} requests")
        HS[$r,$target]=${R[rps]}
        printf '  %-8s handshakes round %s: %9.0f new TLS connections/s  errors %d\n' "$target" "$r" "${R[rps]}" "$errs" >&2
      done
    done
  fi
  stop_router
  if [[ $peer == baseline ]]; then stop_router "$PROXY_PID" "$BASE_ERR"; else stop_pid "$PROXY_PID" || true; fi
  # With --mirror: what the mirror did (serve wrote its last results when it stopped).
  mirror_state=""
  if [[ -n "$mirror_pct" ]]; then
    mirror_state=$("$STRANGLER" --db "$DB" diff pages --limit 1 2>&1 || true)
    mirror_state=${mirror_state%%$'\n\n'*}  # the per-route table, not the mismatches
  fi
  decision_lines=$(wc -l <"$DIR/decisions.log")
  if [[ $peer == baseline ]]; then peer_lines=$(wc -l <"$DIR/decisions-baseline.log")
  else peer_lines=$(wc -l <"$DIR/proxy/access.log"); fi

  router_us=$(calc '%.2f' "$router_ticks * 1000000 / $CLK_TCK / ($router_requests > 0 ? $router_requests : 1)")
  peer_us=$(calc '%.2f' "$peer_ticks * 1000000 / $CLK_TCK / ($peer_requests > 0 ? $peer_requests : 1)")
  # Column widths: the nginx table as it always was; wider for a longer peer name.
  w_rps=$(( ${#peer} + 6 > 11 ? ${#peer} + 6 : 11 ))
  w_lat=$(( ${#peer} + 4 > 9 ? ${#peer} + 4 : 9 ))
  dashes() { printf '%*s' "$1" '' | tr ' ' -; }
  {
    echo
    echo "Throughput: wrk -t2 (-t1 at 1 connection) -d${DURATION}s --latency -s bench/wrk.lua, $ROUNDS alternations"
    echo "(router, $peer, router, $peer, ...) per connection count; medians. Ratios are router/$peer,"
    echo "the median of the $ROUNDS paired runs. Latencies in ms."
    [[ $peer == baseline ]] && echo "router: this build ($BIN/strangler); baseline: $base_bin."
    echo
    printf "%5s | %12s | %${w_rps}s | %5s | %10s | %${w_lat}s | %10s | %${w_lat}s | %9s\n" \
      conns "router req/s" "$peer req/s" ratio "router p50" "$peer p50" "router p99" "$peer p99" "p99 ratio"
    printf '%s\n' "------+--------------+-$(dashes "$w_rps")-+-------+------------+-$(dashes "$w_lat")-+------------+-$(dashes "$w_lat")-+----------"
    for c in $CONNS; do
      rr=(); nr=(); rp50=(); np50=(); rp99=(); np99=(); ratio=(); ratio99=()
      for ((r = 1; r <= ROUNDS; r++)); do
        rr+=("${RPS[$c,$r,router]}"); nr+=("${RPS[$c,$r,$peer]}")
        rp50+=("${P50[$c,$r,router]}"); np50+=("${P50[$c,$r,$peer]}")
        rp99+=("${P99[$c,$r,router]}"); np99+=("${P99[$c,$r,$peer]}")
        ratio+=("$(calc '%.4f' "${RPS[$c,$r,router]} / ${RPS[$c,$r,$peer]}")")
        ratio99+=("$(calc '%.4f' "${P99[$c,$r,router]} / ${P99[$c,$r,$peer]}")")
      done
      printf "%5s | %12.0f | %${w_rps}.0f | %5.2f | %10.3f | %${w_lat}.3f | %10.3f | %${w_lat}.3f | %9.2f\n" "$c" \
        "$(median "${rr[@]}")" "$(median "${nr[@]}")" "$(median "${ratio[@]}")" \
        "$(calc '%.4f' "$(median "${rp50[@]}") / 1000")" "$(calc '%.4f' "$(median "${np50[@]}") / 1000")" \
        "$(calc '%.4f' "$(median "${rp99[@]}") / 1000")" "$(calc '%.4f' "$(median "${np99[@]}") / 1000")" \
        "$(median "${ratio99[@]}")"
    done
    echo
    echo "paired req/s ratios router/$peer per round (round 1 first):"
    for c in $CONNS; do
      line=""
      for ((r = 1; r <= ROUNDS; r++)); do
        line+=" $(calc '%.3f' "${RPS[$c,$r,router]} / ${RPS[$c,$r,$peer]}")"
      done
      printf '  %3s conns:%s\n' "$c" "$line"
    done
    rs=(); ns=()
    for c in $CONNS; do for ((r = 1; r <= ROUNDS; r++)); do
      rs+=("${NEWSHARE[$c,$r,router]}"); ns+=("${NEWSHARE[$c,$r,$peer]}")
    done; done
    echo "answers from new: router $(calc '%.1f' "$(median "${rs[@]}") * 100")%, $peer $(calc '%.1f' "$(median "${ns[@]}") * 100")% (median per run; expected about 15%: half the requests are /api/orders, 30% of those users go to new)"
    echo "router: peak RSS (VmHWM) $(mib "$router_hwm") MiB ($router_threads threads left at the end); CPU $(calc '%.1f' "$router_us") us/request ($(calc '%.2f' "$router_ticks / $CLK_TCK") s user+sys for $router_requests requests)"
    if [[ $peer == baseline ]]; then
      echo "baseline router: peak RSS (VmHWM) $(mib "$peer_hwm") MiB ($peer_threads threads left at the end); CPU $(calc '%.1f' "$peer_us") us/request ($(calc '%.2f' "$peer_ticks / $CLK_TCK") s user+sys for $peer_requests requests)"
    elif [[ $peer == haproxy ]]; then
      echo "haproxy ($NPROC threads): peak RSS (VmHWM) $(mib "$peer_hwm") MiB; CPU $(calc '%.1f' "$peer_us") us/request ($(calc '%.2f' "$peer_ticks / $CLK_TCK") s user+sys for $peer_requests requests)"
    else
      echo "nginx proxy (master + 2 workers): peak RSS $(mib "$peer_hwm") MiB summed; CPU $(calc '%.1f' "$peer_us") us/request ($(calc '%.2f' "$peer_ticks / $CLK_TCK") s user+sys for $peer_requests requests)"
    fi
    echo "CPU per request, router/$peer: $(calc '%.3f' "$router_us / ($peer_us > 0 ? $peer_us : 1)") (process CPU over all measured runs / requests wrk completed)"
    if ((ramp)); then
      echo "ramp on orders (router), read at the end of the runs: $ramp_state"
    fi
    if [[ -n "$mirror_pct" ]]; then
      echo "mirror on pages (router, ${mirror_pct%\%}% of /legacy/page requests to new; warm-up included), 'strangler diff pages':"
      while IFS= read -r line; do echo "    $line"; done <<<"$mirror_state"
    fi
    if [[ $peer == baseline ]]; then
      echo "logs: router decision log $decision_lines lines, baseline decision log $peer_lines lines (warm-up included; wrk does not count requests cut off at the end)"
    else
      echo "logs: router decision log $decision_lines lines, $peer access log $peer_lines lines (warm-up included; wrk does not count requests cut off at the end)"
    fi
    if ((tls)); then
      hr=(); hp=(); hratio=()
      for ((r = 1; r <= ROUNDS; r++)); do
        hr+=("${HS[$r,router]}"); hp+=("${HS[$r,$peer]}")
        hratio+=("$(calc '%.4f' "${HS[$r,router]} / ${HS[$r,$peer]}")")
      done
      echo "TLS handshakes (16 clients, Connection: close, every request a new connection and a full handshake): router $(calc '%.0f' "$(median "${hr[@]}")")/s, $peer $(calc '%.0f' "$(median "${hp[@]}")")/s, ratio $(calc '%.2f' "$(median "${hratio[@]}")") (median of $ROUNDS paired runs; per round:$(for x in "${hratio[@]}"; do printf ' %.3f' "$x"; done))"
    fi
    echo "raw per-run numbers: $RAW"
  } | tee -a "$SUMMARY"
  for f in "${main_failed[@]}"; do say "FAILED request(s): $f"; done
fi

# --- idle connections -----------------------------------------------------------------
idle_failed=()
if ((idle_n > 0)); then
  say "idle connections: $idle_n keep-alive clients, one request each, held open"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  (( $(ulimit -n) > 2 * idle_n + 256 )) || fail "--idle $idle_n needs more open files than 'ulimit -n' ($(ulimit -n)) allows"
  idle_lines=()
  # idle_step LABEL PORT PID...: one measurement; appends its line to idle_lines.
  idle_step() {
    local label=$1 port=$2 out n failed before held after
    out=$(python3 bench/idle_clients.py "$port" "$idle_n" "${@:3}") || fail "bench/idle_clients.py failed for $label"
    read -r n failed before held after <<<"$(sed -E 's/^IDLE n=([0-9]+) failed=([0-9]+) before_kb=([0-9]+) held_kb=([0-9]+) after_kb=([0-9]+)$/\1 \2 \3 \4 \5/' <<<"$out")"
    [[ "$after" =~ ^[0-9]+$ ]] || fail "bench/idle_clients.py said '$out'"
    idle_lines+=("$(printf '%-24s RSS before %7.1f MiB, held %7.1f MiB (%6.1f KiB per idle connection), 5 s after they left %7.1f MiB' \
      "$label:" "$(calc '%f' "$before / 1024")" "$(calc '%f' "$held / 1024")" \
      "$(calc '%f' "($held - $before) / $n")" "$(calc '%f' "$after / 1024")")")
    ((failed == 0)) || idle_failed+=("$label: $failed of $n idle clients got no 200")
  }
  ROUTER_EXTRA=(--max-connections $((idle_n + 64)))
  start_router "$DIR/decisions-idle.log"
  idle_step router "${ROUTER##*:}" "$ROUTER_PID"
  stop_router
  if [[ $peer == baseline ]]; then
    start_router "$DIR/decisions-idle-baseline.log" "$BASE_STRANGLER" "$BASE_DB"
    idle_step baseline "${ROUTER##*:}" "$ROUTER_PID"
    stop_router
  elif [[ $peer == haproxy ]] && ((run_main)); then
    # A fresh HAProxy with the comparison's configuration.
    "$HAPROXY" -db -f "$DIR/proxy/haproxy.cfg" >"$DIR/proxy/access-idle.log" 2>"$DIR/proxy/error-idle.log" &
    PIDS+=($!); NAMES+=("haproxy (idle)"); IDLE_HAPROXY_PID=$!
    wait_http "$HAPROXY_URL/" "$IDLE_HAPROXY_PID" ||
      fail "haproxy did not start again: $(cat "$DIR/proxy/error-idle.log" 2>/dev/null)"
    idle_step haproxy "${HAPROXY_URL##*:}" "$IDLE_HAPROXY_PID"
    stop_pid "$IDLE_HAPROXY_PID" || true
  elif ((run_main)); then
    # A fresh nginx proxy with the comparison's configuration.
    "$NGINX" -e "$DIR/proxy/error.log" -p "$DIR/proxy/" -c "$DIR/proxy/nginx.conf" \
      >"$DIR/proxy/stdout-idle" 2>&1 &
    PIDS+=($!); NAMES+=("nginx proxy (idle)"); IDLE_NGINX_PID=$!
    wait_http "$NGINX_URL/" "$IDLE_NGINX_PID" ||
      fail "the nginx proxy did not start again: $(cat "$DIR/proxy/stdout-idle" "$DIR/proxy/error.log" 2>/dev/null)"
    nginx_pids "$IDLE_NGINX_PID"
    idle_step "nginx proxy" "${NGINX_URL##*:}" "${NGINX_PIDS[@]}"
    stop_pid "$IDLE_NGINX_PID" || true
  fi
  ROUTER_EXTRA=()
  {
    echo
    echo "Idle keep-alive connections ($idle_n, one request each, held 2 s):"
    printf '  %s\n' "${idle_lines[@]}"
  } | tee -a "$SUMMARY"
  for f in "${idle_failed[@]}"; do say "FAILED idle clients: $f"; done
fi

# --- large bodies ---------------------------------------------------------------------
large_failed=()
if ((run_large)); then
  say "large bodies: 1 GiB down and 1 GiB up through a fresh router"
  truncate -s 1G "$DIR/www/big/1g.bin"
  truncate -s 1G "$DIR/up.bin"
  # Reading a hole fills the page cache with zero pages: read both once first, so
  # that no transfer below pays for that and the direct and routed ones compare.
  cat "$DIR/www/big/1g.bin" "$DIR/up.bin" >/dev/null
  perl bench/sink.pl 127.0.0.1:0 >"$DIR/sink.out" 2>"$DIR/sink.err" &
  PIDS+=($!); NAMES+=("upload sink"); SINK_PID=$!
  line=""
  for _ in $(seq 100); do
    line=$(grep -m1 '^listening on ' "$DIR/sink.out" 2>/dev/null || true)
    [[ -n "$line" ]] && break
    kill -0 "$SINK_PID" 2>/dev/null || fail "bench/sink.pl did not start: $(cat "$DIR/sink.err")"
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "bench/sink.pl did not say its port"
  SINK="http://127.0.0.1:${line##*:}"
  S backend add sink "$SINK"
  S route add upload --to sink --path /upload

  start_router "$DIR/decisions-large.log"
  LARGE_ROUTER_PID=$ROUTER_PID
  hwm_start=$(hwm_kb "$LARGE_ROUTER_PID")
  GIB=1073741824
  LIMIT_KB=$((64 * 1024))
  W='%{http_code} %{size_download} %{size_upload} %{time_total}'

  # large CURL_ARGS...: one transfer; sets CODE DOWN UP TIME and BODY (what it answered).
  large_lines=()
  large() {
    local out
    out=$(curl -s --max-time 300 -w "$W" "$@" 2>&1) || true
    read -r CODE DOWN UP TIME <<<"${out##*$'\n'}"
    BODY=${out%$'\n'*}
  }
  # Direct from the backends first, for comparison (no router).
  large -o /dev/null "http://127.0.0.1:$LEGACY_PORT/big/1g.bin"
  direct_down="$(calc '%.0f' "$DOWN / $TIME / 1048576") MiB/s"
  large -o /dev/null -T "$DIR/up.bin" "$SINK/upload"
  direct_up="$(calc '%.0f' "$UP / $TIME / 1048576") MiB/s"

  large -o /dev/null "$ROUTER/big/1g.bin"
  hwm_down=$(hwm_kb "$LARGE_ROUTER_PID")
  line="1 GiB response through the router: status $CODE, $DOWN bytes in $(calc '%.2f' "$TIME") s, $(calc '%.0f' "$DOWN / ($TIME > 0 ? $TIME : 1) / 1048576") MiB/s (direct from nginx: $direct_down); router VmHWM $(mib "$hwm_down") MiB"
  large_lines+=("$line")
  [[ "$CODE" == 200 && "$DOWN" == "$GIB" ]] || large_failed+=("1 GiB response: status '$CODE', $DOWN of $GIB bytes")

  large -T "$DIR/up.bin" "$ROUTER/upload"
  hwm_up=$(hwm_kb "$LARGE_ROUTER_PID")
  received=$(sed -n 's/.*"received":\([0-9]*\).*/\1/p' <<<"$BODY")
  line="1 GiB upload through the router:   status $CODE, $UP bytes in $(calc '%.2f' "$TIME") s, $(calc '%.0f' "$UP / ($TIME > 0 ? $TIME : 1) / 1048576") MiB/s (direct to the sink: $direct_up); the sink read ${received:-?} bytes; router VmHWM $(mib "$hwm_up") MiB"
  large_lines+=("$line")
  [[ "$CODE" == 200 && "$UP" == "$GIB" && "$received" == "$GIB" ]] ||
    large_failed+=("1 GiB upload: status '$CODE', sent $UP, the sink read '${received:-nothing}' of $GIB bytes (answer: $BODY)")
  ((hwm_down < LIMIT_KB)) || large_failed+=("router VmHWM $(mib "$hwm_down") MiB after the 1 GiB response: not under 64 MiB")
  ((hwm_up < LIMIT_KB)) || large_failed+=("router VmHWM $(mib "$hwm_up") MiB after the 1 GiB upload: not under 64 MiB")
  stop_router
  {
    echo
    echo "Large bodies (a fresh router; its VmHWM was $(mib "$hwm_start") MiB after start; limit 64 MiB):"
    printf '  %s\n' "${large_lines[@]}"
    echo "  decision log: $(grep -o '"path":"/[a-z]*[^"]*"[^}]*"bytes_in":[0-9]*,"bytes_out":[0-9]*' "$DIR/decisions-large.log" |
      sed -E 's/"path":"([^"]*)".*"bytes_in":([0-9]*),"bytes_out":([0-9]*)/\1 bytes_in=\2 bytes_out=\3/' | grep -E '^/(big|upload)' | paste -sd';' | sed 's/;/; /g')"
    if ((${#large_failed[@]} == 0)); then
      echo "  ok: both passed whole, router VmHWM stayed under 64 MiB"
    fi
  } | tee -a "$SUMMARY"
  for f in "${large_failed[@]}"; do say "FAILED large body: $f"; done
fi

# --- Decide() micro-benchmarks ------------------------------------------------------------
if ((run_micro)); then
  if [[ -x "$BIN/strangler_bench" ]]; then
    say "micro-benchmarks: $BIN/strangler_bench (about 25 s)"
    "$BIN/strangler_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      >"$DIR/micro.txt" 2>&1 || fail "strangler_bench failed: $(tail -5 "$DIR/micro.txt")"
    {
      echo
      echo "Micro-benchmarks (build/strangler_bench, median of 3 repetitions):"
      grep -E '^Benchmark |_median ' "$DIR/micro.txt" | sed 's/^/  /'
      grep -E '^Load Average|WARNING' "$DIR/micro.txt" | sed 's/^/  (/; s/$/)/' || true
    } | tee -a "$SUMMARY"
  else
    say "no $BIN/strangler_bench (needs libbenchmark-dev at configure time); micro-benchmarks skipped"
  fi
fi

{
  echo
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (before: $LOAD_BEFORE; $NPROC cores, shared: treat numbers as noisy)"
  echo "summary: $SUMMARY"
} | tee -a "$SUMMARY"

if ((${#main_failed[@]} + ${#large_failed[@]} + ${#idle_failed[@]})); then
  say "FAILED: $((${#main_failed[@]} + ${#large_failed[@]} + ${#idle_failed[@]})) check(s) failed (see above)"
  exit 1
fi
say "done"
