#!/usr/bin/env bash
# Prepares the main job's corpus (configs/train/default.toml): the license
# texts every Debian system ships in /usr/share/common-licenses (base-files),
# tokenized byte by byte with forge-data into data/licenses/train_*.npy, the
# last tenth of the documents held out in data/licenses/eval/. About 240 KB
# of English prose, so nothing is downloaded. Idempotent: a stamp of the
# inputs and of forge-data's version skips the work when nothing changed.
#
#   FORGE_BUILD_DIR  where forge-data was built (default: build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${FORGE_BUILD_DIR:-build}"
out=data/licenses
src=/usr/share/common-licenses

# Regular files only: GPL, LGPL and GFDL are symlinks to a versioned text.
mapfile -t files < <(find "$src" -maxdepth 1 -type f | LC_ALL=C sort)
if ((${#files[@]} == 0)); then
  echo "prepare-data: no text in $src (is base-files installed?)" >&2
  exit 1
fi
want="$("$build/bin/forge-data" --version) $(cat "${files[@]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$want" ]; then
  exit 0
fi
"$build/bin/forge-data" tokenize --tokenizer byte --eval-fraction 0.1 \
  --overwrite -o "$out" "${files[@]}"
echo "$want" > "$out/.stamp"
