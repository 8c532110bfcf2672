#!/usr/bin/env bash
# `strata build --jobs 1` against `--jobs 2` on independent CPU-bound tasks.
#
# Makes a declared buildpack with TASKS layers (default 8) that need nothing from each other,
# each hashing WORK MiB of zeros (default 400) in one python3 process, and times the build of a
# one-file app with each --jobs value (hyperfine, medians). On 2 cores the goal is a speed-up
# of at least 1.7x.
#
# Usage: benches/executor/jobs.sh [WORK_DIR]     (default: target/bench-jobs)
# Env:   TASKS, WORK, RUNS (default 5). Needs hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-target/bench-jobs}
tasks=${TASKS:-8}
mib=${WORK:-400}
runs=${RUNS:-5}
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 2; }

rm -rf "$work" && mkdir -p "$work/bp/layers" "$work/app"
echo hello > "$work/app/main.txt"
{
  printf 'api = "0.10"\n[buildpack]\nid = "bench/cpu"\nversion = "1"\n'
  printf '[metadata.strata.detect]\nfiles = ["main.txt"]\n'
  for i in $(seq 1 "$tasks"); do
    printf '[[metadata.strata.layers]]\nname = "work%s"\nrun = "layers/work.sh"\nlaunch = true\n' "$i"
  done
} > "$work/bp/buildpack.toml"
# One process per task (a pipeline would already use more than one core at --jobs 1).
cat > "$work/bp/layers/work.sh" <<SCRIPT
#!/bin/sh
exec python3 -c 'import hashlib, sys; h = hashlib.sha256(); b = bytes(1 << 20); [h.update(b) for _ in range($mib)]; open(sys.argv[1] + "/sum", "w").write(h.hexdigest())' "\$1"
SCRIPT
chmod +x "$work/bp/layers/work.sh"

cargo build --quiet --release -p strata-cli
strata=$PWD/target/release/strata
build() { echo "$strata build $work/app --buildpack $work/bp --output oci:$work/out:app --cache-dir $work/cache --jobs $1"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $tasks tasks x $mib MiB of sha256 in python3"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/jobs.json" \
  -n jobs1 "$(build 1) > /dev/null 2>&1" -n jobs2 "$(build 2) > /dev/null 2>&1" > /dev/null
python3 - "$work/jobs.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"--jobs 1: {r['jobs1']:.2f} s   --jobs 2: {r['jobs2']:.2f} s   speed-up: {r['jobs1'] / r['jobs2']:.2f}x")
PY
