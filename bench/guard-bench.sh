#!/usr/bin/env bash
# Benchmarks of the enforcement core (vigil-guard): cached-decision cost per open,
# first-measurement throughput on many small files, measurement-log append rate with
# group commit. There is no reference tool for these; the numbers stand alone.
# Runs on the filesystem of the target directory (fsync cost is the filesystem's).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p vigil-guard >/dev/null 2>&1 || true
VIGIL_BENCH_DIR="${VIGIL_BENCH_DIR:-$PWD/target}" cargo bench -q -p vigil-guard --bench guard
