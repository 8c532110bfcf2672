#!/usr/bin/env bash
# One big layer three ways, on this machine, in one table: strata's layer writer
# (exporter/examples/layer.rs, release build) with --compression gzip and zstd, against
# `umoci insert` of the same tree (Go's gzip at its default level), medians of RUNS runs
# (hyperfine), with each blob's size and its ratio to umoci's. Then the level trade-off, on the
# tar of the tree: `zstd -T0` at levels 1, 3, 6 and 9, and `gzip` at 1, 3, 6 (single stream).
#
# The tree is the synthetic monorepo's services/ (benches/monorepo/generate.py, SERVICES x
# FILES, default 100 x 200 = 20,000 files, about 80 MB).
#
# Usage: benches/layers/compression.sh [WORK_DIR]     (default: target/bench-compression)
# Env:   SERVICES, FILES, RUNS (default 5). Needs hyperfine, umoci, zstd, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=$(realpath -m "${1:-target/bench-compression}")
services=${SERVICES:-100}
files=${FILES:-200}
runs=${RUNS:-5}
for tool in hyperfine umoci zstd python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $tool" >&2; exit 2; }
done
cargo build --quiet --release -p strata-exporter --example layer
layer=$repo/target/release/examples/layer

ws=$work/ws
rm -rf "$work" && mkdir -p "$work/gzip" "$work/zstd"
python3 benches/monorepo/generate.py --out "$ws" --services "$services" --files "$files" > /dev/null
tree=$ws/services

hyperfine --style none --runs "$runs" --export-json "$work/hf.json" \
  --prepare "rm -rf $work/gzip/*" \
  --prepare "rm -rf $work/zstd/*" \
  --prepare "rm -rf $work/umoci; umoci init --layout $work/umoci; umoci new --image $work/umoci:ws" \
  -n gzip "$layer --compression gzip $tree $work/gzip > /dev/null" \
  -n zstd "$layer --compression zstd $tree $work/zstd > /dev/null" \
  -n umoci "umoci insert --image $work/umoci:ws $tree /services > /dev/null" > /dev/null

tar --sort=name -cf "$work/tree.tar" -C "$ws" services
levels=()
for l in 1 3 6 9; do levels+=(-n "zstd-$l" "zstd -q -T0 -$l -c $work/tree.tar > $work/zstd-$l"); done
for l in 1 3 6; do levels+=(-n "gzip-$l" "gzip -$l -c $work/tree.tar > $work/gzip-$l"); done
hyperfine --style none --runs "$runs" --export-json "$work/levels.json" "${levels[@]}" > /dev/null

python3 - "$work" <<'PY'
import glob, json, os, statistics, sys
work = sys.argv[1]
def blob(d):
    files = [f for f in glob.glob(f"{work}/{d}/*") if os.path.isfile(f)]
    return max(os.path.getsize(f) for f in files)
umoci_blobs = glob.glob(f"{work}/umoci/blobs/sha256/*")
umoci = max(os.path.getsize(f) for f in umoci_blobs)
tar = os.path.getsize(f"{work}/tree.tar")
med = {r["command"]: statistics.median(r["times"]) for r in json.load(open(f"{work}/hf.json"))["results"]}
sizes = {"gzip": blob("gzip"), "zstd": blob("zstd"), "umoci": umoci}
print(f"one layer of {tar / 1e6:.1f} MB (tar), medians of {len(json.load(open(f'{work}/hf.json'))['results'][0]['times'])}")
print(f"{'writer':<28}{'time':>9}{'vs umoci':>10}{'size MB':>10}{'vs umoci':>10}")
for name, label in [("gzip", "strata --compression gzip"), ("zstd", "strata --compression zstd"), ("umoci", "umoci insert (Go gzip)")]:
    print(f"{label:<28}{med[name]:>8.3f}s{med['umoci'] / med[name]:>9.2f}x{sizes[name] / 1e6:>10.2f}{sizes[name] / umoci:>10.3f}")
print()
print("level trade-off on the tar (zstd -T0, gzip single-threaded):")
for r in json.load(open(f"{work}/levels.json"))["results"]:
    n = r["command"]
    print(f"  {n:<8}{statistics.median(r['times']):>8.3f}s{os.path.getsize(f'{work}/{n}') / 1e6:>10.2f} MB{os.path.getsize(f'{work}/{n}') / umoci:>8.3f} of umoci")
PY
