#!/usr/bin/env bash
# A local stand-in for python:3.11-slim-bookworm, for machines that cannot pull images:
# Debian bookworm (minbase) with Python 3.11, pip, venv and the Python headers (Python.h: the
# compiled Avro reader needs them, python:3.11-slim has them), bootstrapped with mmdebstrap from
# the distribution's packages and imported into podman. Cached: the tag carries a hash of this
# script, so it is rebuilt only when the recipe changes. Prints the image name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag="localhost/capi-python-base:$(sha256sum "$0" | cut -c1-12)"
if podman image exists "$tag"; then
    echo "$tag"
    exit 0
fi
for tool in mmdebstrap podman; do
    command -v "$tool" >/dev/null || {
        echo "container/base.sh: $tool is missing (apt-get install podman buildah mmdebstrap runc uidmap)" >&2
        exit 1
    }
done
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The machine's TLS-intercepting proxy CA (if any) goes into the image: pip and apt inside the
# build must verify TLS through it.
mkdir -p "$work/ca"
cp /usr/local/share/ca-certificates/*.crt "$work/ca/" 2>/dev/null || true
echo "bootstrapping $tag (about 90 s)..." >&2
timeout 300 mmdebstrap --variant=minbase --quiet \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --aptopt='Acquire::Retries "3"' \
    --include=python3,python3-pip,python3-venv,python-is-python3,passwd,ca-certificates,libpython3.11-dev \
    --customize-hook="copy-in $work/ca/. /usr/local/share/ca-certificates/" \
    --customize-hook='chroot "$1" update-ca-certificates' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/rootfs.tar" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" >&2
podman import --quiet \
    --change 'CMD ["python3"]' \
    --change 'ENV LANG=C.UTF-8' \
    "$work/rootfs.tar" "$tag" >/dev/null
echo "$tag"
