#!/usr/bin/env bash
# Alternating A/B runs of two raftcache installs (e.g. two venvs built from two commits), so
# that a noisy shared machine hits both alike. Each run starts `raftcache up` with
# a minimal three-node cluster file in a fresh temp dir, drives the leader with redis-benchmark, stops it.
#
#   benchmarks/ab_pairs.sh VENV_A VENV_B [PAIRS]      # e.g. .venv-main .venv-branch 7
#
# A venv written VENV:pinned runs with the leader's process alone on CPU 0 and the followers
# and redis-benchmark on CPU 1 (taskset; a 2-CPU machine), so `.venv .venv:pinned` measures
# what sharing the CPUs between the nodes costs.
#
# Prints one line per run and the means per install: SET -c 50, GET -c 50, SET -c 50 -P 16
# (ops/s) and SET -c 1 p50 (ms).
set -euo pipefail
A=$1 B=$2 PAIRS=${3:-7}
WORK=$(mktemp -d)
UP=""
trap '[ -n "$UP" ] && kill -TERM "$UP" 2>/dev/null; rm -rf "$WORK"' EXIT

run() {  # $1: venv[:pinned] -> "set get p16 c1p50"
  local venv=${1%:pinned} bench=redis-benchmark
  rm -rf "$WORK/run" && mkdir "$WORK/run"
  # A minimal cluster file both installs understand (the example file gains sections that an
  # older install refuses): three nodes, fsync per batch, everything else at its default.
  {
    printf '[cluster]\nsecret = "ab-pairs-secret-for-loopback-only"\nfsync = "always"\n'
    for i in 1 2 3; do
      printf '\n[[nodes]]\nid = "n%d"\nraft = "127.0.0.1:%d"\nclient = "127.0.0.1:%d"\ndata_dir = "data/n%d"\n' "$i" $((7100 + i)) $((7000 + i)) "$i"
    done
  } > "$WORK/run/cluster.toml"
  setsid "$venv/bin/raftcache" up --config "$WORK/run/cluster.toml" > "$WORK/run/up.log" 2>&1 &
  UP=$!
  # The leader's client port, from the cluster itself (the banner may be buffered or stale).
  local port=""
  for _ in $(seq 1 120); do
    port=$("$venv/bin/raftcache" status --config "$WORK/run/cluster.toml" --json 2>/dev/null |
      python3 -c 'import json, sys; print(next(n["client"] for n in json.load(sys.stdin) if n["role"] == "leader").rsplit(":", 1)[1])' 2>/dev/null) && break
    sleep 0.25
  done
  [ -n "$port" ] || { echo "no leader after 30 s: see $WORK/run/up.log" >&2; exit 1; }
  if [ "$venv" != "$1" ]; then
    local leader_pid pid
    leader_pid=$(pgrep -f -- "--config $WORK/run/cluster.toml --node n$((port - 7000))\$")
    for pid in $(pgrep -f -- "raftcache serve --config $WORK/run/cluster.toml"); do
      taskset -a -p -c "$([ "$pid" = "$leader_pid" ] && echo 0 || echo 1)" "$pid" > /dev/null
    done
    bench="taskset -c 1 redis-benchmark"
  fi
  rps() { $bench -p "$port" "$@" -q 2>&1 | tr '\r' '\n' | awk '/requests per second/ {printf "%d", $2}'; }
  local set get p16 c1
  set=$(rps -t set -c 50 -n 40000)
  get=$(rps -t get -c 50 -n 40000)
  p16=$(rps -t set -c 50 -n 150000 -P 16)
  # The summary's columns are avg, min, p50, p95, p99, max: the p50 is the third (until
  # 2026-11-30 this printed the second, the minimum, as "p50").
  c1=$($bench -p "$port" -t set -c 1 -n 3000 2>&1 | tr '\r' '\n' | grep -A2 "latency summary" | tail -1 | awk '{print $3}')
  kill -TERM "$UP"
  wait "$UP" || true
  UP=""
  echo "$set $get $p16 $c1"
}

: > "$WORK/results"
for _ in $(seq 1 "$PAIRS"); do
  for venv in "$A" "$B"; do
    line=$(run "$venv")
    echo "$venv $line" | tee -a "$WORK/results"
  done
done
echo "means (SET c50, GET c50, SET P16, c1 p50 ms):"
awk '{n[$1]++; s[$1]+=$2; g[$1]+=$3; p[$1]+=$4; l[$1]+=$5}
     END {for (v in n) printf "%s %.0f %.0f %.0f %.3f\n", v, s[v]/n[v], g[v]/n[v], p[v]/n[v], l[v]/n[v]}' "$WORK/results"
