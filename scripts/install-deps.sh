#!/usr/bin/env bash
# Installs what sluice needs to build and run on Debian 12 — and with --test, what its test suite
# needs too — and nothing that is already there. Runs as root (or through sudo when it is on the
# machine).
set -euo pipefail

packages=(build-essential cmake pkg-config libevent-dev libhiredis-dev libcurl4-openssl-dev
          libcjson-dev libssl-dev redis-server redis-tools curl wrk valgrind)
if [ "${1:-}" = "--test" ]; then
    # chromium: the dashboard's browser tests; prometheus: promtool checks /metrics; yamllint,
    # podman-compose, python3-yaml, systemd: the deploy files' offline checks
    packages+=(chromium yamllint prometheus podman-compose python3-yaml systemd)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Node 20 ships with the machines; Debian's nodejs (18) is the fallback for a bare machine.
if ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
