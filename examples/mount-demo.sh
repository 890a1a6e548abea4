#!/usr/bin/env bash
# The verified mount in one minute: build vigil, sign a small sample tree, mount it
# verified (appraisal enforced, reads checked against Merkle trees), run a signed script
# and read a signed file, watch an unsigned program, an unsigned file and a tampered one
# be refused, show the exported measurement list and check it replays to the exported
# PCRs, then unmount.
#
#   examples/mount-demo.sh          (needs root and /dev/fuse; openssl for the demo key)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p vigil
vigil=$PWD/target/release/vigil
demo=$(mktemp -d /var/tmp/vigil-demo.XXXXXX)
trap '"$vigil" umount --lazy "$demo/app" 2>/dev/null || true; rm -rf "$demo"' EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# A sample tree and a signing key.
mkdir -p "$demo/app/bin" "$demo/state"
printf '#!/bin/sh\necho "hello from a verified script"\n' > "$demo/app/bin/hello"
printf '#!/bin/sh\necho "nobody signed this"\n' > "$demo/app/bin/unsigned-tool"
chmod +x "$demo/app/bin/hello" "$demo/app/bin/unsigned-tool"
head -c 300000 /dev/urandom > "$demo/app/data.bin"
echo "an unsigned file" > "$demo/app/unsigned.txt"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=vigil-demo \
  -addext subjectKeyIdentifier=hash -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
cat > "$demo/policy" <<'POLICY'
measure func=FILE_CHECK mask=MAY_READ
measure func=BPRM_CHECK
appraise func=FILE_CHECK appraise_type=imasig
appraise func=BPRM_CHECK appraise_type=imasig
POLICY

say vigil ima sign --xattr-user --key key.pem app/bin/hello app/data.bin
"$vigil" ima sign --xattr-user --key "$demo/key.pem" "$demo/app/bin/hello" "$demo/app/data.bin" >/dev/null

say vigil mount --policy policy --keys cert.pem --xattr user app app
"$vigil" mount --policy "$demo/policy" --keys "$demo/cert.pem" --xattr user \
  --state "$demo/state" --log "$demo/vigil.log" "$demo/app" "$demo/app"

say app/bin/hello
"$demo/app/bin/hello"
say app/bin/unsigned-tool
"$demo/app/bin/unsigned-tool" || true
say sha256sum app/data.bin
sha256sum "$demo/app/data.bin" | cut -c1-64
say cat app/unsigned.txt
cat "$demo/app/unsigned.txt" || true

# Tamper with the signed file behind the mount (through a second view of the disk).
mkdir "$demo/raw"; mount --bind "$demo" "$demo/raw" 2>/dev/null || true
if [[ -f $demo/raw/app/data.bin ]]; then
  say "printf X | dd of=<backing>/data.bin bs=1 seek=5000 conv=notrunc   # behind the mount"
  printf X | dd of="$demo/raw/app/data.bin" bs=1 seek=5000 conv=notrunc status=none
  say cat app/data.bin
  cat "$demo/app/data.bin" > /dev/null || true
  umount "$demo/raw"
fi

say cat app/.vigil/ascii_runtime_measurements
cat "$demo/app/.vigil/ascii_runtime_measurements"
say cat app/.vigil/pcrs
cat "$demo/app/.vigil/pcrs"
say vigil log replay app/.vigil/binary_runtime_measurements
"$vigil" log replay "$demo/app/.vigil/binary_runtime_measurements"
say vigil status app
"$vigil" status "$demo/app"
say tail -n 3 vigil.log
tail -n 3 "$demo/vigil.log"
say vigil umount app
"$vigil" umount "$demo/app"
