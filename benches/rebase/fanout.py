#!/usr/bin/env python3
"""Fans one app image of an OCI layout out into many tagged images, for the rebase benchmark.

    fanout.py LAYOUT SEED_TAG COUNT --layer-size BYTES [--distinct K]

Each new image `app-NNNN` is the seed image plus one more app layer: an uncompressed tar
holding `/workspace/data.bin` of BYTES bytes. With --distinct K (default: COUNT) there are K
different such layers, used round robin, so large layers can be shared to bound disk use. Each
image gets its own label, hence its own config and manifest. Only JSON and the extra layers are
written; the seed's layers are referenced by digest. index.json is replaced at the end.
"""

import argparse
import hashlib
import json
import os
import tarfile

LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
REF = "org.opencontainers.image.ref.name"
LIFECYCLE = "io.buildpacks.lifecycle.metadata"
CHUNK = 1 << 20


def blob_path(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def read_json(layout, digest):
    with open(blob_path(layout, digest), "rb") as f:
        return json.load(f)


def put_json(layout, value):
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return digest, len(data)


def put_layer(layout, size, seed):
    """A tar with one file of `size` pseudo-random bytes; returns (digest, size)."""
    info = tarfile.TarInfo("workspace/data.bin")
    info.size = size
    info.mode = 0o644
    info.uid = info.gid = 1000
    info.mtime = 315532801
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    padding = b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024
    tmp = os.path.join(layout, "blobs", "sha256", f".tmp-{seed}")
    hasher = hashlib.sha256()
    block = hashlib.sha256(f"strata bench {seed}".encode()).digest() * (CHUNK // 32)
    with open(tmp, "wb") as f:
        hasher.update(header)
        f.write(header)
        left = size
        while left:
            piece = block[: min(left, CHUNK)]
            hasher.update(piece)
            f.write(piece)
            left -= len(piece)
            block = hashlib.sha256(block[:32]).digest() * (CHUNK // 32)
        hasher.update(padding)
        f.write(padding)
        total = f.tell()
    digest = "sha256:" + hasher.hexdigest()
    os.replace(tmp, blob_path(layout, digest))
    return digest, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("layout")
    parser.add_argument("seed_tag")
    parser.add_argument("count", type=int)
    parser.add_argument("--layer-size", type=int, required=True)
    parser.add_argument("--distinct", type=int)
    args = parser.parse_args()

    with open(os.path.join(args.layout, "index.json")) as f:
        index = json.load(f)
    seed = next(m for m in index["manifests"] if m.get("annotations", {}).get(REF) == args.seed_tag)
    manifest = read_json(args.layout, seed["digest"])
    config = read_json(args.layout, manifest["config"]["digest"])

    distinct = args.distinct or args.count
    layers = [put_layer(args.layout, args.layer_size, i) for i in range(distinct)]
    entries = [m for m in index["manifests"] if not m.get("annotations", {}).get(REF, "").startswith("app-")]
    for i in range(args.count):
        digest, size = layers[i % distinct]
        image_config = json.loads(json.dumps(config))
        image_config["rootfs"]["diff_ids"].append(digest)
        image_config["history"].append(
            {"created": "1980-01-01T00:00:01Z", "created_by": "Application Slice: 1"}
        )
        labels = image_config["config"]["Labels"]
        labels["org.example.bench.copy"] = str(i)
        meta = json.loads(labels[LIFECYCLE])
        meta["app"].insert(0, {"sha": digest})
        labels[LIFECYCLE] = json.dumps(meta, sort_keys=True, separators=(",", ":"))
        config_digest, config_size = put_json(args.layout, image_config)
        image_manifest = json.loads(json.dumps(manifest))
        image_manifest["config"] = {"mediaType": CONFIG, "digest": config_digest, "size": config_size}
        image_manifest["layers"].append({"mediaType": LAYER, "digest": digest, "size": size})
        manifest_digest, manifest_size = put_json(args.layout, image_manifest)
        entries.append(
            {
                "mediaType": MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {REF: f"app-{i:04d}"},
            }
        )
    index["manifests"] = entries
    tmp = os.path.join(args.layout, ".index.json.tmp")
    with open(tmp, "w") as f:
        json.dump(index, f, sort_keys=True, separators=(",", ":"))
    os.replace(tmp, os.path.join(args.layout, "index.json"))


if __name__ == "__main__":
    main()
