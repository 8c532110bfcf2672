#!/usr/bin/env bash
# Push and pull of one image through a local registry: strata's registry client (the
# `regcopy` example) against `skopeo copy` of the same image to and from the same registry.
#
# Makes an OCI layout with LAYERS layers of MB MiB of random bytes each (defaults 4 and 25),
# starts docker-registry on 127.0.0.1 (filesystem storage in WORK_DIR, killed on exit), and
# times with hyperfine (medians): a push into an empty repository (the repository is removed
# before each run, so every blob goes up), a pull into an empty directory, and a second pull
# into the same directory (nothing to transfer). skopeo copies with --preserve-digests, so
# both move the same bytes.
#
# Usage: benches/registry/push-pull.sh [WORK_DIR]     (default: target/bench-registry)
# Env:   LAYERS, MB, RUNS (default 5). Needs hyperfine, docker-registry, skopeo.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(realpath -m "${1:-target/bench-registry}")
layers=${LAYERS:-4}
mb=${MB:-25}
runs=${RUNS:-5}
for tool in hyperfine docker-registry skopeo; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install $tool)" >&2; exit 2; }
done
rm -rf "$work" && mkdir -p "$work"
cargo build --quiet --release -p strata-registry --example regcopy
regcopy="$PWD/target/release/examples/regcopy"

python3 - "$work/src" "$layers" "$mb" <<'PY'
import hashlib, json, os, sys
root, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{root}/blobs/sha256")
def add(data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{root}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
layers = [add(os.urandom(mb << 20), "application/vnd.oci.image.layer.v1.tar") for _ in range(n)]
config = add(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode(),
    "application/vnd.oci.image.config.v1+json")
manifest = add(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": config, "layers": layers}).encode(), "application/vnd.oci.image.manifest.v1+json")
manifest["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
json.dump({"schemaVersion": 2, "manifests": [manifest]}, open(f"{root}/index.json", "w"))
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done

host=127.0.0.1:$port
repos=$work/storage/docker/registry/v2/repositories
"$regcopy" push "$work/src" "$host/seed:bench" > /dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "image: $layers layers of $mb MiB"
hyperfine --style basic --runs "$runs" --export-json "$work/times.json" \
  -n "strata push" --prepare "rm -rf $repos/s" "$regcopy push $work/src $host/s:bench" \
  -n "skopeo push" --prepare "rm -rf $repos/k" \
    "skopeo copy -q --preserve-digests --dest-tls-verify=false oci:$work/src:bench docker://$host/k:bench" \
  -n "strata pull" --prepare "rm -rf $work/pull-s" "$regcopy pull $host/seed:bench $work/pull-s" \
  -n "skopeo pull" --prepare "rm -rf $work/pull-k" \
    "skopeo copy -q --preserve-digests --src-tls-verify=false docker://$host/seed:bench oci:$work/pull-k:bench" \
  -n "strata pull again" --prepare true "$regcopy pull $host/seed:bench $work/pull-s" \
  -n "skopeo pull again" --prepare true \
    "skopeo copy -q --preserve-digests --src-tls-verify=false docker://$host/seed:bench oci:$work/pull-k:bench" \
  > /dev/null
python3 - "$work/times.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:18} median {r['median'] * 1000:8.1f} ms")
PY
