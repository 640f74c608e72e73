#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Debian packages for real (suite package): built by scripts/build-deb.sh
# and linted (no errors), installed with dpkg into a throw-away Debian 12 root
# (debootstrap, cached as a tarball), and removed and purged again:
#
#   * after dpkg -i: the files where contracts.md section 3 puts them, the
#     tmpfiles entry applied, the groups of vssd.conf made by the postinst, vssd enabled, `man vssadmin` found and every page
#     rendered by man -l without a warning, vssadmin --help from /usr/bin,
#     systemd-analyze verify of every unit, the conffiles in dpkg-query,
#     libvss0's symbols file equal to libvss.so.0's exports, the examples of
#     libvss-dev compiled against the installed headers and pkg-config file,
#     the bash completion working;
#   * the service: vssd started in the root with the unit's capability bounding
#     set and NoNewPrivileges (setpriv), traced by strace: two cow volumes
#     (ext4, XFS) and a btrfs volume owned by another user (0700) with a hook
#     writer for a directory in it, a persistent snapshot set
#     of the three with the writer frozen, the three shadow copies exposed; every system call, socket
#     family and mapping the service and its children made is checked against
#     the unit's SystemCallFilter=, RestrictAddressFamilies=,
#     MemoryDenyWriteExecute= and RestrictNamespaces=;
#   * dpkg -r while a process works in the cow volume: refused, naming the
#     process, the volume still served; dpkg -r again once it is idle: no
#     process, mount or loop device of ours left, no file of the package but
#     its conffiles, the state directory kept; the btrfs volume (not ours)
#     still mounted;
#   * dpkg -i again: vssd serves and mounts the volume again with its data and
#     its shadow copies; dpkg --purge: no conffile, no /var/lib/openvss, no unit
#     enabled, nothing running or mounted.
#
# Needs root, debootstrap (and Debian's mirror the first time: the root is
# cached in $OPENVSS_TEST_CACHE, default /var/cache/openvss-test), loop
# devices, FUSE and btrfs; without root it is skipped (77).
set -u

[[ $(id -u) -eq 0 ]] || { echo "SKIP: the package test needs root (chroot, mounts, loop devices)"; exit 77; }
SRC=${SOURCE_ROOT:?}
BUILD=${BUILD_DIR:?}
CACHE=${OPENVSS_TEST_CACHE:-/var/cache/openvss-test}
MIRROR=${OPENVSS_TEST_MIRROR:-http://deb.debian.org/debian}
for t in dpkg-buildpackage lintian debootstrap strace setpriv losetup mkfs.btrfs python3 cc pkg-config; do
        command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps.sh installs it)"; exit 1; }
done

T=$(mktemp -d /tmp/openvss-pkgtest.XXXXXX)
ROOT=$T/root
LOOPB= SLEEPER= fails=0
PATH_IN=/usr/sbin:/usr/bin:/sbin:/bin

