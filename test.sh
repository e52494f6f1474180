#!/usr/bin/env bash
# Runs every Herald test: unit tests, and end-to-end tests that start real
# servers and agents over mutual TLS on loopback. The end-to-end tests also
# run the real binaries, so they are built first.
set -euo pipefail
cd "$(dirname "$0")"

# System packages the tests use for real: a D-Bus session bus, an X server
# and screenshots for the popup, fonts that cover CJK and Arabic script, and
# Mesa's software renderers for egui snapshots.
PACKAGES=(dbus-daemon xvfb xauth imagemagick fonts-dejavu-core fonts-noto-cjk fonts-noto-core
  fonts-farsiweb mesa-vulkan-drivers libvulkan1 libgl1-mesa-dri libegl1 libegl-mesa0
  libxkbcommon-x11-0 libfontconfig1)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test dependencies: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test" >&2
  cargo test --workspace --no-fail-fast "$@"
fi
