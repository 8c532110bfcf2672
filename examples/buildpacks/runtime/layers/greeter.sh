#!/usr/bin/env bash
# The greeter runtime, keyed by .runtime-version: a small shell tool on PATH.
set -euo pipefail
layer="$1"
version=$(tr -d '[:space:]' < .runtime-version)
echo "---> Greeter runtime $version"
mkdir -p "$layer/bin" "$layer/env" "$layer/env.launch"
cat > "$layer/bin/greet" <<SCRIPT
#!/bin/sh
echo "\${GREETING:-Hello} from greeter $version: \$*"
SCRIPT
chmod 0755 "$layer/bin/greet"
printf '%s' "Hello" > "$layer/env.launch/GREETING.default"
printf '%s' "$version" > "$layer/env/GREETER_VERSION.override"
if [[ -n "${STRATA_SBOM_DIR:-}" ]]; then
  printf '{"bomFormat":"CycloneDX","specVersion":"1.4","version":1,"components":[{"type":"application","name":"greeter","version":"%s"}]}\n' \
    "$version" > "$STRATA_SBOM_DIR/sbom.cdx.json"
fi