. "$(dirname "$0")/../check.sh"
# A command inside the root, with a clean environment.
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=$PATH_IN LC_ALL=C.UTF-8 HOME=/root "$@"; }
root_id() { stat -L -c %d:%i "$ROOT" 2>/dev/null; }
# Processes whose root directory is $ROOT.
root_pids() {
        local id p
        id=$(root_id) || return 0
        for p in /proc/[0-9]*; do
                [[ "$(stat -L -c %d:%i "$p/root" 2>/dev/null)" == "$id" ]] && echo "${p#/proc/}"
        done
}
# Mount points under $ROOT, deepest first.
mounts_under() { awk -v r="$ROOT/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
# Loop devices whose backing file is under $T.
loops_under() { losetup -l -n -O NAME,BACK-FILE | awk -v t="$T/" 'index($2, t) == 1 { print $1 }'; }

no_root_pids() { [[ -z "$(root_pids)" ]]; }

cleanup() {
        set +e
        [[ -n "$SLEEPER" ]] && kill "$SLEEPER" 2>/dev/null
        # Only processes in our root: vssd, vss-volsrv, the writer (pids, never names).
        for p in $(root_pids); do kill -TERM "$p" 2>/dev/null; done
        wait_until 10 no_root_pids
        for p in $(root_pids); do kill -KILL "$p" 2>/dev/null; done
        wait_until 5 no_root_pids
        for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m"; done
        for l in $(loops_under); do losetup -d "$l"; done
        [[ -n "$LOOPB" ]] && losetup -d "$LOOPB" 2>/dev/null
        if [[ -z "$(mounts_under)" ]]; then
                rm -rf --one-file-system "$T"
        else
                echo "cleanup: mounts left under $ROOT, $T not removed" >&2
        fi
}
trap cleanup EXIT

# ---- build and lint ----
DEB=$BUILD/package-test/deb
if ! "$SRC/scripts/build-deb.sh" "$DEB" >"$T/build-deb.log" 2>&1; then
        cat "$T/build-deb.log"
        fail "scripts/build-deb.sh failed"
        exit 1
fi
version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
debs=("$DEB/openvss_${version}_$arch.deb" "$DEB/libvss0_${version}_$arch.deb" "$DEB/libvss-dev_${version}_$arch.deb")
ok "built ${debs[*]##*/}"
meson_version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$SRC/meson.build" | head -n 1)
[[ "$version" == "$meson_version" ]] && ok "debian/changelog has meson's version $version" ||
        fail "debian/changelog $version, meson.build $meson_version"
if grep -q '^E:' "$DEB/lintian.log"; then
        fail "lintian errors: $(grep '^E:' "$DEB/lintian.log" | tr '\n' ' ')"
else
        ok "lintian: no errors; $(grep -c '^W:' "$DEB/lintian.log") warnings: $(grep '^W:' "$DEB/lintian.log" | sort -u | tr '\n' ' ')"
fi

# ---- a Debian 12 root with the packages' dependencies (cached) ----
deps=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' |
        grep -v -e '^$' -e '^libvss' -e '^openvss' | sort -u | tr '\n' ,)
# openvss's Recommends but fuse3 (vss-volsrv mounts FUSE itself, as root): what the tests use.
include="${deps}btrfs-progs,xfsprogs,man-db,bash-completion,systemd"
key=$(echo "bookworm $MIRROR $include" | sha256sum | cut -c1-16)
tarball=$CACHE/bookworm-minbase-$key.tar
mkdir -p "$CACHE"
(
        flock 9
        if [[ ! -s "$tarball" ]]; then
                echo "debootstrap: bookworm minbase with $include into $tarball (once)"
                if ! debootstrap --variant=minbase --include="$include" bookworm "$T/bootstrap" "$MIRROR" \
                        >"$T/debootstrap.log" 2>&1; then
                        tail -20 "$T/debootstrap.log"
                        exit 1
                fi
                tar -C "$T/bootstrap" -cf "$tarball.new" . && mv "$tarball.new" "$tarball" &&
                        find "$CACHE" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -path "$tarball" -delete
                rm -rf --one-file-system "$T/bootstrap"
        fi
) 9>"$CACHE/.lock" || { fail "debootstrap of a Debian 12 root failed"; exit 1; }
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$tarball" || { fail "cannot unpack $tarball"; exit 1; }
mount -t proc proc "$ROOT/proc" && mount -t sysfs sysfs "$ROOT/sys" && mount -t devtmpfs devtmpfs "$ROOT/dev" &&
        mount -t tmpfs tmpfs "$ROOT/run" || { fail "cannot mount /proc, /sys, /dev, /run in the root"; exit 1; }
ok "a fresh Debian 12 root ($(cat "$ROOT/etc/debian_version")) from $tarball"

# ---- install ----
cp "${debs[@]}" "$ROOT/tmp/"
if in_root dpkg -i "${debs[@]/#$DEB//tmp}" >"$T/dpkg-i.log" 2>&1; then
        ok "dpkg -i openvss libvss0 libvss-dev"
else
        cat "$T/dpkg-i.log"
        fail "dpkg -i"
        exit 1
