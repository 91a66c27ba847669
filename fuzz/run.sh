#!/usr/bin/env bash
# Runs cappa's fuzz targets (fuzz/src/targets.rs) over their committed seed corpora.
#
#   fuzz/run.sh [--profile fuzz|dev] [cappa-fuzz run options] [TARGET...]
#
# Options of `cappa-fuzz run`: --execs N (per target, default 100000), --seconds S (per target),
# --seed N, --timeout S (per input, default 10), --json FILE (a report), --artifacts DIR (where
# failing inputs go; default fuzz/artifacts/). Targets: model npz sentencepiece tokenizer config
# image, or all (the default).
#
# --profile fuzz (the default) builds optimised with overflow checks and debug assertions
# (Cargo.toml's [profile.fuzz]); --profile dev reuses the test build (slower per input, no extra
# build: what .ci/run's smoke run uses). Exit status 1 when an input panicked, aborted or hung:
# the input is saved, and `cappa-fuzz replay TARGET FILE` reruns it.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=fuzz
if [ "${1:-}" = "--profile" ]; then
  profile=$2
  shift 2
fi
cargo build --quiet --profile "$profile" -p cappa-fuzz
dir=$profile
[ "$profile" = dev ] && dir=debug
exec "${CARGO_TARGET_DIR:-target}/$dir/cappa-fuzz" run "$@"
