#!/usr/bin/env bash
# Signing many small files: `evmctl ima_sign` once per file (how scripts use it),
# `evmctl ima_sign -r DIR` (its own sequential walk), and `vigil ima sign -r DIR`
# (parallel). Same RSA-2048 key, same files, user.ima xattrs. Prints the median
# wall time of RUNS runs per tool, files per second and the ratios.
#
# Usage: bench/evmctl-sign.sh [FILES] [RUNS]     (defaults: 10000 files, 3 runs)
set -euo pipefail
N=${1:-10000}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --quiet -p vigil
VIGIL=$ROOT/target/release/vigil
EVMCTL=${EVMCTL:-/usr/bin/evmctl}
[ -x "$EVMCTL" ] || { echo "need $EVMCTL (apt-get install ima-evm-utils)" >&2; exit 2; }

# A scratch directory on a file system with user xattrs (tmpfs may lack them).
base=""
for cand in "${TMPDIR:-/tmp}" /var/tmp "$ROOT/target"; do
    probe=$(mktemp -p "$cand" 2>/dev/null) || continue
    if setfattr -n user.probe -v 1 "$probe" 2>/dev/null; then base=$cand; rm -f "$probe"; break; fi
    rm -f "$probe"
done
[ -n "$base" ] || { echo "no directory with user xattr support" >&2; exit 2; }
W=$(mktemp -d -p "$base" vigil-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/key.pem" 2>/dev/null
mkdir -p "$W/files"
echo "creating $N files of 1-4 KiB in $W/files"
python3 - "$W/files" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%02d" % (i % 50))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
PY
find "$W/files" -type f | sort > "$W/list"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

per_file() { while IFS= read -r f; do "$EVMCTL" ima_sign --xattr-user --key "$W/key.pem" "$f"; done < "$W/list"; }
evm_r() { "$EVMCTL" ima_sign -r --xattr-user --key "$W/key.pem" "$W/files"; }
vig_r() { "$VIGIL" ima sign -r --xattr-user --key "$W/key.pem" "$W/files"; }

declare -A T
for name in per_file evm_r vig_r; do
    for _ in $(seq "$RUNS"); do timeit $name; done | median > "$W/t.$name"
    T[$name]=$(cat "$W/t.$name")
done

rate() { echo "scale=0; $N / $1" | bc -l; }
printf "%-36s %10s %12s\n" "tool ($N files, median of $RUNS)" "seconds" "files/s"
printf "%-36s %10.2f %12s\n" "evmctl ima_sign (one call per file)" "${T[per_file]}" "$(rate "${T[per_file]}")"
printf "%-36s %10.2f %12s\n" "evmctl ima_sign -r DIR" "${T[evm_r]}" "$(rate "${T[evm_r]}")"
printf "%-36s %10.2f %12s\n" "vigil ima sign -r DIR ($(nproc) cpus)" "${T[vig_r]}" "$(rate "${T[vig_r]}")"
printf "ratio vs evmctl per file: %.1fx   vs evmctl -r: %.1fx\n" \
    "$(echo "${T[per_file]} / ${T[vig_r]}" | bc -l)" "$(echo "${T[evm_r]} / ${T[vig_r]}" | bc -l)"
