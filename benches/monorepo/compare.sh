#!/usr/bin/env bash
# The workspace comparison, on this machine, in one table.
#
# Generates a synthetic monorepo (benches/monorepo/generate.py: SERVICES services of FILES
# files each, default 100 x 200 = 20,000 files) and measures, medians of RUNS runs
# (hyperfine, or several timed runs where a run changes state):
#
#   cold build      `strata build` with an empty cache and no output: wall time, peak RSS
#                   (GNU time %M), tasks run, against the floor `cp -a` of the workspace
#                   (timed in the same loop, each run right after a build, so both see the
#                   same load)
#   no-op build     the same again with nothing changed, against the floor
#                   `find -type f -printf '%s %T@ %i\n'` over the workspace
#   one changed     one source file of one service changed: tasks run (which) and wall time
#   layers          every service's app layer (gzip), three ways over the same trees:
#                     strata: a build whose buildpack tasks are all cached and whose output
#                             is gone, so it writes exactly the images' new layers;
#                     umoci:  `umoci insert` of each service directory into one image;
#                     tar:    `tar --sort=name -cf - | sha256sum` of each service directory
#                   and one layer of the whole services/ tree: strata's layer writer
#                   (exporter/examples/layer.rs) against one `umoci insert` and one tar
#                   (and, uncompressed, against that tar).
#
# Usage: benches/monorepo/compare.sh [WORK_DIR]     (default: target/bench-monorepo)
# Env:   SERVICES, FILES, RUNS (default 5). Needs hyperfine, umoci, GNU time, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=$(realpath -m "${1:-target/bench-monorepo}")
services=${SERVICES:-100}
files=${FILES:-200}
runs=${RUNS:-5}
for tool in hyperfine umoci python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install hyperfine umoci python3 time" >&2; exit 2; }
done
[[ -f examples/run-image/layout/oci-layout ]] || examples/run-image/make.sh > /dev/null
cargo build --quiet --release -p strata-cli
cargo build --quiet --release -p strata-exporter --example layer
strata=$repo/target/release/strata
layer=$repo/target/release/examples/layer

ws=$work/ws
cache=$work/cache
results=$work/results
mkdir -p "$work"
rm -rf "$ws" "$cache" "$results" && mkdir -p "$results"
python3 benches/monorepo/generate.py --out "$ws" --services "$services" --files "$files" > /dev/null
build=("$strata" build "$ws" --cache-dir "$cache")

# Cold builds: each from an empty cache and no output, each followed by a `cp -a` of the
# workspace (the floor: one copy of every file) into the same file system.
for i in $(seq "$runs"); do
  rm -rf "$cache" "$ws/out"
  /usr/bin/time -f '%e %M' -o "$results/cold-$i.time" "${build[@]}" --json > "$results/cold-$i.json" 2> /dev/null
  rm -rf "$work/cp"
  /usr/bin/time -f '%e %M' -o "$results/cp-$i.time" cp -a "$ws" "$work/cp"
done
rm -rf "$work/cp"

# No-op build against the find floor.
"${build[@]}" --json > "$results/noop.json" 2> /dev/null
hyperfine --style none --warmup 2 --runs "$((runs * 4))" --export-json "$results/noop-hf.json" \
  -n noop "${build[*]} > /dev/null 2>&1" \
  -n find "find $ws -type f -printf '%s %T@ %i\n' > /dev/null" > /dev/null

# One changed file, in a different service each run.
for i in $(seq "$runs"); do
  svc=$(printf 'svc-%03d' $(( (i * 37) % services )))
  python3 benches/monorepo/generate.py --out "$ws" --touch "$svc" > /dev/null
  /usr/bin/time -f '%e %M' -o "$results/touch-$i.time" "${build[@]}" --json > "$results/touch-$i.json" 2> /dev/null
done

