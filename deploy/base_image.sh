#!/usr/bin/env bash
# Make the local test base image (no Docker Hub needed): a minimal Debian bookworm rootfs with
# Python 3.11 and pip, trusting this machine's certificate authorities, imported into podman.
# Usage: deploy/base_image.sh [IMAGE]   (default nailseg-base:bookworm; does nothing if it exists)
set -euo pipefail
IMAGE="${1:-nailseg-base:bookworm}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"

if podman image exists "$IMAGE"; then
    echo "base image $IMAGE already present"
    exit 0
fi
# The Debian mirror this machine's apt sources already name.
MIRROR="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
          | grep -oE 'https?://[^ ]+' | grep -E '/debian/?$' | head -n1 || true)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$(mktemp -d /var/tmp/nailseg-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap bookworm from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR"
# HTTPS inside the image build goes through this machine's certificate authorities.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi
chroot "$ROOTFS" update-ca-certificates
# BentoML's Dockerfile pip-installs uv system-wide: allow it.
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin
ln -sf python3 "$ROOTFS/usr/bin/python"

tar -C "$ROOTFS" -c . | podman import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE"
podman image ls "$IMAGE"
