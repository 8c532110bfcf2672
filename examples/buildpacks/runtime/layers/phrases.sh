#!/usr/bin/env bash
# Phrase packages, keyed by greeter.lock (one "name version" a line), installed with the
# greeter runtime this layer needs.
set -euo pipefail
layer="$1"
command -v greet >/dev/null || { echo "greet is not on PATH: the greeter layer is missing" >&2; exit 1; }
mkdir -p "$layer/share/phrases" "$layer/env.launch"
count=0
if [[ -f greeter.lock ]]; then
  while read -r name version; do
    [[ -n "$name" && "$name" != \#* ]] || continue
    printf '%s %s\n' "$name" "$version" > "$layer/share/phrases/$name"
    count=$((count + 1))
  done < greeter.lock
fi
printf '%s' "$layer/share/phrases" > "$layer/env.launch/GREETER_PHRASES.override"
echo "---> $count phrase package(s) for greeter $GREETER_VERSION"
