#!/usr/bin/env bash
# How the cold and no-op builds grow with the workspace: one row per size.
#
# For each count of SERVICES (a comma-separated list, default 100,300,1000), generates a
# monorepo of that many services of FILES files each (benches/monorepo/generate.py; default 50,
# so 1,000 services are 50,000 files) and measures, medians of RUNS runs:
#
#   cold    `strata build` with an empty cache and no output, and the floor `cp -a` of the
#           workspace timed right after each build (both see the same load)
#   no-op   the same again with nothing changed (hyperfine), and the floor
#           `find -type f -printf '%s %T@ %i\n'` over the workspace in the same hyperfine run
#
# and prints each figure per service and per file, and its ratio to its floor: a per-file
# cost that stays flat from row to row is linear growth.
#
# Usage: benches/monorepo/scale.sh [WORK_DIR]     (default: target/bench-scale)
# Env:   SERVICES (default 100,300,1000), FILES (default 50), RUNS (default 3).
#        Needs hyperfine, python3, GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(realpath -m "${1:-target/bench-scale}")
sizes=${SERVICES:-100,300,1000}
files=${FILES:-50}
runs=${RUNS:-3}
for tool in hyperfine python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install hyperfine python3 time" >&2; exit 2; }
done
[[ -f examples/run-image/layout/oci-layout ]] || examples/run-image/make.sh > /dev/null
cargo build --quiet --release -p strata-cli
strata=$PWD/target/release/strata
mkdir -p "$work"
results=$work/results
rm -rf "$results" && mkdir -p "$results"

IFS=, read -ra counts <<< "$sizes"
for n in "${counts[@]}"; do
  ws=$work/ws-$n
  cache=$work/cache-$n
  out=$results/$n
  mkdir -p "$out"
  rm -rf "$ws" "$cache"
  python3 benches/monorepo/generate.py --out "$ws" --services "$n" --files "$files" > /dev/null
  build=("$strata" build "$ws" --cache-dir "$cache")
  for i in $(seq "$runs"); do
    rm -rf "$cache" "$ws/out"
    /usr/bin/time -f '%e' -o "$out/cold-$i.time" "${build[@]}" > /dev/null 2>&1
    rm -rf "$work/cp"
    /usr/bin/time -f '%e' -o "$out/cp-$i.time" cp -a "$ws" "$work/cp"
  done
  rm -rf "$work/cp"
  "${build[@]}" --json > "$out/noop.json" 2> /dev/null
  hyperfine --style none --warmup 2 --runs "$((runs * 4))" --export-json "$out/noop-hf.json" \
    -n noop "${build[*]} > /dev/null 2>&1" \
    -n find "find $ws -type f -printf '%s %T@ %i\n' > /dev/null" > /dev/null
  rm -rf "$cache" "$ws"
done

python3 - "$results" "$files" "$runs" "$sizes" <<'PY'
import json, os, statistics, sys
results, files, runs, sizes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def timed(n, prefix):
    out = []
    for i in range(1, runs + 1):
        with open(os.path.join(results, n, f"{prefix}-{i}.time")) as f:
            out.append(float(f.read().split()[-1]))
    return statistics.median(out)

def hf(n):
    with open(os.path.join(results, n, "noop-hf.json")) as f:
        return {r["command"]: r["median"] for r in json.load(f)["results"]}

print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {files} files a service; "
      f"cold: medians of {runs}, no-op: medians of {runs * 4}\n")
head = ("services", "files", "cold s", "ms/svc", "cp -a s", "x cp", "no-op ms", "us/file",
        "find ms", "x find", "no-op ran")
rows = []
for n in sizes.split(","):
    total = int(n) * files
    cold, cp = timed(n, "cold"), timed(n, "cp")
    noop = hf(n)
    with open(os.path.join(results, n, "noop.json")) as f:
        ran = json.load(f)["ran"]
    rows.append((n, str(total), f"{cold:.2f}", f"{cold * 1e3 / int(n):.1f}", f"{cp:.2f}",
                 f"{cold / cp:.2f}", f"{noop['noop'] * 1e3:.0f}", f"{noop['noop'] * 1e6 / total:.1f}",
                 f"{noop['find'] * 1e3:.0f}", f"{noop['noop'] / noop['find']:.2f}", str(ran)))
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
for row in [head] + rows:
    print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
PY
