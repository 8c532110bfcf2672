#!/usr/bin/env bash
# Cold, warm and no-op `strata build` of the example app: cold with an empty cache (every task
# runs); warm with the cache of the previous build but no output (no buildpack task runs; the
# image is exported again from stored layers); no-op with both (the image is up to date and
# nothing runs).
#
# Usage: benches/build/cold-warm.sh [WORK_DIR]     (default: target/bench-build)
# Env:   RUNS (default 10). Needs hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-target/bench-build}
runs=${RUNS:-10}
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 2; }
mkdir -p "$work"
[[ -f examples/run-image/layout/oci-layout ]] || examples/run-image/make.sh > /dev/null
cargo build --quiet --release -p strata-cli
build="$PWD/target/release/strata build examples/apps/hello --builder examples/builder.toml --cache-dir $work/cache --output oci:$work/out:hello"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
$build > /dev/null 2>&1
hyperfine --style basic --runs "$runs" --export-json "$work/build.json" \
  -n cold --prepare "rm -rf $work/cache $work/out" "$build > /dev/null 2>&1" \
  -n warm --prepare "rm -rf $work/out" "$build > /dev/null 2>&1" \
  -n no-op --prepare true "$build > /dev/null 2>&1" > /dev/null
python3 - "$work/build.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:6} median {r['median'] * 1000:7.1f} ms")
PY
