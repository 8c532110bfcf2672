#!/usr/bin/env bash
# Layer creation throughput: strata's LayerBuilder against tar piped into sha256sum.
#
# Generates a deterministic tree (FILES files, default 2,000, about 500 MB: 10 of 25 MiB, the
# rest between 4 KiB and 252 KiB; half of each file random bytes, half word text from a 1 MiB
# pool, so gzip has work on both), then times with hyperfine (medians of RUNS, default 5):
#
#   tar  --sort=name ... -cf - | sha256sum           against  layer --compression none
#   tar  --sort=name ... -cf - | gzip -6 | sha256sum against  layer --compression gzip
#
# `layer` is exporter/examples/layer.rs (release build): one LayerBuilder over the tree, blob
# written to WORK_DIR/blobs (and synced, as every blob strata writes is), diffID and digest
# computed in the same pass. tar's output is only hashed, never written.
#
# Usage: benches/layers/tar-vs-strata.sh [WORK_DIR]     (default: target/bench-layers)
# Env:   FILES, RUNS. Needs hyperfine and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-target/bench-layers}
files=${FILES:-2000}
runs=${RUNS:-5}
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 2; }

tree=$work/tree
if [[ ! -f $work/tree.done || $(cat "$work/tree.done") != "$files" ]]; then
  rm -rf "$work" && mkdir -p "$tree"
  python3 - "$tree" "$files" <<'PY'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(315532801)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(2000)]
text = bytearray()
while len(text) < (1 << 20):
    text += b" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) + b"\n"
text = bytes(text) * 2
for i in range(files):
    size = 25 << 20 if i % (files // 10) == 0 else rng.randint(1, 63) * 4096
    half = size // 2
    start = rng.randrange(1 << 20)
    body = rng.randbytes(half)
    rest = size - half
    while rest > 0:
        chunk = text[start:start + rest]
        body += chunk
        rest -= len(chunk)
        start = 0
    d = os.path.join(root, f"d{i % 40:02}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05}"), "wb") as f:
        f.write(body)
PY
  echo "$files" > "$work/tree.done"
fi
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

cargo build --quiet --release -p strata-exporter --example layer
layer=$PWD/target/release/examples/layer
tar="tar -C $tree --sort=name --owner=1000 --group=1000 --numeric-owner --mtime=@315532801 -cf - ."

# The two tools must agree on what they archive: same number of entries.
tar_entries=$($tar | tar -tf - | grep -vc '^\./$')
"$layer" "$tree" "$work/check" > /dev/null
layer_entries=$(tar -tf "$work/check"/* | wc -l)
rm -rf "$work/check"
[[ $tar_entries == "$layer_entries" ]] || { echo "tar has $tar_entries entries, layer $layer_entries" >&2; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uname -sr)"
echo "tree: $files files, $tar_entries entries, $bytes bytes; $runs runs each, warm page cache"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/layers.json" \
  --prepare "rm -rf $work/blobs" \
  -n "tar | sha256sum" "$tar | sha256sum" \
  -n "strata --compression none" "$layer --compression none $tree $work/blobs" \
  -n "tar | gzip -6 | sha256sum" "$tar | gzip -6 | sha256sum" \
  -n "strata --compression gzip" "$layer --compression gzip $tree $work/blobs" > /dev/null
python3 - "$work/layers.json" "$bytes" <<'PY'
import json, sys
bytes_ = int(sys.argv[2])
print(f"| {'':27} | median   | MB/s  |")
print(f"|{'-' * 29}|---------:|------:|")
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {r['command']:27} | {r['median']:6.3f} s | {bytes_ / r['median'] / 1e6:5.0f} |")
PY