fi
for f in /usr/sbin/vssd /usr/bin/vssadmin /usr/bin/vshadow /usr/bin/vsswriter /usr/libexec/openvss/vss-volsrv \
         /usr/lib/x86_64-linux-gnu/libvss.so.0 /usr/lib/x86_64-linux-gnu/libvss.so \
         /usr/lib/x86_64-linux-gnu/pkgconfig/libvss.pc /usr/include/vss/writer.h /usr/include/vss/requester.h \
         /etc/openvss/vssd.conf /etc/openvss/writers.d /lib/systemd/system/vssd.service \
         /lib/systemd/system/vsswriter@.service /usr/lib/tmpfiles.d/openvss.conf /usr/lib/sysusers.d/openvss.conf \
         /usr/share/bash-completion/completions/vssadmin /usr/share/bash-completion/completions/vshadow; do
        [[ -e "$ROOT$f" ]] || fail "$f is not installed"
done
ok "binaries, library, headers, pkg-config file, configuration, units, tmpfiles entry, completions installed"
# The postinst makes the groups the shipped vssd.conf names (vssd refuses to start without them): system, empty.
for g in openvss-admin openvss-writer; do
        ent=$(in_root getent group "$g") || { fail "the postinst did not create group $g"; continue; }
        IFS=: read -r _ _ gid members <<<"$ent"
        [[ $gid -lt 1000 && -z $members ]] && ok "group $g: a system group (gid $gid), no members" ||
                fail "group $g: $ent (expected a system group without members)"
done
grep -qx 'admin_group=openvss-admin' "$ROOT/etc/openvss/vssd.conf" &&
        grep -qx 'writer_group=openvss-writer' "$ROOT/etc/openvss/vssd.conf" &&
        ok "the shipped vssd.conf names the two groups" || fail "the shipped vssd.conf does not name openvss-admin/openvss-writer"
[[ -d "$ROOT/run/openvss" && "$(stat -c %a "$ROOT/run/openvss")" == 755 ]] && ok "tmpfiles made /run/openvss 0755" ||
        fail "/run/openvss was not created by the tmpfiles entry"
