#!/usr/bin/env bash
# How many times a cold workspace build writes the output's index.json, per workspace size:
# each write is a rename onto it, counted with strace.
#
#   benches/monorepo/index-writes.sh [SERVICES...]     (default: 100 1000)
#
# Uses benches/monorepo/generate.py with 5 small files per service, so the count, not the
# build, is what takes time. STRATA=PATH counts that binary instead (to compare two versions).
# Needs: a release build (built here), python3, strace.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100 1000)
if [[ -n ${STRATA:-} ]]; then
  strata=$STRATA
else
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p strata-cli
  strata=$repo/target/release/strata
fi
[[ -f $repo/examples/run-image/layout/oci-layout ]] || "$repo/examples/run-image/make.sh" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-10s %14s\n' services "index writes"
for n in "${sizes[@]}"; do
  python3 "$repo/benches/monorepo/generate.py" --out "$work/ws$n" --services "$n" --files 5 --size 100 >/dev/null
  strace -f -qq -e trace=rename,renameat,renameat2 -o "$work/trace$n" \
    "$strata" build "$work/ws$n" --cache-dir "$work/cache$n" --json >/dev/null 2>&1
  writes=$(grep -c 'index\.json"' "$work/trace$n" || true)
  printf '%-10s %14s\n' "$n" "$writes"
done
