#!/usr/bin/env bash
# Time `vigil digest` against fsverity-utils' `fsverity digest` on the same page-cached
# file, alternating runs, and print the medians and their ratio.
#
#   bench/fsverity-digest.sh [SIZE_MIB (default 1024)] [RUNS (default 7)] [extra digest args...]
#
# The file lives under /var/tmp (a real file system, not tmpfs) and is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-7}
shift $(( $# < 2 ? $# : 2 ))
extra=("$@")

cargo build --release -q -p vigil
vigil=$PWD/target/release/vigil
command -v fsverity >/dev/null || { echo "fsverity not installed (scripts/install-deps.sh)" >&2; exit 1; }

dir=$(mktemp -d /var/tmp/vigil-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
file=$dir/data
head -c "$((size_mib << 20))" /dev/urandom >"$file"
cat "$file" >/dev/null # page-cache it

time_of() { # prints "wall cpu" seconds of "$@" (cpu = user + sys), output discarded
  local TIMEFORMAT='%R %U %S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' <<<"$t"
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m}'; }

# Both must agree before timing means anything.
want=$(fsverity digest --compact "${extra[@]}" "$file")
got=$("$vigil" digest --compact "${extra[@]}" "$file")
[[ $want == "$got" ]] || { echo "digest mismatch: fsverity $want, vigil $got" >&2; exit 1; }

ref_wall=() ref_cpu=() our_wall=() our_cpu=()
for ((i = 0; i < runs; i++)); do
  read -r w c < <(time_of fsverity digest "${extra[@]}" "$file"); ref_wall+=("$w"); ref_cpu+=("$c")
  read -r w c < <(time_of "$vigil" digest "${extra[@]}" "$file"); our_wall+=("$w"); our_cpu+=("$c")
done
med() { printf '%s\n' "$@" | median; }
ref=$(med "${ref_wall[@]}") ours=$(med "${our_wall[@]}")
refc=$(med "${ref_cpu[@]}") oursc=$(med "${our_cpu[@]}")
gbps() { awk -v m="$size_mib" -v t="$1" 'BEGIN { printf "%.2f", m / 1024 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "file: ${size_mib} MiB, page-cached; ${runs} runs each; args: ${extra[*]:-(defaults: sha256, 4096)}; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "fsverity digest: wall median ${ref} s ($(gbps "$ref") GiB/s), cpu median ${refc} s; wall runs: ${ref_wall[*]}"
echo "vigil digest:    wall median ${ours} s ($(gbps "$ours") GiB/s), cpu median ${oursc} s; wall runs: ${our_wall[*]}"
echo "cpu ratio (fsverity / vigil): $(ratio "$refc" "$oursc")x"
echo "ratio (fsverity / vigil, wall): $(ratio "$ref" "$ours")x"
