#!/usr/bin/env bash
# Builds the browser demo into examples/web/dist (or $CAPPA_WEB_OUT): the cappa-web crate for
# wasm32, wasm-bindgen's JS glue, the page, and, when the repository has them, the default model
# (examples/models/shapes-q8.safetensors) and sample images (examples/images/*). Installs what is
# missing: the wasm32 target, and the wasm-bindgen CLI of exactly the version in Cargo.lock.
# Safe to re-run; everything is incremental. `build.sh --tools` only installs the tools.
set -euo pipefail
cd "$(dirname "$0")/../.."
WEB=examples/web
OUT=${CAPPA_WEB_OUT:-$WEB/dist}

rustup target list --installed | grep -qx wasm32-unknown-unknown ||
  rustup target add wasm32-unknown-unknown

# The CLI must match the wasm-bindgen crate exactly. No --locked: with it the install fails to
# resolve its own dependencies on a registry mirror that lags (see PLATFORM.md §9.11).
WB=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WB"; then
  echo "installing wasm-bindgen-cli $WB (once; a few minutes)"
  cargo install wasm-bindgen-cli --version "$WB"
fi
[ "${1:-}" = "--tools" ] && exit 0

# LTO shrinks the module (wgpu's web backend is mostly glue) and speeds up the CPU fallback.
CARGO_PROFILE_RELEASE_LTO=true cargo build -p cappa-web --lib --release --target wasm32-unknown-unknown
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT/pkg" \
  "$TARGET_DIR/wasm32-unknown-unknown/release/cappa_web.wasm"
cp "$WEB"/www/index.html "$WEB"/www/app.js "$WEB"/www/style.css "$OUT/"

# The default model (q8 weights, what the page loads; the f32 file too, for ?model=) and the
# sample images, served beside the page.
if [ -f examples/models/shapes-q8.safetensors ]; then
  mkdir -p "$OUT/models"
  cp examples/models/shapes-q8.safetensors examples/models/shapes.safetensors "$OUT/models/"
else
  echo "note: no examples/models/shapes-q8.safetensors yet; open the page with ?model=URL"
fi
images=()
if [ -d examples/images ]; then
  for f in examples/images/*; do
    case "${f,,}" in *.png | *.jpg | *.jpeg | *.webp | *.ppm) images+=("$f") ;; esac
  done
fi
if [ ${#images[@]} -gt 0 ]; then
  mkdir -p "$OUT/images"
  cp "${images[@]}" "$OUT/images/"
  json_list() { # JSON strings of the arguments (names and labels: no quotes or backslashes)
    local sep="" s
    for s in "$@"; do printf '%s"%s"' "$sep" "$s"; sep=", "; done
  }
  names=()
  for f in "${images[@]}"; do names+=("$(basename "$f")"); done
  mapfile -t labels < <(grep -v '^[[:space:]]*$' "$WEB/labels.txt")
  printf '{"images": [%s], "labels": [%s]}\n' "$(json_list "${names[@]}")" \
    "$(json_list "${labels[@]}")" >"$OUT/images/index.json"
fi
echo "built $OUT ($(du -h "$OUT/pkg/cappa_web_bg.wasm" | cut -f1) of wasm); serve it with $WEB/serve.sh"
