#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Spike for issue 14 item 3 (Previous Versions through Samba), run by hand as root:
#   tests/package/smbd-spike.sh
# A private smbd (Debian's samba, samba-vfs-modules, smbclient) on 127.0.0.1:$PORT
# with its own smb.conf, private/lock/state/cache/pid directories and passdb,
# serving a btrfs loop volume whose read-only snapshots appear, the way vssd
# would publish shadow copies, as .snapshots/@GMT-YYYY.MM.DD-HH.MM.SS: one a
# snapshot made there, one a read-only bind mount of VOLUME/.openvss/{ID}.
# Checks that smbclient's allinfo lists both versions and that get of
# "@GMT-.../doc.txt" returns each version while the live file has changed.
# Not registered with meson: it tests the recipe, not openvss (yet).
#
# smbd must get its own process group (no --no-process-group): on exit it
# signals its whole group, which would take this script down with it.
set -u
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in smbd smbclient smbpasswd testparm mkfs.btrfs; do
        command -v $t >/dev/null || { echo "FAIL: $t missing (apt-get install samba samba-vfs-modules smbclient)"; exit 1; }
done
D=$(mktemp -d /tmp/openvss-smbd.XXXXXX)
PORT=${PORT:-14450} LOOP='' SMBD='' fails=0
SNAP='{11111111-1111-1111-1111-111111111111}'
# smbd forks one child per connection (and helpers); they all carry our --configfile.
smbd_pids() { pgrep -f -- "--configfile=$D/smb.conf"; }
cleanup() {
        [ -n "$SMBD" ] && kill -TERM "$SMBD" 2>/dev/null
        for _ in $(seq 100); do [ -z "$(smbd_pids)" ] && break; sleep 0.1; done
        for p in $(smbd_pids); do kill -KILL "$p"; done
        for m in $(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do umount "$m"; done
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        if awk -v d="$D/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
                echo "cleanup: mounts left under $D" >&2
        else
                rm -rf --one-file-system "$D"
        fi
}
trap cleanup EXIT
chmod 755 $D
truncate -s 256M $D/vol.img; LOOP=$(losetup -f --show $D/vol.img); mkfs.btrfs -q $LOOP >/dev/null; mkdir $D/vol; mount $LOOP $D/vol
mkdir -p $D/vol/.openvss $D/vol/.snapshots
echo v1 > $D/vol/doc.txt; chmod -R a+rX $D/vol
# Two ways vssd could publish: (a) the snapshot itself named @GMT-..., (b) a bind mount of .openvss/{id} at @GMT-...
btrfs -q subvolume snapshot -r $D/vol "$D/vol/.openvss/$SNAP" >/dev/null
mkdir $D/vol/.snapshots/@GMT-2026.12.01-10.00.00
mount --bind "$D/vol/.openvss/$SNAP" $D/vol/.snapshots/@GMT-2026.12.01-10.00.00
mount -o remount,bind,ro $D/vol/.snapshots/@GMT-2026.12.01-10.00.00
echo v2 > $D/vol/doc.txt
btrfs -q subvolume snapshot -r $D/vol $D/vol/.snapshots/@GMT-2026.12.01-11.00.00 >/dev/null
echo v3 > $D/vol/doc.txt

mkdir -p $D/private $D/lock $D/state $D/cache $D/pid $D/ncalrpc $D/log
cat > $D/smb.conf <<CONF
[global]
        netbios name = OPENVSSTEST
        workgroup = WORKGROUP
        server role = standalone server
        interfaces = 127.0.0.1
        bind interfaces only = yes
        smb ports = $PORT
        disable netbios = yes
        private dir = $D/private
        lock directory = $D/lock
        state directory = $D/state
        cache directory = $D/cache
        pid directory = $D/pid
        ncalrpc dir = $D/ncalrpc
        log file = $D/log/log.%m
        passdb backend = tdbsam:$D/private/passdb.tdb
        load printers = no
        printing = bsd
        printcap name = /dev/null
        disable spoolss = yes
        map to guest = never
        server min protocol = SMB2_10

[vol]
        path = $D/vol
        read only = yes
        vfs objects = shadow_copy2
        shadow:snapdir = .snapshots
        shadow:basedir = $D/vol
        shadow:format = @GMT-%Y.%m.%d-%H.%M.%S
        shadow:sort = desc
        shadow:localtime = no
        shadow:fixinodes = yes
CONF
testparm -s $D/smb.conf >/dev/null 2>$D/testparm.err || cat $D/testparm.err
printf 'pw1234\npw1234\n' | smbpasswd -c $D/smb.conf -s -a nobody >/dev/null
smbd --foreground --debug-stdout --configfile=$D/smb.conf >$D/smbd.out 2>&1 &
SMBD=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
smb() { smbclient //127.0.0.1/vol -p $PORT -U nobody%pw1234 -m SMB3 -c "$1" 2>&1; }
versions=$(smb 'allinfo doc.txt' | grep '^@GMT-' | tr '\n' ' ')
[ "$versions" = "@GMT-2026.12.01-11.00.00 @GMT-2026.12.01-10.00.00 " ] && echo "ok: allinfo lists $versions" ||
        { echo "FAIL: allinfo: $(smb 'allinfo doc.txt')"; fails=$((fails + 1)); }
for v in "@GMT-2026.12.01-10.00.00 v1" "@GMT-2026.12.01-11.00.00 v2" ". v3"; do
        set -- $v
        rm -f $D/got
        smb "get \"$1/doc.txt\" $D/got" >/dev/null
        [ "$(cat $D/got 2>&1)" = "$2" ] && echo "ok: get $1/doc.txt = $2" ||
                { echo "FAIL: get $1/doc.txt: $(cat $D/got 2>&1)"; fails=$((fails + 1)); }
done
[ $fails -eq 0 ]