[[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/vssd.service" ]] && ok "vssd.service enabled" ||
        fail "vssd.service is not enabled"
units=$(cd "$ROOT/lib/systemd/system" && ls vssd.service vsswriter@.service vss-writer-*.service 2>/dev/null)
for u in $units; do
        [[ "$(dpkg-deb -c "${debs[0]}" | grep -c "lib/systemd/system/$u\$")" == 1 ]] || fail "$u is not in openvss"
done
# systemd is not PID 1 here: verify works offline, checking ExecStart binaries and Documentation= pages too.
if out=$(in_root systemd-analyze verify $(for u in $units; do echo "/lib/systemd/system/$u"; done) 2>&1) &&
        [[ -z "$out" ]]; then
        ok "systemd-analyze verify: $(echo $units)"
else
        fail "systemd-analyze verify: $out"
fi

# Man pages: `man NAME` finds each, man -l renders each without a warning.
pages=$(in_root dpkg -L openvss libvss-dev | sed -n 's|^/usr/share/man/\(man[0-9]/.*\.gz\)$|\1|p' | sort)
for p in vssd.8 vssadmin.8 vshadow.8 vsswriter.8 vss-volsrv.8 vssd.conf.5 libvss.3; do
        grep -q "/$p.gz\$" <<<"$pages" || fail "man page $p is not installed"
done
for p in $pages; do
        name=${p#*/}; name=${name%.gz}; sec=${name##*.}; name=${name%.*}
        [[ "$(in_root man -w "$sec" "$name" 2>&1)" == "/usr/share/man/$p" ]] || fail "man $sec $name does not find $p"
        w=$(in_root sh -c "MANWIDTH=80 man --warnings -l /usr/share/man/$p 2>&1 >/dev/null")
        [[ -z "$w" ]] || fail "man -l $p: $w"
done
ok "man finds and renders $(echo "$pages" | wc -w) pages without warnings"
h=$(in_root /usr/bin/vssadmin --help 2>&1) && grep -q "vssadmin list writers" <<<"$h" &&
        ok "vssadmin --help runs from /usr/bin" || fail "vssadmin --help: $h"
c=$(in_root bash -c '. /usr/share/bash-completion/bash_completion; . /usr/share/bash-completion/completions/vssadmin
        COMP_WORDS=(vssadmin li); COMP_CWORD=1; COMP_LINE="vssadmin li"; COMP_POINT=11; _vssadmin; echo "${COMPREPLY[*]}"')
[[ "$c" == list ]] && ok "bash completion: vssadmin li -> list" || fail "bash completion of 'vssadmin li': '$c'"

# Every file the package puts in /etc is a conffile (the writers' configurations too).
conf=$(in_root dpkg-query -W -f='${Conffiles}\n' openvss | awk 'NF { print $1 }' | sort | tr '\n' ' ')
etc=$(in_root dpkg -L openvss | grep '^/etc/' | while read -r f; do [[ -f "$ROOT$f" ]] && echo "$f"; done | sort |
        tr '\n' ' ')
[[ "$conf" == "$etc" && "$conf" == *"/etc/openvss/vssd.conf "* && "$conf" == *"/etc/openvss/writers.d/"* ]] &&
        ok "conffiles: $conf" || fail "conffiles '$conf', files in /etc '$etc'"

symfile=$ROOT/var/lib/dpkg/info/libvss0:$arch.symbols
listed=$(awk '/^ / { print $1 }' "$symfile" | sort)
exported=$(nm -D --defined-only "$ROOT/usr/lib/x86_64-linux-gnu/libvss.so.0" |
        awk '$3 ~ /@@LIBVSS_0$/ { sub(/@@/, "@", $3); print $3 } $2 == "A" { print $3 "@" $3 }' | sort)
if [[ -n "$listed" && "$listed" == "$exported" ]]; then
        ok "libvss0's symbols file lists exactly the $(wc -l <<<"$exported") exported symbols"
else
        fail "symbols file and exports differ: $(diff <(echo "$listed") <(echo "$exported") | grep '^[<>]' | tr '\n' ' ')"
fi
grep -q 'libvss0 (>= ' <<<"$(dpkg-deb -f "${debs[0]}" Depends)" && ok "openvss depends on libvss0 through the symbols file" ||
        fail "openvss does not depend on libvss0: $(dpkg-deb -f "${debs[0]}" Depends)"
for ex in example-writer example-requester; do
        src=$ROOT/usr/share/doc/libvss-dev/examples/$ex.c
        if ! flags=$(PKG_CONFIG_SYSROOT_DIR=$ROOT PKG_CONFIG_LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu/pkgconfig \
                pkg-config --cflags --libs libvss); then
                fail "pkg-config libvss"
        elif cc -Wall -Werror -o "$T/$ex" "$src" $flags 2>"$T/cc.log"; then
                ok "$ex.c builds against the installed libvss-dev"
        else
                fail "$ex.c does not build: $(cat "$T/cc.log")"
        fi
done

# ---- the service, sandboxed as its unit says, traced ----
cp "$ROOT/lib/systemd/system/vssd.service" "$T/vssd.service"     # read again after dpkg -r
unit=$T/vssd.service
bset=-all
for c in $(sed -n 's/^CapabilityBoundingSet=//p' "$unit"); do c=${c#CAP_}; bset+=",+${c,,}"; done
nnp=(); grep -qx 'NoNewPrivileges=yes' "$unit" && nnp=(--no-new-privs)
read -ra execstart <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
strace -f -qq -s 64 -o "$T/trace" chroot "$ROOT" /usr/bin/env -i PATH=$PATH_IN LC_ALL=C.UTF-8 \
        setpriv --bounding-set="$bset" "${nnp[@]}" -- "${execstart[@]}" 2>"$T/vssd.log" &
STRACE=$!
wait_until 30 test -S "$ROOT/run/openvss/vssd.sock" || { cat "$T/vssd.log"; fail "vssd did not start"; exit 1; }
ok "vssd runs with CapabilityBoundingSet=${bset#-all,} ${nnp[*]}"

if out=$(in_root vssadmin create volume /name=data /size=128MB /fs=ext4 /mount=/srv/data 2>&1) &&
        mountpoint -q "$ROOT/srv/data"; then
        ok "cow volume created and mounted at /srv/data"
else
        fail "create volume: $out"
fi
if out=$(in_root vssadmin create volume /name=xdata /size=320MB /fs=xfs /mount=/srv/xdata 2>&1) &&
        mountpoint -q "$ROOT/srv/xdata"; then
        ok "XFS cow volume created and mounted at /srv/xdata"
else
        fail "create volume (xfs): $out"
fi
echo "before the shadow copy" >"$ROOT/srv/data/file"
echo "before the shadow copy" >"$ROOT/srv/xdata/file"
truncate -s 256M "$T/btrfs.img"
LOOPB=$(losetup -f --show "$T/btrfs.img") && mkfs.btrfs -q "$LOOPB" >/dev/null && mkdir -p "$ROOT/srv/b" &&
        mount "$LOOPB" "$ROOT/srv/b" || fail "btrfs test volume"
echo "before the shadow copy" >"$ROOT/srv/b/file"
# Owned by another user, 0700, as a database's volume is: vssd needs CAP_DAC_OVERRIDE to make
# /srv/b/.openvss and resolve the writer's path, CAP_FOWNER to snapshot the subvolume.
mkdir -p "$ROOT/srv/b/data" && chown -R 65534:65534 "$ROOT/srv/b" && chmod 0700 "$ROOT/srv/b" "$ROOT/srv/b/data"
chroot "$ROOT" /usr/bin/env -i PATH=$PATH_IN /usr/bin/vsswriter --name "Package Test Writer" --volume /srv/b/data \
        --on-freeze 'echo "$VSS_SNAPSHOT_SET_ID" >/tmp/frozen' 2>"$T/writer.log" &
wait_until 20 bash -c "chroot '$ROOT' /usr/bin/vssadmin list writers 2>/dev/null | grep -q 'Package Test Writer'" ||
        fail "the writer did not register: $(cat "$T/writer.log")"
if out=$(in_root vshadow -p /srv/data /srv/b /srv/xdata 2>&1); then
        ok "vshadow -p: a persistent set of the two cow volumes and the btrfs volume"
else
        fail "vshadow: $out"
fi
set_id=$(sed -n 's/^Snapshot set: //p' <<<"$out")
[[ -n "$set_id" && "$(cat "$ROOT/tmp/frozen" 2>/dev/null)" == "$set_id" ]] && ok "the writer froze for set $set_id" ||
        fail "the writer's Freeze hook did not run for set '$set_id'"
for v in data b xdata; do echo "after the shadow copy" >"$ROOT/srv/$v/file"; done
for n in 1 2 3; do
        id=$(sed -n "s/^Shadow copy $n: //p" <<<"$out")
        mkdir -p "$ROOT/mnt/snap-$n"
        in_root vssadmin expose shadow "/shadow=$id" "/at=/mnt/snap-$n" >/dev/null 2>&1 &&
                [[ "$(cat "$ROOT/mnt/snap-$n/file" 2>&1)" == "before the shadow copy" ]] ||
                fail "shadow copy $n ($id) not exposed with the old file"
done
ok "the three shadow copies exposed, each with the file as it was"

# ---- dpkg -r: refused while the volume is in use, then done ----
(cd "$ROOT/srv/data" && exec sleep 600) &
SLEEPER=$!
wait_until 5 bash -c "[[ \$(readlink /proc/$SLEEPER/cwd) == '$ROOT/srv/data' ]]"
if out=$(in_root dpkg -r openvss 2>&1); then
        fail "dpkg -r succeeded although /srv/data was in use"
else
        grep -q "cannot remove: /srv/data is in use.*$SLEEPER(sleep)" <<<"$out" &&
                ok "dpkg -r refused: /srv/data is in use by $SLEEPER (sleep), named" || fail "dpkg -r refused, but: $out"
fi
[[ "$(in_root dpkg-query -W -f='${Status}' openvss)" == *" installed" ]] && ok "openvss still installed" ||
        fail "openvss half-removed: $(in_root dpkg-query -W -f='${Status}' openvss)"
[[ "$(cat "$ROOT/srv/data/file" 2>&1)" == "after the shadow copy" ]] && ok "the volume is still served" ||
        fail "the volume is gone after a refused removal"
kill "$SLEEPER"; wait "$SLEEPER" 2>/dev/null; SLEEPER=

# Files and symbolic links (not directories, nor /lib of a merged /usr).
files=$(in_root dpkg -L openvss | while read -r f; do [[ (-f "$ROOT$f" || -L "$ROOT$f") && ! -d "$ROOT$f" ]] && echo "$f"; done)
if out=$(in_root dpkg -r openvss 2>&1); then
        ok "dpkg -r openvss"
else
        fail "dpkg -r: $out"
fi
left_p=$(for p in $(root_pids); do echo "$p($(cat /proc/$p/comm))"; done)
[[ -z "$left_p" ]] && ok "no process left in the root (vssd, vss-volsrv, the writer stopped)" ||
        fail "processes left: $left_p"
# strace ends with the last process it traced (vssd, then the volume server).
wait_until 10 bash -c "! kill -0 $STRACE 2>/dev/null" || fail "strace still running: a traced process is left"
left_m=$(mounts_under | grep -v -x -e "$ROOT/proc" -e "$ROOT/sys" -e "$ROOT/dev" -e "$ROOT/run" -e "$ROOT/srv/b")
[[ -z "$left_m" ]] && ok "no mount left (cow volume, exposures unmounted)" || fail "mounts left: $left_m"
left_l=$(loops_under | grep -v -x "$LOOPB")
[[ -z "$left_l" ]] && ok "no loop device left" || fail "loop devices left: $left_l"
mountpoint -q "$ROOT/srv/b" && ok "the btrfs volume (not ours) is still mounted" || fail "dpkg -r unmounted /srv/b"
left_f=$(for f in $files; do
        [[ " $conf " == *" $f "* ]] && continue
        [[ -e "$ROOT$f" || -L "$ROOT$f" ]] && echo "$f"
done)
[[ -z "$left_f" ]] && ok "no file of openvss left but its conffiles" || fail "files left: $(echo $left_f)"
for f in $conf; do [[ -e "$ROOT$f" ]] || fail "conffile $f removed by dpkg -r"; done
[[ -e "$ROOT/var/lib/openvss/catalog.db" ]] && ok "the state directory stays" || fail "/var/lib/openvss gone after dpkg -r"

# ---- the sandbox against what the service did ----
filter=$(sed -n 's/^SystemCallFilter=//p' "$unit")
families=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit")
in_root systemd-analyze syscall-filter >"$T/groups"
if python3 - "$T/trace" "$T/groups" "$filter" "$families" "$(grep -c '^MemoryDenyWriteExecute=yes' "$unit")" \
        "$(grep -c '^RestrictNamespaces=yes' "$unit")" "${execstart[0]}" <<'PY'
import re, sys
trace, groups_file, filt, fams, mdwe, nons, exe = sys.argv[1:8]
groups, cur = {}, None
for line in open(groups_file):
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line.startswith(" ") and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)
def expand(tok, seen=()):
    if not tok.startswith("@"):
        return {tok}
    out = set()
    for t in groups.get(tok, []):
        if t not in seen:
            out |= expand(t, seen + (tok,))
    return out
if any(t.startswith("~") for t in filt.split()):
    print("the check reads allow lists only: " + filt)
    sys.exit(1)
allowed = set()
for t in filt.split():
    allowed |= expand(t)
# Until the first process execs the service's binary, it is chroot/env/setpriv (not the unit).
first, started, used, bad, families = None, False, {}, {}, set()
call = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
for line in open(trace, errors="replace"):
    m = call.match(line)
    if not m:
        continue
    pid, name = m.group(1), m.group(2)
    if first is None:
        first = pid
    if not started:
        if pid == first and name == "execve" and f'execve("{exe}"' in line and "= 0" in line:
            started = True
        continue
    used.setdefault(name, line.strip())
    if name == "socket":
        fam = re.search(r"socket\((AF_[A-Z0-9]+)", line)
        if fam:
            families.add(fam.group(1))
            if fam.group(1) not in fams.split():
                bad.setdefault(f"socket family {fam.group(1)} not in RestrictAddressFamilies={fams}", line.strip())
    if mdwe == "1" and name in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE" in line and "PROT_EXEC" in line:
        bad.setdefault("a writable and executable mapping (MemoryDenyWriteExecute=yes)", line.strip())
    if nons == "1" and (name in ("unshare", "setns") or (name in ("clone", "clone3") and "CLONE_NEW" in line)):
        bad.setdefault("a namespace (RestrictNamespaces=yes)", line.strip())
if not started:
    print(f"the trace never shows {exe} starting")
    sys.exit(1)
missing = sorted(set(used) - allowed)
for name in missing:
    bad[f"{name} is not in SystemCallFilter={filt}"] = used[name]
for what, example in bad.items():
    print(f"{what}, e.g. {example}")
print(f"{len(used)} distinct system calls used ({len(missing)} outside the filter), "
      f"socket families {' '.join(sorted(families))}")
sys.exit(1 if bad else 0)
PY
then
        ok "every system call, socket family and mapping of vssd and its children is allowed by the unit"
else
        fail "the unit's sandbox would refuse what the service did (above)"
fi

# ---- reinstall: the volume comes back with its data ----
in_root dpkg -i "/tmp/${debs[0]##*/}" >"$T/dpkg-i2.log" 2>&1 || fail "dpkg -i again: $(cat "$T/dpkg-i2.log")"
chroot "$ROOT" /usr/bin/env -i PATH=$PATH_IN /usr/sbin/vssd 2>"$T/vssd2.log" &
if wait_until 60 mountpoint -q "$ROOT/srv/data" && wait_until 60 mountpoint -q "$ROOT/srv/xdata" &&
        [[ "$(cat "$ROOT/srv/data/file" "$ROOT/srv/xdata/file")" == "after the shadow copy"$'\n'"after the shadow copy" ]]; then
        ok "reinstalled: vssd serves and mounts the cow volumes again, data intact"
else
        fail "the cow volume did not come back: $(tail -5 "$T/vssd2.log")"
fi
n=$(in_root vssadmin list shadows 2>&1 | grep -c "Shadow Copy ID")
[[ "$n" == 3 ]] && ok "the three persistent shadow copies still listed" || fail "$n shadow copies listed after reinstall"

# ---- purge ----
if out=$(in_root dpkg --purge openvss libvss-dev libvss0 2>&1); then
        ok "dpkg --purge openvss libvss-dev libvss0"
else
        fail "dpkg --purge: $out"
fi
[[ ! -e "$ROOT/var/lib/openvss" ]] && ok "no /var/lib/openvss" || fail "/var/lib/openvss left by purge"
[[ ! -e "$ROOT/etc/openvss" ]] && ok "no /etc/openvss" || fail "/etc/openvss left: $(ls -R "$ROOT/etc/openvss")"
[[ -z "$(ls "$ROOT"/etc/systemd/system/*/vssd.service 2>/dev/null)" ]] && ok "vssd.service no longer enabled" ||
        fail "vssd.service still enabled"
left_p=$(for p in $(root_pids); do echo "$p($(cat /proc/$p/comm))"; done)
left_m=$(mounts_under | grep -v -x -e "$ROOT/proc" -e "$ROOT/sys" -e "$ROOT/dev" -e "$ROOT/run" -e "$ROOT/srv/b")
[[ -z "$left_p$left_m$(loops_under | grep -v -x "$LOOPB")" ]] && ok "nothing running, mounted or attached after purge" ||
        fail "after purge: processes '$left_p' mounts '$left_m'"
left=$(in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | grep -E ' (openvss|libvss)')
[[ -z "$left" ]] && ok "dpkg knows none of the packages" || fail "dpkg still lists: $left"
for f in /usr/lib/x86_64-linux-gnu/libvss.so.0 /usr/include/vss /usr/share/man/man8/vssadmin.8.gz; do
        [[ ! -e "$ROOT$f" ]] || fail "$f left after purge"
done

echo "$fails failure(s)"
[[ $fails -eq 0 ]]
