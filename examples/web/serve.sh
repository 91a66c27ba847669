#!/usr/bin/env bash
# Serves the built demo (examples/web/build.sh) on http://127.0.0.1:${PORT:-8000}/ for a person
# to open. WebGPU needs a secure context: 127.0.0.1 and localhost count as one.
# CAPPA_WEB_OUT: the folder build.sh wrote (default examples/web/dist; relative to the repository).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${CAPPA_WEB_OUT:-examples/web/dist}
[ -f "$DIR/pkg/cappa_web.js" ] || { echo "not built yet: run examples/web/build.sh" >&2; exit 1; }
PORT=${PORT:-8000}
echo "open http://127.0.0.1:$PORT/ (Ctrl-C stops)"
exec node examples/web/server.mjs "$DIR" "$PORT"
