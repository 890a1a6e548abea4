#!/usr/bin/env bash
# Installs the system tools vigil's tests compare against (the reference implementations)
# and use (FUSE, fio). Idempotent; does nothing for packages already present.
set -euo pipefail
packages=(fsverity ima-evm-utils fuse3 attr openssl xxd libcap2-bin fio)
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

# Keylime's Python package, for the differential tests and benchmarks of `vigil attest`
# and `vigil runtime-policy` (its IMA module imports more than the package declares).
# Installed once into target/keylime-venv; skipped (the tests then say so) without pip.
keylime_venv="$(cd "$(dirname "$0")/.." && pwd)/target/keylime-venv"
if [[ ! -x "$keylime_venv/bin/python" ]] || ! "$keylime_venv/bin/python" -c 'import keylime' 2>/dev/null; then
  if python3 -m venv "$keylime_venv" 2>/dev/null || { rm -rf "$keylime_venv"; false; }; then
    "$keylime_venv/bin/pip" install -q --disable-pip-version-check keylime==7.14.3 jsonschema cryptography \
      lark pyyaml packaging psutil sqlalchemy alembic requests tornado pyasn1 pyasn1-modules \
      jinja2 pyzmq >/dev/null \
      || { echo "install-deps: pip could not install keylime; its differential tests will be skipped" >&2; rm -rf "$keylime_venv"; }
  else
    echo "install-deps: python3 -m venv is unavailable; keylime differential tests will be skipped" >&2
  fi
fi
