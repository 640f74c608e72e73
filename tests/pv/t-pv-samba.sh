#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Previous Versions through a real Samba client: Debian's smbd on 127.0.0.1 (a port in
# 14450..14469) with its own smb.conf, private/lock/state/cache directories and passdb
# user, sharing a btrfs volume (DIR = VOLUME/.snapshots, relative shadow:snapdir) and a
# cow ext4 volume (DIR outside it, absolute shadow:snapdir: the stanza of
# docs/previous-versions.md), both with vfs_shadow_copy2 and published with `vssadmin add
# previousversions`.  Two shadow copies per volume, the file changed between and after:
# `smbclient -c 'allinfo FILE'` lists one @GMT- version per shadow copy, `get` of each
# returns the file as it was in that shadow copy (sha256) while the live file is newer;
# a deleted shadow copy disappears from allinfo and DIR; `delete previousversions`
# removes them all.  smbd is started in its own process group (it signals its whole group
# on exit) and killed, with everything mounted, in the EXIT trap.
set -u
. "$(dirname "$0")/pv-lib.sh"
pv_require
for t in smbd smbclient smbpasswd testparm; do
        command -v $t >/dev/null || { echo "FAIL: $t missing (scripts/install-deps.sh installs samba, smbclient)"; exit 1; }
done
T=$(mktemp -d /tmp/pv-samba.XXXXXX)
chmod 755 "$T"
SMBD=''
smbd_pids() { pgrep -f -- "--configfile=$T/smb.conf"; }
cleanup() {
        local rc=$?
        if [ -n "$SMBD" ]; then
                kill -TERM "$SMBD" 2>/dev/null
                for _ in $(seq 100); do [ -z "$(smbd_pids)" ] && break; sleep 0.1; done
                for p in $(smbd_pids); do kill -KILL "$p"; done
        fi
        (exit $rc)
        pv_cleanup
}
trap cleanup EXIT
pv_setup
B=$T/b C=$T/c CD=$T/cpv

# A free port of ours.
PORT=''
for p in $(seq 14450 14469); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { PORT=$p; break; }
done
[ -n "$PORT" ] || { echo "FAIL: no free port in 14450..14469"; exit 1; }

out=$($A add previousversions /for="$B" 2>&1) || fail "add btrfs: $out"
out=$($A add previousversions /for="$C" /at="$CD" 2>&1) || fail "add cow: $out"
chmod 755 "$B" "$C"
declare -A sum id
for v in b c; do
        for n in 1 2; do
                head -c 100000 /dev/urandom >"$T/$v/doc.bin"
                sum[$v.$n]=$(sha256sum <"$T/$v/doc.bin")
                sync -f "$T/$v"
                id[$v.$n]=$(pv_shadow "$T/$v") || fail "create shadow $n of $v"
        done
        head -c 100000 /dev/urandom >"$T/$v/doc.bin"
        sum[$v.live]=$(sha256sum <"$T/$v/doc.bin")
done

