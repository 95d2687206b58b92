#!/usr/bin/env bash
# Installs the Debian 12 packages strangler needs to build, test and run the
# demo, when any is missing. Idempotent: does nothing (and needs no network or
# root) when everything is already installed. Run as root; sudo is not assumed.
# Arguments name extra packages to install the same way.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libsqlite3-dev nlohmann-json3-dev libspdlog-dev doctest-dev libcli11-dev
  libcpp-httplib-dev node-llhttp libre2-dev zlib1g-dev libssl-dev
  curl python3
)
# Extra packages a caller needs (scripts/fuzz.sh: clang libclang-rt-14-dev llvm).
PACKAGES+=("$@")

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "deps.sh: run this script as root, or: apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
