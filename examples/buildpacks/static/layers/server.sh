#!/usr/bin/env bash
# The commands that describe and serve a site, for the busybox run image. Reads no app file.
set -euo pipefail
layer="$1"
mkdir -p "$layer/bin"
cat > "$layer/bin/site-info" <<'SCRIPT'
#!/bin/sh
# Prints what the image serves: the site's title, how it was built, and its files.
set -e
: "${SITE_DIR:?the site layer is missing}"
echo "$SITE_TITLE ($SITE_ENV): $(wc -l < "$SITE_DIR/MANIFEST") file(s), served from $SITE_DIR/public"
sed 's/^/  /' "$SITE_DIR/MANIFEST"
SCRIPT
cat > "$layer/bin/serve-static" <<'SCRIPT'
#!/bin/sh
# Serves the site in the foreground on $PORT (default 8080).
: "${SITE_DIR:?the site layer is missing}"
echo "serving $SITE_TITLE on :${PORT:-8080}"
exec /bin/busybox httpd -f -v -p "${PORT:-8080}" -h "$SITE_DIR/public"
SCRIPT
chmod 0755 "$layer/bin/site-info" "$layer/bin/serve-static"
echo "---> site-info and serve-static (busybox httpd)"
