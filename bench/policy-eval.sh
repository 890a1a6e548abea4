#!/usr/bin/env bash
# Decisions per second of vigil's compiled IMA policy evaluator on a 200-rule policy,
# one core. There is no userspace reference implementation of IMA policy matching
# (the kernel's ima_match_policy is the reference), so the number is compared with
# the 5 M decisions/s target.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
cargo build --release -p vigil-ima --benches --quiet
bin=$(ls -t target/release/deps/policy_eval-* | grep -v '\.d$' | head -1)
if command -v taskset >/dev/null; then
    taskset -c 0 "$bin" "$rounds"
else
    "$bin" "$rounds"
fi
