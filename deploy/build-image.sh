#!/usr/bin/env bash
# Builds the image the compose files run (default name leadersboard:latest) without any registry, the
# way `leadersboard image build` builds the sandbox image (runner/image.py):
#   1. debootstrap makes a root file system of this machine's release from the apt mirror this
#      machine is configured with (read from its apt sources now, never written anywhere);
#   2. this checkout's own pip collects wheels of LeadersBoard and everything it runs with, through
#      the indexes and caches the platform was installed from;
#   3. pip inside the root file system installs them into /opt/leadersboard, offline;
#   4. `tar | docker import` makes the image.
#
#   sudo bash deploy/build-image.sh [NAME] [--without-anomalib]
#
# Run it from a checkout installed by scripts/install.sh (its .venv), as root, with docker running.
# --without-anomalib leaves torch and anomalib out (a server that runs no worker needs neither).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
name=leadersboard:latest
extras="[anomalib]"
for arg in "$@"; do
    case $arg in
        --without-anomalib) extras="" ;;
        -*) echo "unknown option $arg" >&2; exit 2 ;;
        *) name=$arg ;;
    esac
done
python=$checkout/.venv/bin/python
packages=python3,python3-venv,git,redis-server,docker.io,ca-certificates

[[ $(id -u) == 0 ]] || { echo "building the image needs root (debootstrap, chroot): run it with sudo" >&2; exit 1; }
for tool in debootstrap docker tar chroot; do
    command -v $tool >/dev/null || { echo "$tool is missing: apt-get install ${tool/docker/docker.io}" >&2; exit 1; }
done
[[ -x $python ]] || { echo "no $python: run scripts/install.sh first" >&2; exit 1; }

read -r mirror suite < <("$python" -c 'from leadersboard.runner.image import apt_source
source = apt_source()
print(source.mirror, source.suite)')
work=$(mktemp -d /var/tmp/leadersboard-image.XXXXXX)
root=$work/rootfs
cleanup() {
    for mount in proc sys dev/pts dev; do mountpoint -q "$root/$mount" 2>/dev/null && umount -l "$root/$mount"; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "debootstrap $suite ($packages) from this machine's apt mirror ..."
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; exit 1; }

image_python=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $image_python == "$host_python" ]] ||
    { echo "the image's Python is $image_python, this checkout runs $host_python: wheels would not fit" >&2; exit 1; }

echo "wheels of leadersboard$extras and its dependencies ..."
"$python" -m pip wheel --quiet --wheel-dir "$root/wheels" "$checkout$extras"

echo "install into /opt/leadersboard (offline) ..."
chroot_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PIP_CONFIG_FILE=/dev/null
            PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1)
"${chroot_env[@]}" chroot "$root" python3 -m venv /opt/leadersboard
# The image's Python may differ from this checkout's in its patch level, and a dependency's markers
# with it (redis wants async-timeout below 3.11.3): what the image's pip misses is collected here too.
for _ in 1 2 3 4 5; do
    if "${chroot_env[@]}" chroot "$root" /opt/leadersboard/bin/python -m pip install --quiet --no-index \
            --find-links /wheels "leadersboard$extras" 2>"$work/install.log"; then
        missing=""
        break
    fi
    missing=$(sed -n 's/^ERROR: No matching distribution found for \([^;]*\).*/\1/p' "$work/install.log" | head -1)
    [[ -n $missing ]] || { cat "$work/install.log" >&2; exit 1; }
    echo "  the image's Python also needs $missing"
    "$python" -m pip wheel --quiet --wheel-dir "$root/wheels" "$missing"
done
[[ -z $missing ]] || { cat "$work/install.log" >&2; exit 1; }
"${chroot_env[@]}" chroot "$root" /opt/leadersboard/bin/python -m pip check
rm -rf "$root/wheels" "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
mkdir -p "$root/srv/leadersboard"

echo "docker import $name ..."
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/opt/leadersboard/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV LEADERSBOARD_HOME=/srv/leadersboard' \
    --change 'ENV MLFLOW_DISABLE_TELEMETRY=true' \
    --change 'ENV DO_NOT_TRACK=true' \
    --change 'WORKDIR /srv' \
    --change 'ENTRYPOINT ["leadersboard"]' \
    --message "leadersboard $("$python" -c 'from importlib.metadata import version; print(version("leadersboard"))')" \
    - "$name" >/dev/null
echo "built $name ($(docker image inspect --format '{{.Size}}' "$name" | awk '{printf "%.2f GB", $1/1e9}'))"
