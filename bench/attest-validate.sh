#!/usr/bin/env bash
# Validation of a 100,000-entry measurement list against a 100,000-path runtime policy,
# end to end (read policy + list, validate, check PCR 10): vigil attest vs Keylime's
# Python keylime.ima.ima.process_measurement_list, on the same input in one run.
# Prints both medians, vigil's median CPU time and the ratio. Needs Keylime in
# target/keylime-venv (scripts/install-deps.sh creates it).
# On the 2-vCPU test machine, ROUNDS=9, quiet, 10 runs: vigil 0.055-0.071 s wall,
# 0.087-0.114 s CPU; Keylime 1.95-2.62 s in the same runs; ratio 31-45x. Keylime's time
# moves between days (about 1.0 s in the first measurements, 1.76-2.13 s later), so the
# ratio does too. Earlier builds: 0.064-0.074 s (25-29x against a 1.85 s Keylime);
# before the fast digests scanner, arena policy map and prepared parallel list:
# 0.12-0.20 s, 5-8x. VIGIL_ATTEST_TIMING=1 makes vigil print
# when each phase ends.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
ROUNDS=${ROUNDS:-5}
PY=${KEYLIME_PYTHON:-target/keylime-venv/bin/python}
[[ -x $PY ]] || { echo "no Keylime venv at $PY; run scripts/install-deps.sh" >&2; exit 2; }
cargo build --release -q -p vigil
VIGIL=target/release/vigil
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pcr=$("$PY" bench/attest-gen.py "$N" "$work/list" "$work/policy.json")
echo "input: $N entries, $(wc -c <"$work/list") bytes of list, $(wc -c <"$work/policy.json") bytes of policy"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

"$VIGIL" attest --policy "$work/policy.json" --list "$work/list" --pcr "sha1:$pcr" >/dev/null  # warm-up
vt=()
vc=()
TIMEFORMAT='%R %U %S'
for ((i = 0; i < ROUNDS; i++)); do
  t=$( { time "$VIGIL" attest --policy "$work/policy.json" --list "$work/list" --pcr "sha1:$pcr" >/dev/null; } 2>&1 )
  read -r real user sys <<<"$t"
  vt+=("$real")
  vc+=("$(awk "BEGIN{print $user + $sys}")")
done
vmed=$(printf '%s\n' "${vt[@]}" | median)
vcpu=$(printf '%s\n' "${vc[@]}" | median)

kt=$("$PY" crates/cli/tests/attest_keylime.py --bench "$work/policy.json" "$work/list" "$pcr" "$ROUNDS")
kmed=$(echo "$kt" | tr -d '[]' | tr ',' '\n' | median)

printf 'vigil attest:                     median %.4f s (%s rounds), CPU (user+sys) median %.4f s\n' "$vmed" "$ROUNDS" "$vcpu"
printf 'keylime process_measurement_list: median %.4f s (%s rounds)\n' "$kmed" "$ROUNDS"
printf 'ratio: %.1fx\n' "$(awk "BEGIN{print $kmed / $vmed}")"
