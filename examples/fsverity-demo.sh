#!/usr/bin/env bash
# The fs-verity tool chain in one minute: build vigil, generate a small sample tree, compute the fs-verity
# digest of every file, sign each digest with a throwaway RSA key (PKCS#7, as the
# kernel's builtin signatures and `fsverity sign` use), verify the signatures back,
# cross-check against fsverity-utils, and show that a modified file is caught.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== building vigil (release)"
cargo build --release -q -p vigil
vigil=$PWD/target/release/vigil

work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/sample
mkdir -p "$tree/etc" "$tree/bin" "$tree/share/doc"
printf 'hello world' >"$tree/etc/motd"
: >"$tree/etc/empty"
seq 1 20000 >"$tree/share/doc/numbers.txt"
head -c 4096 /dev/urandom >"$tree/bin/one-block"
head -c $((6 << 20)) /dev/urandom >"$tree/bin/big.bin"
files=$(find "$tree" -type f | wc -l)
echo "== sample tree: $files files, $(du -sh "$tree" | cut -f1) in $tree"

echo "== fs-verity digests (vigil digest -r, SHA-256, 4 KiB blocks):"
"$vigil" digest -r "$tree" | sed "s|$tree/||; s|^|   |"

echo "== cross-check with fsverity-utils:"
if [[ "$(cd "$tree" && find . -type f | sort | xargs fsverity digest)" == \
      "$(cd "$tree" && find . -type f | sort | xargs "$vigil" digest)" ]]; then
  echo "   all $files digests identical to 'fsverity digest'"
else
  echo "   MISMATCH with fsverity digest" >&2
  exit 1
fi

echo "== throwaway RSA key and certificate (openssl)"
openssl req -x509 -nodes -days 1 -subj "/CN=vigil demo" -newkey rsa:2048 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

echo "== signing every file (vigil sign -> DER PKCS#7 next to it as FILE.sig)"
find "$tree" -type f | sort | while read -r f; do
  "$vigil" sign "$f" "$f.sig" --key "$work/key.pem" --cert "$work/cert.pem" >/dev/null
done
f=$tree/share/doc/numbers.txt
fsverity sign "$f" "$work/ref.sig" --key="$work/key.pem" --cert="$work/cert.pem" >/dev/null
cmp -s "$f.sig" "$work/ref.sig" && echo "   signature of share/doc/numbers.txt is byte-identical to 'fsverity sign'"

echo "== verifying every signature back (vigil verify-sig)"
ok=0
while read -r f; do
  "$vigil" verify-sig "$f" "$f.sig" --cert "$work/cert.pem" >/dev/null && ok=$((ok + 1))
done < <(find "$tree" -type f ! -name '*.sig' | sort)
echo "   $ok of $files signatures valid"

echo "== tampering: appending one byte to etc/motd"
printf '!' >>"$tree/etc/motd"
if "$vigil" verify-sig "$tree/etc/motd" "$tree/etc/motd.sig" --cert "$work/cert.pem" | sed "s|$tree/||; s|^|   |"; then
  echo "   tampering NOT detected" >&2
  exit 1
fi
echo "   tampering detected: the digest no longer matches its signature"
[[ $ok -eq $files ]]
echo "== done"
