#!/usr/bin/env bash
# A fleet through a local registry: push, pull and registry rebase of COUNT app images with
# strata, against `skopeo copy` of the same images to and from the same registry.
#
#   benches/registry/fleet.sh [COUNT] [RUNS]        (defaults: 20 images, 5 runs each)
#
# Starts docker-registry on 127.0.0.1 (filesystem storage in the work dir, killed on exit),
# pushes the example run image A as stacks/run:24, builds a workspace of COUNT services (the
# example app plus 1 MiB of random bytes each, so every image has its own app layer) on it into
# a layout, and times (medians, min, max of RUNS):
#   - push:   `strata build WS --output docker://HOST/s` with every task cached (so it is the
#             up-to-date check plus the push of COUNT images into empty repositories), against
#             one `skopeo copy --preserve-digests oci:LAYOUT:SVC docker://HOST/k/SVC:1` per image;
#   - pull:   the registry client (`regcopy pull`, one process per image) against `skopeo copy`
#             of each image into an empty layout;
#   - rebase: `strata rebase --run-image docker://HOST/stacks/run:24 --from-file LIST` of the
#             COUNT images onto A' (A plus one layer) pushed under the same tag; before each run
#             the tags are put back on the images built on A (untimed).
# Needs: a release build (built here), docker-registry, skopeo, umoci,
# python3, busybox-static, bubblewrap. WORK_DIR=DIR keeps the files (default: a temp dir).
set -euo pipefail
count=${1:-20}
runs=${2:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p strata-cli
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p strata-registry --example regcopy
strata=$repo/target/release/strata
regcopy=$repo/target/release/examples/regcopy
for tool in docker-registry skopeo umoci python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done
if [[ -n ${WORK_DIR:-} ]]; then
  work=$WORK_DIR
  rm -rf "$work" && mkdir -p "$work"
else
  work=$(mktemp -d)
fi
cleanup() { kill "${registry_pid:-0}" 2>/dev/null || true; [[ -n ${WORK_DIR:-} ]] || rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
stats() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > config.yml <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve config.yml > registry.log 2>&1 &
registry_pid=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
host=127.0.0.1:$port
repos=$work/storage/docker/registry/v2/repositories
flags=(--insecure-registry "$host" --cache-dir "$work/cache")

echo "== run images A and A' (A plus /etc/patch-level)" >&2
"$repo/examples/run-image/make.sh" "$work/a" run >/dev/null
cp -a a patched
umoci unpack --image patched:run bundle >/dev/null
echo patched > bundle/rootfs/etc/patch-level
umoci repack --image patched:run bundle >/dev/null
rm -rf bundle
skopeo copy -q --dest-tls-verify=false oci:a:run "docker://$host/stacks/run:24"

echo "== a workspace of $count services on A" >&2
mkdir -p ws/services
for i in $(seq -w 1 "$count"); do
  cp -a "$repo/examples/apps/hello" "ws/services/s$i"
  head -c 1048576 /dev/urandom > "ws/services/s$i/data.bin"
done
printf '[workspace]\nbuilder = "%s/examples/builder.toml"\nservices = ["services/*"]\n' "$repo" > ws/strata.toml
"$strata" build ws --run-image "docker://$host/stacks/run:24" --output "oci:$work/apps" "${flags[@]}" --json >/dev/null
services=$(cd ws/services && ls)
mb=$(du -sm --apparent-size apps/blobs | cut -f1)

push_strata() { "$strata" build ws --run-image "docker://$host/stacks/run:24" --output "docker://$host/s" --tag 1 "${flags[@]}" --json >/dev/null; }
push_skopeo() { for s in $services; do skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:apps:$s" "docker://$host/k/$s:1"; done; }
pull_strata() { for s in $services; do "$regcopy" pull "$host/s/$s:1" "pull-s/$s" >/dev/null; done; }
pull_skopeo() { for s in $services; do skopeo copy -q --preserve-digests --src-tls-verify=false "docker://$host/s/$s:1" "oci:pull-k/$s:1"; done; }
rebase_strata() { "$strata" rebase --run-image "docker://$host/stacks/run:24" --from-file list.txt "${flags[@]}" --json >/dev/null; }

declare -A times
time_it() { # name prepare command
  for _ in $(seq "$runs"); do
    $2
    sync
    local t0; t0=$(now)
    $3
    local t; t=$(elapsed "$t0" "$(now)")
    echo "$1: $t s" >&2
    times[$1]+="$t "
  done
}
fresh_s() { rm -rf "$repos/s"; }
fresh_k() { rm -rf "$repos/k"; }
fresh_pull_s() { rm -rf pull-s; mkdir pull-s; }
fresh_pull_k() { rm -rf pull-k; mkdir pull-k; }
echo "== push, pull" >&2
time_it "push strata" fresh_s push_strata
time_it "push skopeo" fresh_k push_skopeo
time_it "pull strata" fresh_pull_s pull_strata
time_it "pull skopeo" fresh_pull_k pull_skopeo

echo "== rebase onto A'" >&2
for s in $services; do echo "docker://$host/s/$s:1"; done > list.txt
skopeo copy -q --dest-tls-verify=false oci:patched:run "docker://$host/stacks/run:24"
restore() { for s in $services; do skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:apps:$s" "docker://$host/s/$s:1"; done; }
time_it "rebase strata" restore rebase_strata
"$strata" rebase --run-image "docker://$host/stacks/run:24" --from-file list.txt "${flags[@]}" --json \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["summary"]["up_to_date"] == '"$count"', r["summary"]'

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "images: $count, $mb MB of blobs in the layout (run image included once)"
printf '%-14s %8s %8s %8s\n' "" median min max
for name in "push strata" "push skopeo" "pull strata" "pull skopeo" "rebase strata"; do
  # shellcheck disable=SC2086
  read -r med min max < <(printf '%s\n' ${times[$name]} | stats)
  printf '%-14s %8s %8s %8s\n' "$name" "$med" "$min" "$max"
done
