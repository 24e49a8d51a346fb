#!/usr/bin/env bash
# Build the lab's base image from Debian packages when no container registry can be reached:
# debootstrap a minimal root filesystem, then `docker import` it. Idempotent: does nothing when
# the image already exists.
#
# Suite: bookworm. Its tshark (4.0.x) is the one measured to decrypt every packet of an aioquic
# connection after a port rebinding and after an address change (see README, "Why bookworm"),
# and its Python 3.11 matches the wheelhouse the Makefile downloads.
set -euo pipefail

IMAGE="${1:?usage: bootstrap.sh IMAGE[:TAG]}"
SUITE="${SUITE:-bookworm}"
PACKAGES_FILE="$(dirname "$0")/packages.txt"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE already present"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    echo "debootstrap is missing: installing it (apt-get install debootstrap)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)"
fi
if [ -z "$mirror" ]; then
    mirror="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

packages="$(grep -v '^#' "$PACKAGES_FILE" | xargs | tr ' ' ',')"
rootfs="$(mktemp -d /tmp/quic-lab-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $SUITE from $mirror (takes about a minute)..."
start=$(date +%s)
DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase --include="$packages" \
    "$SUITE" "$rootfs" "$mirror" 2>&1 | awk '/^I: (Retrieving|Validating|Unpacking|Configuring) / {n++; if (n % 40 == 0) printf "  %s\n", $0; next} {print "  " $0}'
# Keep the image small: package lists and caches are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
echo "importing $IMAGE..."
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    - "$IMAGE" >/dev/null
echo "base image $IMAGE built in $(( $(date +%s) - start )) s"
