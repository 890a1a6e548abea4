#!/usr/bin/env bash
# Sequential read of a 1 GiB file natively, through bindfs (unverified FUSE passthrough,
# the reference) and through `vigil mount` (verified), cold and warm, plus the cost of
# open+close of an unchanged file. Prints medians and ratios. Drops the whole page cache
# before each cold run, so run it on a machine with nothing else to lose.
#
#   bench/mount-read.sh [SIZE_MIB] [RUNS]        (needs root, /dev/fuse)
set -euo pipefail
size_mib=${1:-1024}
runs=${2:-5}
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then echo "mount-read: needs root" >&2; exit 2; fi
if ! command -v bindfs >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bindfs >/dev/null
fi
cargo build --release -q -p vigil
vigil=$PWD/target/release/vigil

work=$(mktemp -d /var/tmp/vigil-bench.XXXXXX)
src=$work/src; mnt_b=$work/bindfs; mnt_v=$work/vigil
mkdir -p "$src" "$mnt_b" "$mnt_v"
cleanup() {
  fusermount3 -u "$mnt_b" 2>/dev/null || umount -l "$mnt_b" 2>/dev/null || true
  "$vigil" umount "$mnt_v" 2>/dev/null || umount -l "$mnt_v" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

head -c $((size_mib << 20)) /dev/urandom > "$src/big"
for i in $(seq 1 200); do echo "small $i" > "$src/small$i"; done
sync

bindfs --multithreaded -o kernel_cache "$src" "$mnt_b"
# Verified: every read-open is measured (content hash + fs-verity tree) and every read
# checked against the tree.
echo "measure func=FILE_CHECK mask=MAY_READ" > "$work/policy"
"$vigil" mount --policy "$work/policy" --state "$work/state" "$src" "$mnt_v"

# Cold runs start from an empty page cache (the whole system's, so no contender pays
# for reclaiming another's pages). Prints MB/s and the CPU time (all cores, user +
# system, in ms) the read cost the whole machine.
#
# After the drop, memory three times the file's size (at most half of what is free) is
# touched and freed again: on a VM whose balloon reports free pages to the host
# (virtio-balloon free page reporting), the host discards reported pages and the first
# touch of each costs a host fault, charged to whichever read allocates it. That made
# cold reads, native ones included, swing by 2x from run to run; re-touched pages are
# reused before they are reported again, so every contender allocates the same kind.
drop_all() {
  sync; echo 3 > /proc/sys/vm/drop_caches
  python3 - "$size_mib" <<'PY'
import sys
avail = next(int(l.split()[1]) << 10 for l in open("/proc/meminfo") if l.startswith("MemAvailable:"))
n = min(3 * int(sys.argv[1]) << 20, avail // 2)
b = bytearray(n)
b[::4096] = b"\1" * len(range(0, n, 4096))
PY
}
busy_ms() { awk '/^cpu /{print ($2+$3+$4+$7+$8) * 10}' /proc/stat; }
# Time the hypervisor ran something else on this VM's CPUs. A CPU-bound read (vigil's
# hashes) slows down by about that much, a read that waits on round trips (bindfs's)
# hardly at all, so cold ratios are also given over the runs without steal.
steal_ms() { awk '/^cpu /{print $9 * 10}' /proc/stat; }
rate() {
  local t0 t1
  t0=$(date +%s%N)
  dd if="$1" of=/dev/null bs=1M status=none
  t1=$(date +%s%N)
  echo $(( (size_mib * 1048576) / ((t1 - t0) / 1000) ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The first open of the big file measures it (reads and hashes 1 GiB, builds the tree);
# later opens find the published measurement still valid.
drop_all
t0=$(date +%s%N); python3 -c "import os; os.close(os.open('$mnt_v/big', os.O_RDONLY))"; t1=$(date +%s%N)
measure_ms=$(( (t1 - t0) / 1000000 ))

# Per run: one cold read, then three re-reads from the page cache. The first re-read
# is reported apart: it moves every page to the active LRU list, which costs most
# where pages are small (FUSE caches 4 KiB pages; ext4 large folios). The contenders
# take turns within each run, so a slow phase of the host hits them alike.
declare -A cold cpu steal first warm
for r in $(seq 1 "$runs"); do
  for name in native bindfs vigil; do
    case $name in native) f=$src/big;; bindfs) f=$mnt_b/big;; vigil) f=$mnt_v/big;; esac
    drop_all
    b0=$(busy_ms); s0=$(steal_ms); cold[$name]+="$(rate "$f") "; b1=$(busy_ms); s1=$(steal_ms)
    cpu[$name]+="$(( (b1 - b0) * 1024 / size_mib )) "
    steal[$name]+="$(( s1 - s0 )) "
    first[$name]+="$(rate "$f") "
    warm[$name]+="$(rate "$f") $(rate "$f") "
  done
done
echo "cold MB/s per run (native, bindfs, vigil):"
paste -d' ' <(tr ' ' '\n' <<<"${cold[native]}") <(tr ' ' '\n' <<<"${cold[bindfs]}") \
  <(tr ' ' '\n' <<<"${cold[vigil]}") | awk 'NF == 3 {printf "  %s %s %s\n", $1, $2, $3}'
# The host's speed drifts between runs, and the contenders take turns within each, so
# the median of the per-run ratios is steadier than the ratio of the medians.
lines() { tr ' ' '\n' <<<"$1" | grep .; }
per_run_ratio() { paste -d' ' <(lines "$1") <(lines "$2") | awk '{printf "%.3f\n", $1 / $2}' | median; }
cold_runs=$(per_run_ratio "${cold[vigil]}" "${cold[bindfs]}")
# The same over the runs where neither bindfs's nor vigil's cold read saw steal.
cold_calm=$(paste -d' ' <(lines "${cold[vigil]}") <(lines "${cold[bindfs]}") \
  <(lines "${steal[vigil]}") <(lines "${steal[bindfs]}") |
  awk '$3 == 0 && $4 == 0 {printf "%.3f\n", $1 / $2}')
calm_runs=$(grep -c . <<<"$cold_calm" || true)
warm_runs=$(per_run_ratio "${warm[vigil]}" "${warm[native]}")
for name in native bindfs vigil; do
  for m in cold cpu steal first warm; do
    declare -n a=$m
    a[$name]=$(lines "${a[$name]}" | median)
    unset -n a
  done
done

# open+close of unchanged small files: 200 files × 20 rounds, median round in µs/open.
openclose() {
  python3 - "$1" <<'PY'
import os, sys, time
d = sys.argv[1]
names = [os.path.join(d, f"small{i}") for i in range(1, 201)]
for n in names: os.close(os.open(n, os.O_RDONLY))
rounds = []
for _ in range(20):
    t = time.perf_counter_ns()
    for n in names: os.close(os.open(n, os.O_RDONLY))
    rounds.append((time.perf_counter_ns() - t) / len(names) / 1000)
rounds.sort(); print(f"{rounds[len(rounds)//2]:.1f}")
PY
}
# The folios that hold each file's cached data (from /proc/kpageflags, after the runs):
# a re-read's cost per page-cache entry is the same, so their size sets the warm ratio.
folios() {
  python3 - "$1" <<'PY'
import mmap, os, struct, sys
path = os.path.realpath(sys.argv[1])
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
sum(m[i] for i in range(0, size, 4096))  # map every page
lo = next(int(l.split("-")[0], 16) for l in open("/proc/self/maps") if l.rstrip().endswith(" " + path))
pm, kf = open("/proc/self/pagemap", "rb"), open("/proc/kpageflags", "rb")
sizes, run = [], 0
for i in range(size // 4096):
    pm.seek(((lo >> 12) + i) * 8)
    entry = struct.unpack("Q", pm.read(8))[0]
    kf.seek((entry & ((1 << 55) - 1)) * 8)
    flags = struct.unpack("Q", kf.read(8))[0]
    if not flags >> 16 & 1:  # not a compound tail: a new folio starts here
        if run: sizes.append(run)
        run = 0
    run += 1
sizes.append(run)
big = sum(s for s in sizes if s >= 16) * 100 // sum(sizes)
print(f"{len(sizes)} folios, largest {max(sizes) * 4} KiB, {big}% of the data in folios of 64 KiB or more")
PY
}
folios_native=$(folios "$src/big"); folios_b=$(folios "$mnt_b/big"); folios_v=$(folios "$mnt_v/big")

oc_native=$(openclose "$src"); oc_b=$(openclose "$mnt_b"); oc_v=$(openclose "$mnt_v")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-34s %10s %10s %10s\n' "sequential read (dd bs=1M)" native bindfs vigil
printf '%-34s %10s %10s %10s\n' "cold, MB/s" "${cold[native]}" "${cold[bindfs]}" "${cold[vigil]}"
printf '%-34s %10s %10s %10s\n' "cold, CPU ms per GiB (all cores)" "${cpu[native]}" "${cpu[bindfs]}" "${cpu[vigil]}"
printf '%-34s %10s %10s %10s\n' "cold, host steal ms (all cores)" "${steal[native]}" "${steal[bindfs]}" "${steal[vigil]}"
printf '%-34s %10s %10s %10s\n' "warm, first re-read, MB/s" "${first[native]}" "${first[bindfs]}" "${first[vigil]}"
printf '%-34s %10s %10s %10s\n' "warm, later re-reads, MB/s" "${warm[native]}" "${warm[bindfs]}" "${warm[vigil]}"
printf '%-34s %10s %10s %10s\n' "open+close, µs" "$oc_native" "$oc_b" "$oc_v"
echo "page cache of the file, native: $folios_native"
echo "                         bindfs: $folios_b"
echo "                         vigil:  $folios_v"
echo "first open of the ${size_mib} MiB file through vigil (measure + tree): ${measure_ms} ms"
echo "vigil cold / bindfs cold:              $(ratio "${cold[vigil]}" "${cold[bindfs]}")  (target ≥ 1.0; median per-run ratio $(printf %.2f "$cold_runs"))"
if [[ $calm_runs -gt 0 ]]; then
  echo "vigil cold / bindfs cold, no steal:    $(printf %.2f "$(median <<<"$cold_calm")")  (median of $calm_runs of $runs runs)"
else
  echo "vigil cold / bindfs cold, no steal:    –  (every run saw steal)"
fi
echo "vigil warm / native warm (later):      $(ratio "${warm[vigil]}" "${warm[native]}")  (target ≥ 0.70; median per-run ratio $(printf %.2f "$warm_runs"))"
echo "vigil warm / native warm (first):      $(ratio "${first[vigil]}" "${first[native]}")"
echo "bindfs warm / native warm (later):     $(ratio "${warm[bindfs]}" "${warm[native]}")"
echo "vigil open+close / bindfs:             $(ratio "$oc_v" "$oc_b")  (target ≤ 1.5)"
