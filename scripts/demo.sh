#!/usr/bin/env bash
# README's first command: install what is needed, build vigil and run its main job — the
# verified mount — on a built-in example (examples/mount-demo.sh). Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec examples/mount-demo.sh
