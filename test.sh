#!/usr/bin/env bash
# Runs every Herald test: unit tests, and end-to-end tests that start real
# servers and agents over mutual TLS on loopback. The end-to-end tests also
# run the real binaries, so they are built first.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test" >&2
  cargo test --workspace --no-fail-fast "$@"
fi
