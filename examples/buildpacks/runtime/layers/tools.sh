#!/usr/bin/env bash
# Build-time tools for later buildpacks: render-process prints a launch.toml process entry.
set -euo pipefail
layer="$1"
mkdir -p "$layer/bin"
cat > "$layer/bin/render-process" <<'SCRIPT'
#!/usr/bin/env bash
# render-process TYPE COMMAND...
type=$1; shift
escaped=$(printf '%s' "$*" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
printf '[[processes]]\ntype = "%s"\ncommand = ["/bin/sh", "-c", "%s"]\n' "$type" "$escaped"
SCRIPT
chmod 0755 "$layer/bin/render-process"
