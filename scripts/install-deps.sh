#!/usr/bin/env bash
# Installs the Debian 12 packages openvss needs to build, test and run its demo.
# Does nothing when they are all present, so `make test` stays fast on a warm machine.
set -euo pipefail

pkgs=(
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev
        libjansson-dev libsqlite3-dev uuid-dev libinih-dev libbtrfsutil-dev
        fuse3 libcmocka-dev
        btrfs-progs e2fsprogs xfsprogs util-linux kmod python3 sqlite3
        libpq-dev libmariadb-dev postgresql-15 postgresql-client-15 mariadb-server mariadb-client
        scdoc man-db bash-completion
        debhelper dpkg-dev fakeroot lintian debootstrap strace qemu-utils libnbd-bin
        libcurl4-openssl-dev etcd-server etcd-client iproute2 nftables
        samba samba-vfs-modules smbclient
)
[ "${1:-}" = "--bench" ] && pkgs+=(fio nbdkit linux-perf)

missing=()
for p in "${pkgs[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
        exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