mkdir -p "$T"/{private,lock,state,cache,pid,ncalrpc,log}
share() {       # NAME PATH SNAPDIR [more lines]
        printf '[%s]\n\tpath = %s\n\tread only = yes\n\tvfs objects = shadow_copy2\n\tshadow:snapdir = %s\n' "$1" "$2" "$3"
        printf '\tshadow:format = @GMT-%%Y.%%m.%%d-%%H.%%M.%%S\n\tshadow:sort = desc\n\tshadow:localtime = no\n'
        printf '\tshadow:fixinodes = yes\n'
        shift 3
        printf '\t%s\n' "$@"
}
{
        cat <<CONF
[global]
        netbios name = OPENVSSPV
        workgroup = WORKGROUP
        server role = standalone server
        interfaces = 127.0.0.1
        bind interfaces only = yes
        smb ports = $PORT
        disable netbios = yes
        private dir = $T/private
        lock directory = $T/lock
        state directory = $T/state
        cache directory = $T/cache
        pid directory = $T/pid
        ncalrpc dir = $T/ncalrpc
        log file = $T/log/log.%m
        passdb backend = tdbsam:$T/private/passdb.tdb
        load printers = no
        printing = bsd
        printcap name = /dev/null
        disable spoolss = yes
        map to guest = never
        server min protocol = SMB2_10
CONF
        # btrfs: the volume is the mount point, DIR inside it: the relative snapdir works.
        share b "$B" .snapshots
        # cow: the stanza of docs/previous-versions.md, DIR outside the volume.
        share c "$C" "$CD" "shadow:mountpoint = $C" "shadow:basedir = $C"
} >"$T/smb.conf"
testparm -s "$T/smb.conf" >/dev/null 2>"$T/testparm.err" || { echo "FAIL: testparm: $(cat "$T/testparm.err")"; exit 1; }
printf 'pw1234\npw1234\n' | smbpasswd -c "$T/smb.conf" -s -a nobody >/dev/null || { echo "FAIL: smbpasswd"; exit 1; }
smbd --foreground --debug-stdout --configfile="$T/smb.conf" >"$T/smbd.out" 2>&1 &
SMBD=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "FAIL: smbd does not listen on $PORT"; tail "$T/smbd.out"; exit 1; }
smb() { smbclient "//127.0.0.1/$1" -p "$PORT" -U nobody%pw1234 -m SMB3 -c "$2" 2>&1; }
versions() { smb "$1" 'allinfo doc.bin' | grep -o '^@GMT-[0-9.-]*' | sort; }

for v in b c; do
        dir=$([ $v = b ] && echo "$B/.snapshots" || echo "$CD")
        got=$(versions $v | tr '\n' ' ') want=$(pv_names "$dir" | tr '\n' ' ')
        [ "$(wc -w <<<"$got")" = 2 ] && [ "$got" = "$want" ] && ok "$v: allinfo lists $got" ||
                fail "$v: allinfo lists '$got', DIR has '$want': $(smb $v 'allinfo doc.bin')"
        smb $v 'allinfo doc.bin' | grep '^@GMT-' | sed 's/^/    /'
        n=0
        for name in $want; do
                n=$((n + 1))
                rm -f "$T/got"
                smb $v "get \"$name/doc.bin\" $T/got" >/dev/null
                [ "$(sha256sum <"$T/got" 2>/dev/null)" = "${sum[$v.$n]}" ] &&
                        ok "$v: get $name/doc.bin is the file of shadow copy $n" || fail "$v: get $name/doc.bin"
        done
        rm -f "$T/got"
        smb $v "get doc.bin $T/got" >/dev/null
        [ "$(sha256sum <"$T/got" 2>/dev/null)" = "${sum[$v.live]}" ] && ok "$v: the live file is the newer one" ||
                fail "$v: get doc.bin (live)"
done

# A deleted shadow copy goes from allinfo and DIR.
gone=$(pv_gmt_of "${id[b.1]}") kept=$(pv_gmt_of "${id[b.2]}")
out=$($A delete shadows /shadow="${id[b.1]}" /quiet 2>&1) || fail "delete shadow: $out"
[ "$(versions b | tr '\n' ' ')" = "$kept " ] && [ ! -e "$B/.snapshots/$gone" ] &&
        ok "b: deleted shadow copy $gone gone from allinfo and DIR" || fail "b: after delete: $(versions b)"

# delete previousversions: no @GMT- version left for the client, nothing mounted.
for v in b c; do
        out=$($A delete previousversions /for="$T/$v" 2>&1) || fail "delete previousversions $v: $out"
        [ -z "$(versions $v)" ] && ok "$v: no previous versions after delete previousversions" ||
                fail "$v: still listed: $(versions $v)"
done
grep -qE " ($B/.snapshots|$CD)" /proc/self/mounts && fail "mounts left: $(grep -E " ($B/.snapshots|$CD)" /proc/self/mounts)"
[ $fails = 0 ] || { echo "$fails check(s) failed"; tail -n 20 "$T/vssd.log"; tail -n 20 "$T/smbd.out"; exit 1; }
