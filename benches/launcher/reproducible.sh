#!/usr/bin/env bash
# Checks that the launcher embedded in the exporter is byte-identical when built from two
# clean checkouts at different paths (each with its own target directory and CARGO_HOME
# path seen through a symlink), and reports its size and how long its nested build took.
#
#   benches/launcher/reproducible.sh [COMMIT]   (default HEAD; needs the crates in the
#                                                 local cargo cache: builds run --offline)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
commit=${1:-HEAD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

home=${CARGO_HOME:-$HOME/.cargo}
ln -s "$home" "$work/cargo-home-b"
host=$(rustc -vV | sed -n 's/^host: //p')

build() { # DIR CARGO_HOME
  git clone -q "$repo" "$1"
  git -C "$1" checkout -q "$commit"
  local start=$SECONDS
  (cd "$1" && CARGO_HOME=$2 cargo build -q -p strata-exporter --locked --offline)
  echo "$1: exporter built in $((SECONDS - start)) s (cold target dir, launcher included)" >&2
  sha256sum < "$1/target/strata-launcher/$host/launcher/launcher" | cut -d' ' -f1
}

a=$(build "$work/a" "$home")
b=$(build "$work/some/other/place/b" "$work/cargo-home-b")
bin=$work/a/target/strata-launcher/$host/launcher/launcher
echo "size: $(stat -c %s "$bin") bytes; $(file -b "$bin" | cut -d, -f1-5)"
# The nested build alone, from its own cold target directory.
start=$SECONDS
(cd "$work/a" && rm -rf target/strata-launcher && touch launcher/src/main.rs \
  && cargo build -q -p strata-exporter --locked --offline)
echo "nested launcher build alone: $((SECONDS - start)) s"
echo "a: $a"
echo "b: $b"
if [[ $a == "$b" ]]; then
  echo "reproducible: the launcher is byte-identical"
else
  echo "NOT reproducible: the launchers differ" >&2
  exit 1
fi
