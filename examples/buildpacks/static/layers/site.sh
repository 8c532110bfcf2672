#!/usr/bin/env bash
# The site: public/ copied into the layer, text files pre-compressed for httpd, and a
# manifest. Reads public/, static.toml and APP_ENV only.
set -euo pipefail
layer="$1"
export LC_ALL=C

setting() {
  [[ -f static.toml ]] || return 0
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\(.*\)\"[[:space:]]*\$/\1/p" static.toml | head -n1
}

[[ -d public ]] || { echo "no public/ directory: nothing to serve" >&2; exit 1; }
title=$(setting title)
if [[ -z "$title" && -f public/index.html ]]; then
  title=$(sed -n 's:.*<title>\(.*\)</title>.*:\1:p' public/index.html | head -n1)
fi
title=${title:-Static site}
env=${APP_ENV:-development}

mkdir -p "$layer/public" "$layer/env.launch"
cp -R public/. "$layer/public/"
count=0
: > "$layer/MANIFEST"
while IFS= read -r file; do
  rel=${file#"$layer/public"}
  printf '%7d  %s\n' "$(wc -c < "$file")" "$rel" >> "$layer/MANIFEST"
  case "$file" in
    *.html | *.css | *.js | *.json | *.svg | *.txt) gzip -9 -n -c "$file" > "$file.gz" ;;
  esac
  count=$((count + 1))
done < <(find "$layer/public" -type f | sort)

printf '%s' "$layer" > "$layer/env.launch/SITE_DIR.override"
printf '%s' "$title" > "$layer/env.launch/SITE_TITLE.override"
printf '%s' "$env" > "$layer/env.launch/SITE_ENV.override"
echo "---> $title: $count file(s) from public/ ($env)"
