#!/usr/bin/env bash
# The shared registry cache and shards on the generated monorepo, on this machine.
#
# Generates the synthetic workspace (benches/monorepo/generate.py: SERVICES services of FILES
# files, default 100 x 200), starts docker-registry on 127.0.0.1 (filesystem storage in
# WORK_DIR, killed on exit) and measures, RUNS times (default 3), each run with its own cache
# repository and empty stores:
#
#   cold          one runner, empty store, no remote cache
#   3 shards      `--shard 1/3`, `2/3`, `3/3` started together, each with its own empty store,
#                 `--cache-from` and `--cache-to` the run's repository: the wall time of the
#                 slowest (what a CI matrix waits for), and the tasks run over all three
#   fresh runner  empty store, `--cache-from` the repository the shards filled: every
#                 buildpack task is a remote hit, only the app and image tasks run
#   fresh, push   the same, with the images pushed to the same registry
#                 (`docker://HOST/apps-N`): launch layers are mounted from the cache, not
#                 downloaded
#
# and prints the medians. The three shards here share this machine's cores (on a CI matrix
# each has its own), so their wall time is an upper bound.
#
# Usage: benches/remote-cache/shards.sh [WORK_DIR]     (default: target/bench-remote-cache)
# Env:   SERVICES, FILES, RUNS; STRATA=path/to/strata to skip the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(realpath -m "${1:-target/bench-remote-cache}")
services=${SERVICES:-100}
files=${FILES:-200}
runs=${RUNS:-3}
command -v docker-registry >/dev/null || { echo "docker-registry not found (apt-get install docker-registry)" >&2; exit 2; }
[[ -f examples/run-image/layout/oci-layout ]] || examples/run-image/make.sh > /dev/null
strata=${STRATA:-}
if [[ -z $strata ]]; then
  cargo build --quiet --release -p strata-cli
  strata=$PWD/target/release/strata
fi
rm -rf "$work" && mkdir -p "$work/results"
python3 benches/monorepo/generate.py --out "$work/ws" --services "$services" --files "$files" > /dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
host=127.0.0.1:$port

# `build NAME ARGS...`: one runner with its own empty store and output (OUTPUT, else a
# layout of its own); writes results/NAME.json (the report) and results/NAME.time (wall
# seconds).
build() {
  local name=$1 dir=$work/runners/$1
  shift
  local output=${OUTPUT:-oci:$dir/out}
  rm -rf "$dir" && mkdir -p "$dir"
  local start end
  start=$(date +%s%N)
  "$strata" build "$work/ws" --cache-dir "$dir/cache" --output "$output" \
    --insecure-registry "$host" --json "$@" > "$work/results/$name.json" 2> "$dir/stderr"
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 ))" > "$work/results/$name.time"
}

for i in $(seq "$runs"); do
  cache=docker://$host/cache-$i
  build "cold-$i"
  pids=()
  for k in 1 2 3; do
    build "shard-$i-$k" --shard "$k/3" --cache-from "$cache" --cache-to "$cache" &
    pids+=($!)
  done
  wait "${pids[@]}"
  build "fresh-$i" --cache-from "$cache"
  OUTPUT=docker://$host/apps-$i build "push-$i" --cache-from "$cache"
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "workspace: $services services of $files files; $runs runs, medians"
python3 - "$work/results" "$runs" <<'PY'
import json, statistics, sys
results, runs = sys.argv[1], int(sys.argv[2])
def load(name):
    report = json.load(open(f"{results}/{name}.json"))
    ms = int(open(f"{results}/{name}.time").read())
    ran = sum(1 for t in report["tasks"] if t["status"] == "ran")
    bp = sum(1 for t in report["tasks"] if t["status"] == "ran" and t["id"] not in ("app", "image"))
    return ms / 1000, ran, bp, report
rows = {"cold": [], "shards": [], "fresh": [], "push": []}
for i in range(1, runs + 1):
    s, ran, bp, _ = load(f"cold-{i}")
    rows["cold"].append((s, ran, bp, ""))
    shards = [load(f"shard-{i}-{k}") for k in (1, 2, 3)]
    services = sum(len(r[3]["services"]) for r in shards)
    rows["shards"].append((max(r[0] for r in shards), sum(r[1] for r in shards),
                           sum(r[2] for r in shards), f"{services} services over 3 shards"))
    for key in ("fresh", "push"):
        s, ran, bp, report = load(f"{key}-{i}")
        rc = report.get("remote_cache", {})
        rows[key].append((s, ran, bp, f"{rc.get('fetched')} entries, {rc.get('downloaded')} blobs, "
                          f"{rc.get('downloaded_bytes', 0) / 1e6:.1f} MB fetched"))
print(f"| | median wall | tasks ran | buildpack tasks ran | |")
print(f"|---|---:|---:|---:|---|")
names = {"cold": "one machine, cold", "shards": "3 shards in parallel (slowest)",
         "fresh": "fresh runner, warm remote cache",
         "push": "the same, pushing to the cache's registry"}
for key, label in names.items():
    r = rows[key]
    print(f"| {label} | {statistics.median(x[0] for x in r):.2f} s "
          f"| {statistics.median(x[1] for x in r):.0f} | {statistics.median(x[2] for x in r):.0f} "
          f"| {r[0][3]} |")
print("all runs (s):", {k: [round(x[0], 2) for x in v] for k, v in rows.items()})
PY
