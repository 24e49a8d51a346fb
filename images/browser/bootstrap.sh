#!/usr/bin/env bash
# Build the browser image that renders report.html in the tests: Chromium from Debian's packages,
# nothing from a container registry. The lab's base-image approach (images/base/bootstrap.sh):
# debootstrap a minimal bookworm from the Debian mirror this machine uses, then `docker import`.
# When this machine's sources also list a security mirror, the packages come from bookworm-security
# too (Chromium's fixes land there first).
# Idempotent: does nothing when the image already exists.
#
#   bash images/browser/bootstrap.sh quic-migration-lab-browser:bookworm-<hash of packages.txt>
#
# The image is run with `--network none` (tests/integration/test_report_html.py), so a report that
# tried to load anything from outside would fail to show it.
set -euo pipefail

IMAGE="${1:?usage: bootstrap.sh IMAGE[:TAG]}"
SUITE="${SUITE:-bookworm}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES_FILE="$HERE/packages.txt"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "browser image $IMAGE already present"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    echo "debootstrap is missing: installing it (apt-get install debootstrap)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The mirrors this machine's apt uses (deb822 .sources first, then sources.list), as the base does.
uris="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)"
if [ -z "$uris" ]; then
    uris="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)"
fi
mirror="${DEBIAN_MIRROR:-$(printf '%s\n' "$uris" | grep -v security | head -1 || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-$(printf '%s\n' "$uris" | grep security | head -1 || true)}"

packages="$(grep -v '^#' "$PACKAGES_FILE" | xargs | tr ' ' ',')"
rootfs="$(mktemp -d /tmp/quic-lab-browser-rootfs.XXXXXX)"
cleanup() {
    umount "$rootfs/proc" 2>/dev/null || true
    rm -rf "$rootfs"
}
trap cleanup EXIT

# debootstrap lays a minimal system; apt inside it then installs the packages with their whole
# dependency resolution (debootstrap's own --include resolves too little for a desktop program:
# dconf-service fails to configure).
echo "debootstrap $SUITE (minbase) from $mirror..."
start=$(date +%s)
DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" 2>&1 \
    | awk '/^I: (Retrieving|Validating|Unpacking|Configuring|Extracting) / {next} {print "  " $0}'
{
    echo "deb $mirror $SUITE main"
    echo "deb $mirror $SUITE-updates main"
    if [ -n "$security" ]; then echo "deb $security $SUITE-security main"; fi
} > "$rootfs/etc/apt/sources.list"
echo "apt-get install $packages (inside the new root)..."
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $(echo "$packages" | tr ',' ' ') >/dev/null"
version="$(chroot "$rootfs" chromium --version 2>/dev/null || echo 'chromium (version unknown)')"
umount "$rootfs/proc"
# Keep the image small: package lists, caches, documentation and translations are not needed to
# render a page (Chromium keeps its en-US resources).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
find "$rootfs"/usr/lib/chromium/locales -name '*.pak' ! -name 'en-US.pak' -delete 2>/dev/null || true
echo "importing $IMAGE ($version)..."
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOME=/tmp' \
    --change 'LABEL org.quic-migration-lab=browser' \
    - "$IMAGE" >/dev/null
echo "browser image $IMAGE built in $(( $(date +%s) - start )) s"
