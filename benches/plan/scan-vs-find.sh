#!/usr/bin/env bash
# How close a warm source scan comes to the floor, a stat walk of the same tree.
#
# Generates a deterministic app tree of 20,000 files (100 directories of 200 files, 1-8 KB
# each, mtimes in 2020 so no file is in the stat cache's racy window), then times, as medians:
#   find    find TREE -type f -printf '%s %T@ %i\n'   (a listing and an lstat per file)
#   cold    planner/examples/scan with no stat cache: every file read and hashed
#   warm    the same with the stat cache of the previous run: no file read
# All runs see a warm page cache; "cold" is about the stat cache, not the disk.
#
# Usage: benches/plan/scan-vs-find.sh [WORK_DIR]     (default: target/bench-scan)
# Env:   RUNS (default 10, at least 5), DIRS and FILES (default 100 and 200).
# Uses hyperfine when installed (apt-get install hyperfine) unless TIMER=loop, a timing loop
# with `date +%s%N` otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=${1:-target/bench-scan}
runs=${RUNS:-10}
dirs=${DIRS:-100}
files=${FILES:-200}
((runs >= 5)) || { echo "RUNS must be at least 5" >&2; exit 2; }
tree=$work/tree-${dirs}x${files}
done_marker=$work/.tree-${dirs}x${files}-complete
cache=$work/stat.bin

cargo build --quiet --release -p strata-planner --example scan
scan=target/release/examples/scan

if [[ ! -f $done_marker ]]; then
  rm -rf "$tree"
  mkdir -p "$tree"
  # One awk process writes every file: contents and sizes depend only on the file's index.
  awk -v root="$tree" -v dirs="$dirs" -v files="$files" 'BEGIN {
    seed = 12345
    for (i = 0; i < 9000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648
      pool = pool sprintf("%c", 97 + int(seed / 65536) % 26)
    }
    for (d = 0; d < dirs; d++) {
      dir = sprintf("%s/dir%03d", root, d)
      system("mkdir -p " dir)
      for (f = 0; f < files; f++) {
        n = d * files + f
        size = 1024 + (n * 7919) % 7169
        path = sprintf("%s/file%03d.txt", dir, f)
        header = sprintf("file %d\n", n)
        printf "%s%s", header, substr(pool, 1 + (n * 31) % 800, size - length(header)) > path
        close(path)
      }
    }
  }'
  find "$tree" -exec touch -h -d '2020-01-01 00:00:00' {} +
  touch "$done_marker"
fi
count=$(find "$tree" -type f | wc -l)

find_cmd="find $tree -type f -printf '%s %T@ %i\n' > /dev/null"
cold_cmd="rm -f $cache && $scan $tree --cache $cache > /dev/null"
warm_cmd="$scan $tree --cache $cache > /dev/null"

# Milliseconds, median of $runs runs of a shell command (after one warm-up run).
median_loop() {
  local cmd=$1 times=() start end
  bash -c "$cmd"
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    bash -c "$cmd"
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END {
    m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    printf "%.1f\n", m / 1000 }'
}

median_hyperfine() {
  local cmd=$1 json=$work/hyperfine.json
  hyperfine --style none --warmup 1 --runs "$runs" --shell bash --export-json "$json" "$cmd" > /dev/null
  grep -o '"median": *[0-9.e+-]*' "$json" | head -1 | awk '{ printf "%.1f\n", $2 * 1000 }'
}

have_hyperfine() { [[ ${TIMER:-} != loop ]] && command -v hyperfine > /dev/null; }

median() {
  if have_hyperfine; then median_hyperfine "$1"; else median_loop "$1"; fi
}

echo "tree: $tree ($count files, $(du -sh "$tree" | cut -f1))"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "timer: $(have_hyperfine && hyperfine --version || echo 'date loop'), $runs runs"
rm -f "$cache"
echo "cold stats: $($scan "$tree" --cache "$cache")"
echo "warm stats: $($scan "$tree" --cache "$cache")"

t_find=$(median "$find_cmd")
t_cold=$(median "$cold_cmd")
$scan "$tree" --cache "$cache" > /dev/null
t_warm=$(median "$warm_cmd")

printf '%-6s %10s %8s\n' what "median ms" "× find"
for row in "find $t_find" "cold $t_cold" "warm $t_warm"; do
  set -- $row
  printf '%-6s %10s %8s\n' "$1" "$2" "$(awk -v t="$2" -v f="$t_find" 'BEGIN { printf "%.2f", t / f }')"
done
