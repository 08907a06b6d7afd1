#!/usr/bin/env bash
# Runs the load-generator scenarios (W1–W4 and W4-control) against a freshly started server
# per scenario — Tickwire, and the Node `ws` baseline as its neighbour — and writes per-run
# summaries, JSON results and plots plus a combined summary.md and comparison plots.
#
# The server is pinned to one core and the generator to the other (taskset), as issue 5's
# reference figures were measured; both still share the machine (memory bandwidth, caches,
# the kernel's loopback path), which the results should be read with.
#
# Usage: benches/run-scenarios.sh [OUT_DIR]
# Environment:
#   SERVERS="tickwire node-ws"   which servers to measure; "tickwire-b" is a second Tickwire
#                                binary (TICKWIRE_BIN_B), to compare a change against a base
#   REPEAT=1                     run every (scenario, server) this many times, in rounds
#                                that each run every scenario and server (in reverse order
#                                every other round); labels get -r1, -r2, ... and
#                                summary.md adds the median and range of each, and the
#                                median of W4's per-round ratios to W4-control (on a shared
#                                or virtual machine one run moves by more than many changes)
#   SCENARIOS="w1 w2 w3 w4"     scenario file prefixes under benches/scenarios/ (w4 includes
#                               w4-control, the no-stalled-clients reference)
#   DURATION=20                  override every scenario's measurement seconds
#   TICKWIRE_BIN=path            server binary (default: build it into the cargo target dir)
#   TICKWIRE_BIN_B=path          the "tickwire-b" server's binary
#   LOADGEN_BIN=path             generator binary (default: build it likewise)
#   SERVER_CPU=0 LOADGEN_CPU=1   cores for taskset
#   NICE=-10                     run server and generator at this nice level (a shared
#                                machine's builds then yield to the measurement; needs root)
#   SERVER_RT=50                 run the server under SCHED_FIFO at this priority (chrt -f;
#                                needs root): its threads run to completion instead of
#                                preempting each other, and no other task preempts them.
#                                For the latency scenarios (W1, W3, W4): a saturated server
#                                (W2) gets worse, as nothing then interleaves its threads.
#   BUSY_POLL=1                  the generator polls its sockets without sleeping
#                                (--busy-poll; off by itself for multi-threaded scenarios)
#   CARGO_BUILD_JOBS             passed through to cargo
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVERS=${SERVERS:-"tickwire node-ws"}
REPEAT=${REPEAT:-1}
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { log "REPEAT must be a positive integer"; exit 2; }
SCENARIOS=${SCENARIOS:-"w1 w2 w3 w4"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
NODE_DIR=$ROOT/benches/baselines/node-ws

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mkdir -p "$OUT"
log "results in $OUT"

if [[ -z "${LOADGEN_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p tickwire-benches --bin tickwire-loadgen)
fi
LOADGEN=${LOADGEN_BIN:-$TARGET/release/tickwire-loadgen}
if [[ " $SERVERS " == *" tickwire "* ]]; then
  if [[ -z "${TICKWIRE_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release -p tickwire-server)
    TICKWIRE_BIN=$TARGET/release/tickwire
  fi
fi
if [[ " $SERVERS " == *" tickwire-b "* && -z "${TICKWIRE_BIN_B:-}" ]]; then
  log "SERVERS names tickwire-b: set TICKWIRE_BIN_B to its binary"
  exit 2
fi
if [[ " $SERVERS " == *" node-ws "* && ! -d "$NODE_DIR/node_modules" ]]; then
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
fi

# 10,000+ connections: raise the open-files limit for the servers started below.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PIN_SERVER=()
PIN_LOADGEN=()
if [[ -n "${NICE:-}" ]]; then
  PIN_SERVER=(nice -n "$NICE")
  PIN_LOADGEN=(nice -n "$NICE")
fi
if [[ -n "${SERVER_RT:-}" ]]; then
  PIN_SERVER+=(chrt -f "$SERVER_RT")
fi
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
  PIN_SERVER+=(taskset -c "$SERVER_CPU")
  PIN_LOADGEN+=(taskset -c "$LOADGEN_CPU")
else
  log "warning: taskset or a second core missing: running unpinned"
fi

wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

stop_server() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

files=()
for s in $SCENARIOS; do
  for f in "$ROOT"/benches/scenarios/"$s"-*.toml; do
    [[ -e "$f" ]] && files+=("$f")
  done
done
[[ ${#files[@]} -gt 0 ]] || { log "no scenario files for: $SCENARIOS"; exit 2; }

port=18200
failures=0
# Rounds are the outer loop, so each round holds every scenario and server close together
# in time: a run and its reference (W4 and W4-control) are paired within minutes, and the
# report takes the median of the per-round ratios. Even rounds run the scenarios and the
# servers in reverse order: on this kind of machine the first run of a pair was often the
# faster, whichever it was.
for round in $(seq 1 "$REPEAT"); do
  order=$SERVERS
  round_files=("${files[@]}")
  if (( round % 2 == 0 )); then
    order=$(printf '%s\n' $SERVERS | tac | tr '\n' ' ')
    mapfile -t round_files < <(printf '%s\n' "${files[@]}" | tac)
  fi
  for f in "${round_files[@]}"; do
    for server in $order; do
      port=$((port + 1))
      args=$("$LOADGEN" server-args --scenario "$f" --listen "127.0.0.1:$port")
      name=$(basename "$f" .toml)
      label=$server
      [[ $REPEAT -gt 1 ]] && label=$server-r$round
      slog="$OUT/$name-$label.server.log"
      log "== $name on $label (port $port): $args"
      case $server in
        # The generator opens up to 20,000 connections per source address: lift the
        # per-address cap (docs/security.md) for the benchmark.
        tickwire) TICKWIRE_LIMITS__MAX_CONNECTIONS_PER_IP=0 "${PIN_SERVER[@]}" "$TICKWIRE_BIN" serve $args >"$slog" 2>&1 & ;;
        tickwire-b) TICKWIRE_LIMITS__MAX_CONNECTIONS_PER_IP=0 "${PIN_SERVER[@]}" "$TICKWIRE_BIN_B" serve $args >"$slog" 2>&1 & ;;
        node-ws) "${PIN_SERVER[@]}" node "$NODE_DIR/server.js" $args >"$slog" 2>&1 & ;;
        *) log "unknown server $server"; exit 2 ;;
      esac
      pid=$!
      if ! wait_port "$port" "$pid"; then
        log "server $label did not start; see $slog"
        stop_server "$pid"
        failures=$((failures + 1))
        continue
      fi
      extra=()
      [[ -n "${DURATION:-}" ]] && extra+=(--duration "$DURATION")
      [[ -n "${BUSY_POLL:-}" ]] && extra+=(--busy-poll)
      if ! "${PIN_LOADGEN[@]}" "$LOADGEN" run --scenario "$f" --url "ws://127.0.0.1:$port/ws" \
        --server-pid "$pid" --label "$label" --out "$OUT" --no-plots "${extra[@]}" \
        2> >(tr '\r' '\n' >"$OUT/$name-$label.progress.log") | tee "$OUT/$name-$label.summary.txt"; then
        log "loadgen failed on $name/$label"
        failures=$((failures + 1))
      fi
      stop_server "$pid"
      sleep 1
    done
  done
done

"$LOADGEN" report --out "$OUT" "$OUT"/*.json
log "done: $OUT/summary.md ($failures failures)"
[[ $failures -eq 0 ]]
