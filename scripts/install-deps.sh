#!/usr/bin/env bash
# Installs the system tools vigil's tests compare against (the reference implementations)
# and use (FUSE). Idempotent; does nothing for packages already present.
set -euo pipefail
packages=(fsverity ima-evm-utils fuse3 attr openssl xxd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: please install: ${missing[*]} (needs root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
