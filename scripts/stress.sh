#!/usr/bin/env bash
# stress-ng's file system stressors through a vigil mount, in fix mode and then in
# enforce mode (with EVM HMACs), all at once, each with --verify. Then checks what a
# run must leave behind: stress-ng succeeded, the daemon logged nothing unexpected,
# no re-measurement failed, the exported list replays to the exported PCRs, and every
# file left in the tree opens in enforce mode after a remount.
#
#   scripts/stress.sh [SECONDS]        (default 60; needs root and /dev/fuse)
#
# A manual robustness run (minutes), not part of the test command.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
command -v stress-ng >/dev/null || { apt-get install -y -qq stress-ng >/dev/null; }
cargo build --release --locked -q
vigil=$PWD/target/release/vigil

work=$(mktemp -d /var/tmp/vigil-stress.XXXXXX)
cleanup() {
  mountpoint -q "$work/mnt" && "$vigil" umount "$work/mnt" || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/src" "$work/mnt"
head -c 32 /dev/urandom >"$work/evm-key"
# Stressors that need what this machine or a FUSE file system lacks (binderfs, chattr
# flags, fanotify/inotify on FUSE, FIEMAP, I/O priorities) are left out.
exclude=binderfs,chattr,ioprio,fiemap,fanotify,inotify,inode-flags
failed=0
# The daemon holds a descriptor for every file and directory the kernel knows, and
# one for every open handle (read-only handles of a file share one). It has the kernel
# forget unused nodes, but the directory stressors keep more directories in use at
# once than a low hard limit of open files allows (seen with a limit of 20000 in
# two-minute runs), and the open stressor holds as many distinct files open as its own
# limit allows, two descriptors each in the daemon (seen in five-minute runs): under
# such a limit they are kept well below it.
fd_limits=()
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 262144)); then
  n=$((hard / 8))
  fd_limits=(--chdir-dirs "$n" --dir-dirs "$n" --dirdeep-inodes "$n" --open-max "$n")
fi

mount_vigil() { # MODE LOG
  "$vigil" mount --builtin tcb --builtin appraise_tcb --appraise "$1" \
    --evm-hmac-key "$work/evm-key" --state "$work/state" --log "$2" "$work/src" "$work/mnt"
}

check() { # MODE LOG
  local mode=$1 log=$2
  "$vigil" status "$work/mnt" | sed "s/^/  [$mode] /"
  # Expected under this load: queue-full notices, and measurements given up for the
  # stressors killed at the end while their opens waited; anything else is reported.
  local expected=(-e 're-measurement queue full' -e 'measurement given up: the opener has gone')
  if grep -v "${expected[@]}" "$log" | grep -q .; then
    echo "[$mode] unexpected daemon log lines:"
    grep -v "${expected[@]}" "$log" | sort | uniq -c | sort -rn | head -20
    failed=1
  fi
  if ! grep -q '^jobs_failed: 0$' "$work/mnt/.vigil/status"; then
    echo "[$mode] re-measurements failed"; failed=1
  fi
  if ! "$vigil" log verify "$work/mnt/.vigil/binary_runtime_measurements" \
      --pcrs "$work/mnt/.vigil/pcrs" --ignore-violations >/dev/null 2>&1; then
    echo "[$mode] the exported list does not replay to the exported PCRs"; failed=1
  fi
}

for mode in fix enforce; do
  log=$work/daemon-$mode.log
  mount_vigil "$mode" "$log"
  echo "== $mode mode: stress-ng --class filesystem --all 1 -t ${secs}s --verify"
  if ! (cd "$work/mnt" && stress-ng --class filesystem --all 1 -t "$secs" --verify \
        --temp-path "$work/mnt" --exclude "$exclude" "${fd_limits[@]}" \
        >"$work/stress-$mode.out" 2>&1); then
    echo "[$mode] stress-ng failed:"; grep -iE 'fail|error' "$work/stress-$mode.out" | head -20
    failed=1
  fi
  # Leave a tree behind that was created, renamed, linked, chmod-ed and appended to
  # through the mount, for the enforce-mode remount below.
  if [[ $mode == fix ]]; then
    mkdir -p "$work/mnt/kept/moved"
    cp -a /usr/share/doc/bash "$work/mnt/kept/"
    find "$work/mnt/kept/bash" -type f | while read -r f; do
      chmod 600 "$f"; ln "$f" "$f.link"; echo more >>"$f"
      mv "$f.link" "$work/mnt/kept/moved/$(basename "$f").$RANDOM"
    done
  fi
  check "$mode" "$log"
  "$vigil" umount "$work/mnt"
done

mount_vigil enforce "$work/daemon-reopen.log"
refused=$(find "$work/mnt/kept" -type f -exec sh -c 'cat "$1" >/dev/null 2>&1 || echo "$1"' _ {} \; | wc -l)
echo "files left behind refused after the remount: $refused"
[[ $refused -eq 0 ]] || failed=1
"$vigil" umount "$work/mnt"
((failed == 0)) && echo "stress: ok" || { echo "stress: FAILED"; exit 1; }
