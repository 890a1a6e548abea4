#!/usr/bin/env bash
# Replay and verify a 1,000,000-record IMA measurement list (the ibmtss Fedora list,
# repeated) with vigil and with evmctl ima_measurement; prints medians of 3 runs,
# records/s, peak RSS, and the ratio. Constant memory: peak RSS must not grow with the
# list (compare with the 100,000-record run). Times are elapsed and CPU (user+sys)
# seconds; on a shared machine the CPU time is the fairer measure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vigil
VIGIL=$PWD/target/release/vigil
SRC=../shared/testdata/ibmtss/sha1.log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_list() { # records → file
  local n=$1 out=$2 per=362 copies
  copies=$(( (n + per - 1) / per ))
  : >"$out"
  for ((i = 0; i < copies; i++)); do cat "$SRC"; done >"$out"
}

evmctl_pcrs() { # "alg PCR-NN: hex" lines → evmctl's PCR-00..PCR-23 file
  local alg=$1 len=$2
  awk -v alg="$alg" -v len="$len" '
    $1 == alg { split($2, a, "-"); sub(":", "", a[2]); v[a[2] + 0] = $3 }
    END { z = sprintf("%0" len "d", 0); for (i = 0; i < 24; i++) printf "PCR-%02d: %s\n", i, (i in v ? v[i] : z) }'
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

run3() { # label, command… → prints "elapsed cpu maxrss_kib" medians
  local label=$1; shift
  local t=() c=() m=()
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
      echo "$label failed: $(cat "$work/err")" >&2; exit 1; }
    read -r s u y k <"$work/time"
    t+=("$s"); c+=("$(awk -v u="$u" -v y="$y" 'BEGIN {print u + y}')"); m+=("$k")
  done
  echo "$(printf '%s\n' "${t[@]}" | median) $(printf '%s\n' "${c[@]}" | median) $(printf '%s\n' "${m[@]}" | median)"
}

for n in 100000 1000000; do
  list=$work/list-$n
  make_list "$n" "$list"
  records=$("$VIGIL" log replay --json --bank sha1 "$list" | jq .records)
  "$VIGIL" log replay --bank sha1,sha256 "$list" >"$work/pcrs"
  evmctl_pcrs sha1 40 <"$work/pcrs" >"$work/p1"
  evmctl_pcrs sha256 64 <"$work/pcrs" >"$work/p256"
  read -r rt rc rm < <(run3 replay "$VIGIL" log replay --bank sha1,sha256 "$list")
  read -r vt vc vm < <(run3 verify "$VIGIL" log verify --pcrs "sha1,$work/p1" --pcrs "sha256,$work/p256" "$list")
  read -r et ec em < <(run3 evmctl evmctl ima_measurement --pcrs "sha1,$work/p1" --pcrs "sha256,$work/p256" "$list")
  echo "== $records records ($(( $(stat -c %s "$list") / 1048576 )) MiB), banks sha1+sha256, load $(cut -d' ' -f1 /proc/loadavg)"
  awk -v n="$records" -v rt="$rt" -v rc="$rc" -v rm="$rm" -v vt="$vt" -v vc="$vc" -v vm="$vm" \
      -v et="$et" -v ec="$ec" -v em="$em" 'BEGIN {
    f = "%-17s %6.2f s elapsed %6.2f s CPU  %9.0f records/s (CPU)  %5.2f us/record  peak RSS %5.1f MiB\n"
    printf f, "vigil log replay", rt, rc, n / rc, rc * 1e6 / n, rm / 1024
    printf f, "vigil log verify", vt, vc, n / vc, vc * 1e6 / n, vm / 1024
    printf f, "evmctl ima_meas.", et, ec, n / ec, ec * 1e6 / n, em / 1024
    printf "verify vs evmctl: %.1fx (elapsed) %.1fx (CPU); vs Keylime (~15 us/record): %.0fx (CPU)\n", et / vt, ec / vc, 15 / (vc * 1e6 / n)
  }'
done
