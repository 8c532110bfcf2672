#!/usr/bin/env bash
# Makes a small run image with a shell: Debian's busybox-static, the CNB user (1000:1000) and
# /workspace, written with umoci as an OCI layout at examples/run-image/layout:busybox.
#
#   examples/run-image/make.sh [LAYOUT_DIR] [TAG]
#
# Needs: busybox-static, umoci (apt-get install busybox-static umoci). Every file gets a fixed
# mtime and the config a fixed creation time, so the image is the same on every machine that
# has the same busybox package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
layout=${1:-$here/layout}
tag=${2:-busybox}
busybox=$(command -v busybox) || { echo "busybox not found: apt-get install busybox-static" >&2; exit 2; }
command -v umoci >/dev/null || { echo "umoci not found: apt-get install umoci" >&2; exit 2; }

# The image's distribution is busybox at its version: what buildpacks see as
# CNB_TARGET_DISTRO_NAME/_VERSION.
version=$("$busybox" --help 2>&1 | sed -n '1s/^BusyBox v\([0-9][0-9.]*\).*/\1/p')
[[ -n "$version" ]] || { echo "cannot read the busybox version" >&2; exit 2; }

# The image is for the host's platform: strata builds on the host, for nothing else.
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[[ -f "$layout/oci-layout" ]] || umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root"/{bin,etc,tmp,workspace,home/cnb,usr/bin}
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in sh ash cat echo env ls id printf sleep test true false head tr wc grep sed; do
  ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\ncnb:x:1000:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/workspace" "$root/home/cnb"
find "$root" -exec touch -h -d '1980-01-01T00:00:01Z' {} +
umoci repack --history.created 1980-01-01T00:00:01Z --history.created_by "examples/run-image/make.sh" \
  --image "$layout:$tag" "$work/bundle" >/dev/null
umoci config --no-history --image "$layout:$tag" \
  --created 1980-01-01T00:00:01Z \
  --os linux --architecture "$arch" \
  --config.user 1000:1000 \
  --config.workingdir /workspace \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env CNB_USER_ID=1000 --config.env CNB_GROUP_ID=1000 \
  --config.label io.buildpacks.base.id=examples.busybox \
  --config.label io.buildpacks.base.distro.name=busybox \
  --config.label io.buildpacks.base.distro.version="$version" \
  --config.label io.buildpacks.stack.id=examples.busybox
umoci gc --layout "$layout"
echo "run image: oci:$layout:$tag"
