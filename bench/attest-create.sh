#!/usr/bin/env bash
# Runtime-policy generation from a root file system: vigil runtime-policy create vs
# Keylime's keylime-policy create runtime, on the same generated tree in one run (after
# a warm-up of each, so both read from the page cache). Prints medians and the ratio,
# and checks that both produce the same digests. Needs Keylime in target/keylime-venv
# (scripts/install-deps.sh) and root (keylime-policy refuses to run otherwise; both
# hash only root-owned files). Also prints the median CPU time (user + sys) of each and
# the load average: Keylime runs on about one core and vigil on all, so on a machine
# whose other cores are busy the wall-clock ratio falls to the ratio of CPU times.
#
# vigil reads the tree with getdents/openat relative to directory descriptors and hashes
# four files at a time per thread with interleaved SHA-NI rounds (vigil_fsverity::sha256).
# On the 2-vCPU test machine (Dec 2026), generated tree, 5 rounds: quiet 0.319 s (CPU
# 0.54 s) vs 4.44 s, 13.9x; with another job holding about one core 0.53-0.81 s vs
# 3.52-4.78 s, 5.9-6.6x; /usr/share (43,107 files, 648 MB): quiet 0.587 s vs 8.50 s,
# 14.5x; busy 6.8-7.4x. Before:
# 4.7x / 5.3x. See README.md (Remote attestation, Performance).
set -euo pipefail
cd "$(dirname "$0")/.."
# ROOTFS=/usr/share runs both on an existing tree instead of a generated one.
FILES=${FILES:-20000}
ROOTFS=${ROOTFS:-}
ROUNDS=${ROUNDS:-3}
PY=${KEYLIME_PYTHON:-target/keylime-venv/bin/python}
[[ -x $PY ]] || { echo "no Keylime venv at $PY; run scripts/install-deps.sh" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run as root (keylime-policy requires it)" >&2; exit 2; }
cargo build --release -q -p vigil
VIGIL=target/release/vigil
work=$(mktemp -d /var/tmp/vigil-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=${ROOTFS:-$work/tree}
if [[ -z $ROOTFS ]]; then
mkdir -p "$work/tree"
"$PY" - "$work/tree" "$FILES" <<'PYEOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
for i in range(n):
    d = os.path.join(root, "usr", f"lib{i % 50}", f"pkg{i % 400}")
    os.makedirs(d, exist_ok=True)
    size = rnd.choice([200, 1500, 4096, 12000, 40000, 150000])
    with open(os.path.join(d, f"file{i}.so"), "wb") as f:
        f.write(rnd.randbytes(size))
PYEOF
fi
echo "tree: $tree, $(find "$tree" -type f | wc -l) files, $(du -sh "$tree" | cut -f1)"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Wall-clock seconds of a command; its CPU time (user + sys) is appended to the file $cpu_log.
time_it() {
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  read -r w u s <<<"$t"
  awk "BEGIN{print $u + $s}" >>"$cpu_log"
  echo "$w"
}

kl() { "$PY" crates/cli/tests/attest_keylime.py --create --rootfs "$tree" -o "$1"; }
vg() { "$VIGIL" runtime-policy create --rootfs "$tree" -o "$1"; }

kl "$work/k.json" >/dev/null 2>&1; vg "$work/v.json"   # warm-up (page cache)
kt=(); vt=()
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 0; i < ROUNDS; i++)); do
  kt+=("$(cpu_log=$work/k.cpu time_it kl "$work/k.json")")
  vt+=("$(cpu_log=$work/v.cpu time_it vg "$work/v.json")")
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$work/k.json" "$work/v.json" <<'PYEOF'
import json, sys
k, v = (json.load(open(p)) for p in sys.argv[1:3])
assert k["digests"] == v["digests"], "digests differ"
print(f"same digests for {len(k['digests'])} paths")
PYEOF
kmed=$(printf '%s\n' "${kt[@]}" | median)
vmed=$(printf '%s\n' "${vt[@]}" | median)
vcpu=$(median <"$work/v.cpu")
kcpu=$(median <"$work/k.cpu")
printf 'vigil runtime-policy create:    median %.3f s, CPU %.3f s (%s rounds: %s)\n' "$vmed" "$vcpu" "$ROUNDS" "${vt[*]}"
printf 'keylime-policy create runtime:  median %.3f s, CPU %.3f s (%s rounds: %s)\n' "$kmed" "$kcpu" "$ROUNDS" "${kt[*]}"
printf 'ratio: %.1fx\n' "$(awk "BEGIN{print $kmed / $vmed}")"
