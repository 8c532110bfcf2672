#!/usr/bin/env bash
# Makes a Debian 12 (bookworm) stack from Debian's own packages: a build image (minbase, bash,
# coreutils, ca-certificates and tree) and a run image (minbase and ca-certificates), each with
# the CNB user cnb (1000:1000, home /home/cnb) and /workspace, written with mmdebstrap and umoci
# as OCI layouts:
#
#   examples/stack/make.sh [OUT_DIR]     # OUT_DIR/build/layout:bookworm, OUT_DIR/run/layout:bookworm
#
# OUT_DIR defaults to examples/stack. Needs root (mmdebstrap's root mode), network access to a
# Debian mirror, mmdebstrap and umoci (apt-get install mmdebstrap umoci).
#
# Reproducible: every file time, the history and the config's creation time are
# SOURCE_DATE_EPOCH (fixed below unless set), and the files that record when or where the
# rootfs was made (machine-id, logs, apt and ldconfig caches) are removed, so two runs against
# the same mirror state give the same digests. For the same digests on any day, point
# STRATA_STACK_MIRROR at a snapshot, e.g.
# http://snapshot.debian.org/archive/debian/20240601T000000Z (its date becomes the epoch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
tag=bookworm
mirror=${STRATA_STACK_MIRROR:-http://deb.debian.org/debian}
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $tool" >&2; exit 2; }
done
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  if [[ "$mirror" =~ /([0-9]{8})T([0-9]{2})([0-9]{2})([0-9]{2})Z/?$ ]]; then
    SOURCE_DATE_EPOCH=$(date -u -d "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}:${BASH_REMATCH[3]}:${BASH_REMATCH[4]}" +%s)
  else
    # 2023-06-10, the day Debian 12 was released.
    SOURCE_DATE_EPOCH=1686355200
  fi
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Run inside mmdebstrap's customize step, with the rootfs as $1: the CNB user and /workspace,
# then away with everything that records the time or machine of the run.
customize='
set -e
r=$1
printf "cnb:x:1000:1000:cnb:/home/cnb:/bin/bash\n" >> "$r/etc/passwd"
printf "cnb:x:1000:\n" >> "$r/etc/group"
printf "cnb:*:%s:0:99999:7:::\n" $((SOURCE_DATE_EPOCH / 86400)) >> "$r/etc/shadow"
printf "cnb:*::\n" >> "$r/etc/gshadow"
sed -i "s/^\([^:]*:[^:]*:\)[0-9]*:/\1$((SOURCE_DATE_EPOCH / 86400)):/" "$r/etc/shadow"
mkdir -p "$r/home/cnb" "$r/workspace"
chown 1000:1000 "$r/home/cnb" "$r/workspace"
rm -f "$r"/etc/passwd- "$r"/etc/group- "$r"/etc/shadow- "$r"/etc/gshadow-
rm -f "$r/var/cache/ldconfig/aux-cache" "$r/var/lib/dbus/machine-id"
: > "$r/etc/machine-id"
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old
rm -f "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/var/lib/dpkg/*-old
find "$r/var/log" -type f -exec truncate -s 0 {} +
rm -rf "$r"/tmp/* "$r"/var/tmp/*
'

# The packages both images share are downloaded once: the first image's .debs seed the second's
# apt cache (the cleanup below empties the cache inside each image).
mkdir -p "$work/debs"

# make KIND PACKAGES LABEL... : one image at $out/KIND/layout:$tag.
make_image() {
  local kind=$1 packages=$2
  shift 2
  local layout=$out/$kind/layout
  local rootfs=$work/$kind.tar
  mmdebstrap --quiet --mode=root --variant=minbase --architectures="$arch" \
    --include="$packages" \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '$work/debs' /var/cache/apt/archives" \
    --customize-hook="sync-out /var/cache/apt/archives '$work/debs'" \
    --customize-hook="sh -c '$customize' customize \"\$1\"" \
    bookworm "$rootfs" "$mirror" >&2
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci raw add-layer --image "$layout:$tag" \
    --history.created "$created" --history.created_by "examples/stack/make.sh ($kind)" "$rootfs"
  umoci config --no-history --image "$layout:$tag" \
    --created "$created" --author "" \
    --os linux --architecture "$arch" \
    --config.user 1000:1000 \
    --config.workingdir /workspace \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env CNB_USER_ID=1000 --config.env CNB_GROUP_ID=1000 \
    --config.label io.buildpacks.base.id=io.strata.stacks.bookworm \
    --config.label io.buildpacks.stack.id=io.strata.stacks.bookworm \
    --config.label io.buildpacks.base.distro.name=debian \
    --config.label io.buildpacks.base.distro.version=12 \
    --config.label "io.buildpacks.base.maintainer=strata examples" \
    --config.label "io.buildpacks.base.homepage=https://www.debian.org" \
    "$@"
  umoci gc --layout "$layout"
  echo "$kind image: oci:$layout:$tag"
}

make_image build bash,coreutils,ca-certificates,tree
make_image run ca-certificates --config.label io.buildpacks.rebasable=true
