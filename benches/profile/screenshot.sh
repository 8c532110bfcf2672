#!/usr/bin/env bash
# The README's picture of a build: a cold build of the example monorepo with --profile, drawn
# by timeline.py and rasterised by headless Chromium (Debian's `chromium` package).
# Usage: benches/profile/screenshot.sh [STRATA] [OUT.png] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../.."
strata=$(realpath "${1:-target/release/strata}")
out=$(realpath -m "${2:-benches/profile/monorepo-cold.png}")
jobs=${3:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -a examples "$work/examples"
rm -rf "$work/examples/monorepo/out"
[ -d "$work/examples/run-image/layout" ] || "$work/examples/run-image/make.sh" >/dev/null
(cd "$work/examples" && "$strata" build monorepo --jobs "$jobs" --cache-dir "$work/cache" \
  --profile "$work/trace.json" >/dev/null 2>&1)
title="strata build examples/monorepo: cold, --jobs $jobs ($(nproc) cores)"
benches/profile/timeline.py "$work/trace.json" "$work/timeline.svg" "$title"
height=$(sed -n 's/.*height="\([0-9]*\)".*/\1/p' "$work/timeline.svg" | head -n1)
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="1180,$height" --screenshot="$out" "file://$work/timeline.svg" 2>/dev/null
echo "$out"
