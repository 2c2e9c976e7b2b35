#!/usr/bin/env bash
# Installs LeadersBoard into ./.venv, with the system packages it needs (git, redis-server).
#   bash scripts/install.sh          the platform and what submissions run with (anomalib, torch)
#   bash scripts/install.sh --test   also what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[anomalib]"
testing=""
[[ ${1:-} == --test ]] && extras="[anomalib,test]" && testing=1

missing=()
command -v git >/dev/null || missing+=(git)
command -v redis-server >/dev/null || missing+=(redis-server)
# The tests look at the leaderboard pages in a real headless browser.
[[ -n $testing ]] && ! command -v chromium >/dev/null && missing+=(chromium)
# ... and run jobs in containers on a real Docker engine, in an image made with debootstrap.
[[ -n $testing ]] && ! command -v dockerd >/dev/null && missing+=(docker.io)
[[ -n $testing ]] && ! command -v debootstrap >/dev/null && missing+=(debootstrap)
# ... and check the deployment files: compose (Debian's 1.29), the systemd units, the TLS proxy example.
[[ -n $testing ]] && ! command -v docker-compose >/dev/null && missing+=(docker-compose)
[[ -n $testing ]] && ! command -v systemd-analyze >/dev/null && missing+=(systemd)
[[ -n $testing ]] && ! command -v nginx >/dev/null && ! [[ -x /usr/sbin/nginx ]] && missing+=(nginx)
[[ -n $testing ]] && ! command -v openssl >/dev/null && missing+=(openssl)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
echo "LeadersBoard installed in $(pwd)/.venv"