# Layers: the images' new layers by strata, against umoci insert and tar of the same trees.
inserts=$work/inserts.sh
{
  echo "set -e; rm -rf $work/umoci; umoci init --layout $work/umoci; umoci new --image $work/umoci:ws"
  for dir in "$ws"/services/*; do
    echo "umoci insert --image $work/umoci:ws $dir /workspace/$(basename "$dir")"
  done
} > "$inserts"
tars=$work/tars.sh
{
  echo "set -e"
  for dir in "$ws"/services/*; do
    echo "tar --sort=name -cf - -C $dir . | sha256sum > /dev/null"
  done
} > "$tars"
mkdir -p "$work/blobs"
hyperfine --style none --runs "$runs" --export-json "$results/layers-hf.json" \
  --prepare "rm -rf $ws/out" --prepare true --prepare true \
  -n strata "${build[*]} > /dev/null 2>&1" \
  -n umoci "bash $inserts > /dev/null" \
  -n tar "bash $tars" > /dev/null
hyperfine --style none --runs "$runs" --export-json "$results/one-hf.json" \
  --prepare "rm -rf $work/blobs/*" \
  --prepare "rm -rf $work/umoci1; umoci init --layout $work/umoci1; umoci new --image $work/umoci1:ws" \
  --prepare true --prepare "rm -rf $work/blobs/*" \
  -n strata-one "$layer --compression gzip $ws/services $work/blobs > /dev/null" \
  -n umoci-one "umoci insert --image $work/umoci1:ws $ws/services /services > /dev/null" \
  -n tar-one "tar --sort=name -cf - -C $ws services | sha256sum > /dev/null" \
  -n strata-one-none "$layer --compression none $ws/services $work/blobs > /dev/null" > /dev/null

python3 - "$results" "$ws" "$runs" <<'PY'
import json, os, statistics, subprocess, sys
results, ws, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def load(name):
    with open(os.path.join(results, name)) as f:
        return json.load(f)

def times(prefix):
    out = []
    for i in range(1, runs + 1):
        with open(os.path.join(results, f"{prefix}-{i}.time")) as f:
            wall, rss = f.read().split()[-2:]
        out.append((float(wall), int(rss)))
    return out

def hf(name):
    return {r["command"]: r["median"] for r in load(name)["results"]}

tree_bytes = sum(
    os.path.getsize(os.path.join(d, f))
    for d, _, fs in os.walk(os.path.join(ws, "services")) for f in fs
)
n_files = sum(len(fs) for _, _, fs in os.walk(os.path.join(ws, "services")))
n_services = len(os.listdir(os.path.join(ws, "services")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
fs = subprocess.run(["df", "-T", ws], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
print(f"machine: {os.cpu_count()} cores, {cpu}, {os.uname().sysname} {os.uname().release}, {fs}")
print(f"workspace: {n_services} services, {n_files} files, {tree_bytes / 1e6:.1f} MB; medians of {runs} runs\n")

rows = []
cold = times("cold")
cold_report = load("cold-1.json")
cp = times("cp")
cold_s, cp_s = statistics.median(w for w, _ in cold), statistics.median(w for w, _ in cp)
ratios = sorted(c / f for (c, _), (f, _) in zip(cold, cp) if f > 0)
spread = f" (runs {ratios[0]:.2f}-{ratios[-1]:.2f}x)" if ratios else ""
rows.append(("cold build", f"{cold_s:.2f} s",
             f"{cold_report['ran']} tasks ran; peak RSS {statistics.median(r for _, r in cold) / 1024:.0f} MB; "
             f"{cold_s / cp_s:.2f}x cp -a{spread}"))
rows.append(("cp -a workspace", f"{cp_s:.2f} s", "the cold floor: one copy of every file"))
noop = hf("noop-hf.json")
noop_report = load("noop.json")
rows.append(("no-op build", f"{noop['noop'] * 1000:.0f} ms",
             f"{noop_report['ran']} tasks ran; find floor {noop['find'] * 1000:.0f} ms; {noop['noop'] / noop['find']:.2f}x find"))
touch = times("touch")
ran = []
for i in range(1, runs + 1):
    r = load(f"touch-{i}.json")
    ran.append(sorted(f"{t['services'][0] if len(t['services']) == 1 else 'shared'}:{t['id']}"
                      for t in r["tasks"] if t["status"] == "ran"))
rows.append(("one changed file", f"{statistics.median(w for w, _ in touch):.2f} s",
             f"{statistics.median(len(r) for r in ran)} tasks ran, e.g. {', '.join(ran[0])}"))
layers = {**hf("layers-hf.json"), **hf("one-hf.json")}
mb = tree_bytes / 1e6
for name, label in [("strata", "layers: strata build"), ("umoci", "layers: umoci insert x N"),
                    ("tar", "layers: tar | sha256sum x N"), ("strata-one", "one layer: strata"),
                    ("umoci-one", "one layer: umoci insert"), ("tar-one", "one layer: tar | sha256sum"),
                    ("strata-one-none", "one layer: strata, no gzip")]:
    t = layers[name]
    base, versus = (layers["tar-one"], "tar") if name.endswith("none") else (
        layers["umoci" if "one" not in name else "umoci-one"], "umoci")
    rows.append((label, f"{t:.2f} s", f"{mb / t:.0f} MB/s; {base / t:.2f}x {versus}"))
width = max(len(r[0]) for r in rows)
for label, value, note in rows:
    print(f"{label:<{width}}  {value:>9}  {note}")
PY
