#!/usr/bin/env bash
# Fleet rebase benchmark: `strata rebase --all` of COUNT app images in one OCI layout onto a
# patched run image, with app layers of 1 KB and of 100 MB, against rebuilding one app.
#
#   benches/rebase/run.sh [COUNT] [RUNS]        (defaults: 1000 images, 5 runs each)
#
# Builds the example app once with strata on the example run image A, fans it out into COUNT
# tagged images (benches/rebase/fanout.py: each image gets its own config and manifest and one
# more app layer; the 100 MB layers are 8 distinct blobs used round robin, to keep disk use
# under 1 GB), makes A' (A plus one layer with /etc/patch-level), and times, per run, a rebase
# of a fresh hardlinked copy of the layout (with `sync` before each, so earlier writes are not
# timed). Prints the median, min and max of each, and the machine. Needs: a release build (built here), python3, umoci, busybox-static, bubblewrap.
# VARIANTS=small,large picks what is timed. WORK_DIR=DIR keeps the files there (default: a temp dir, removed at the end).
set -euo pipefail
count=${1:-1000}
runs=${2:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
# STRATA=PATH times that binary instead (to compare two versions on one machine state).
if [[ -n ${STRATA:-} ]]; then
  strata=$STRATA
else
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p strata-cli
  strata=$repo/target/release/strata
fi

if [[ -n ${WORK_DIR:-} ]]; then
  work=$WORK_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
# median min max of the numbers on stdin
stats() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f", m, v[1], v[NR] }'; }

echo "== run images A and A' (A plus /etc/patch-level)" >&2
"$repo/examples/run-image/make.sh" "$work/a" run >/dev/null
cp -a a patched
umoci unpack --image patched:run bundle >/dev/null
echo "patched" > bundle/rootfs/etc/patch-level
touch -h -d 1980-01-01T00:00:01Z bundle/rootfs/etc/patch-level bundle/rootfs/etc
umoci repack --history.created 1980-01-01T00:00:01Z --history.created_by "patch /etc/patch-level" \
  --image patched:run bundle >/dev/null
umoci config --no-history --created 1980-01-01T00:00:01Z --image patched:run
umoci gc --layout patched
rm -rf bundle

build() {
  "$strata" build "$repo/examples/apps/hello" --builder "$repo/examples/builder.toml" \
    --run-image oci:base:run --output "$1" --json >/dev/null 2>&1
}

echo "== seed image on A, fanned out to $count images" >&2
ln -sfn a base
build oci:small:seed
python3 "$repo/benches/rebase/fanout.py" small seed "$count" --layer-size 1024
# VARIANTS (comma-separated, default all three) picks what is timed; without `large` its
# layout of 100 MB layers is not made.
IFS=, read -ra variants <<<"${VARIANTS:-small,large,small --jobs 1}"
if [[ " ${variants[*]} " == *" large "* ]]; then
  mkdir large
  cp -al small/. large/
  python3 "$repo/benches/rebase/fanout.py" large seed "$count" --layer-size $((100 * 1024 * 1024)) --distinct 8
fi
ln -sfn patched base

# rebase LAYOUT [ARGS...]: seconds of one rebase of a fresh copy of LAYOUT onto A'
rebase() {
  local layout=$1
  shift
  local run
  run=$(basename "$(mktemp -d -p . run-XXXXXX)")
  cp -al "$layout/." "$run/"
  # What setting up wrote (1 GB of layers at first) is flushed first, so it is not timed. The
  # copies are kept until the end: deleting thousands of files just before a run would time
  # ext4 skipping their inodes instead.
  sync
  local start end
  start=$(now)
  "$strata" rebase --run-image oci:base:run --all "oci:$run" --json "$@" >report.json
  end=$(now)
  local rebased
  rebased=$(python3 -c 'import json,sys; print(json.load(open("report.json"))["summary"]["rebased"])')
  [[ $rebased == $((count + 1)) ]] || { echo "rebased $rebased images, expected $((count + 1))" >&2; exit 1; }
  elapsed "$start" "$end"
}

# Rounds of one run of each variant, so that a slow spell of the machine hits them alike.
declare -A times
sync
sleep 5
for round in $(seq "$runs"); do
  echo "== rebase, round $round of $runs" >&2
  for variant in "${variants[@]}"; do
    # shellcheck disable=SC2086
    times[$variant]+="$(rebase $variant) "
  done
done
declare -A results
for variant in "${variants[@]}"; do
  # shellcheck disable=SC2086
  results[$variant]=$(printf '%s\n' ${times[$variant]} | stats)
  echo "$variant: ${times[$variant]}" >&2
done

echo "== rebuild of one app on A'" >&2
build_times=()
for i in $(seq "$runs"); do
  start=$(now)
  build "oci:rebuilt-$i:hello"
  end=$(now)
  build_times+=("$(elapsed "$start" "$end")")
done
rebuild=$(printf '%s\n' "${build_times[@]}" | stats)

du_large=$(du -sh large 2>/dev/null | cut -f1 || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
echo
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr), $(df -T "$work" | awk 'NR == 2 { print $2 }') file system"
echo "images:  $count app images + the seed in one layout; $runs runs each; seconds (median, min, max)"
echo
printf '%-46s %8s %8s %8s\n' "what" "median" "min" "max"
row() { read -r med min max <<<"$2"; printf '%-46s %8s %8s %8s\n' "$1" "$med" "$min" "$max"; }
for variant in "${variants[@]}"; do
  case $variant in
    small) row "rebase --all, 1 KB app layers" "${results[small]}" ;;
    large) row "rebase --all, 100 MB app layers ($du_large layout)" "${results[large]}" ;;
    *) row "rebase --all, 1 KB app layers, ${variant#small }" "${results[$variant]}" ;;
  esac
done
row "rebuild of one app (strata build)" "$rebuild"
read -r small _ <<<"${results[small]}"
read -r large _ <<<"${results[large]:-0}"
read -r one _ <<<"$rebuild"
echo
awk -v s="$small" -v l="$large" -v o="$one" -v n="$count" 'BEGIN {
  printf "per image: %.2f ms; 100 MB vs 1 KB layers: %+.1f%%; one rebuild = %.0f rebased images\n",
    1000 * s / (n + 1), 100 * (l - s) / s, o / (s / (n + 1))
}'
