#!/usr/bin/env bash
# Serves the built demo (examples/web/build.sh) on http://127.0.0.1:${PORT:-8000}/ for a person
# to open. WebGPU needs a secure context: 127.0.0.1 and localhost count as one.
set -euo pipefail
cd "$(dirname "$0")"
DIR=${CAPPA_WEB_OUT:-dist}
[ -f "$DIR/pkg/cappa_web.js" ] || { echo "not built yet: run examples/web/build.sh" >&2; exit 1; }
PORT=${PORT:-8000}
echo "open http://127.0.0.1:$PORT/ (Ctrl-C stops)"
exec node server.mjs "$DIR" "$PORT"
