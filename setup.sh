#!/bin/sh
# Sets up a Debian 12 or Ubuntu machine (as root) to build strata and its example, then builds
# it: Debian's packages for the sandbox and the example run image, and a Rust toolchain from
# rustup when the machine has none or one older than the project's minimum (Cargo.toml's
# `rust-version`; Debian 12's own rustc, 1.63, is older).
set -eu
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# bubblewrap and util-linux: the sandbox; busybox-static and umoci: the example run image;
# skopeo, runc, oci-image-tool: looking at, running and checking images; curl, gcc, libc6-dev:
# rustup and the linker (the launcher in every image is linked statically against glibc).
apt-get install -y -qq --no-install-recommends bubblewrap util-linux busybox-static umoci \
  skopeo runc oci-image-tool ca-certificates curl gcc libc6-dev

minimum=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)

# Whether `rustc` on PATH is at least $minimum (versions compared field by field).
recent_enough() {
  have=$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
  [ -n "$have" ] || return 1
  [ "$(printf '%s\n%s\n' "$minimum" "$have" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$minimum" ]
}

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if ! recent_enough; then
  if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install stable --profile minimal
    rustup default stable
  else
    echo "setup: installing Rust (rustup, minimal profile; strata needs rustc $minimum or newer)"
    curl --proto '=https' --tlsv1.2 -sSf \
      https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init -o /tmp/rustup-init
    chmod +x /tmp/rustup-init
    /tmp/rustup-init -y --profile minimal --default-toolchain stable
    rm -f /tmp/rustup-init
  fi
  . "$HOME/.cargo/env"
fi
if ! recent_enough; then
  echo "setup: rustc $(rustc --version 2>/dev/null || echo '(none)') is older than $minimum, which strata needs" >&2
  exit 1
fi

cargo build --release --locked
echo "setup: done. Build the example: examples/run-image/make.sh && target/release/strata build examples/monorepo"
