#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# (issue 13, item 2) Existing images and devices as cow volumes: an ext4 and an XFS image
# and a loop device holding ext4, each with data, adopted as they are by `vssadmin create
# volume` without /fs (no mkfs: every file's checksum is unchanged), shadowed, written,
# and given back by `delete volume` with all their data (the shadow copy holds the old
# data, the origin the new).  An /image= that does not exist is created with /size and
# formatted.  Refusals with their HRESULT and reason: a size mismatch, a mounted device,
# an image attached to a loop device, an image another cow volume serves, /fs on
# something that already holds a filesystem, a missing device, a new image without /size.
source "$(dirname "$0")/../blackbox/lib.sh"
[[ -x "${VSS_VOLSRV:-}" ]] || bb_fail "VSS_VOLSRV=${VSS_VOLSRV:-} is not built"
export VSS_VOLSRV
bb_init
for t in blkid mkfs.ext4 mkfs.xfs e2fsck xfs_repair sha256sum; do
        command -v "$t" >/dev/null || bb_fail "$t is missing; scripts/install-deps.sh installs it"
done

VOLUMES=()
# Before bb_cleanup kills vssd: delete what it serves, so that no volume server, loop
# device or FUSE mount of ours outlives the test; then any volume server still running.
adopt_cleanup()
{
        local n p
        set +e
        if bb_vssd_alive; then
                "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
                for n in "${VOLUMES[@]}"; do
                        [[ -n $n ]] && "$VSSADMIN" delete volume "/name=$n" >/dev/null 2>&1
                done
        fi
        for p in "$T"/state/volumes/*/run/volsrv.pid; do
                [[ -f $p ]] && kill -TERM "$(cat "$p")" 2>/dev/null
        done
        return 0
}
trap 'rc=$?; adopt_cleanup; (exit $rc); bb_cleanup' EXIT

bb_start_vssd

# sums DIR: the checksum of every file under DIR, relative names, sorted.
sums()
{
        (cd "$1" && find . -type f ! -path './lost+found/*' -print0 | sort -z | xargs -0 sha256sum)
}

# fill DIR: files and directories of random content.
fill()
{
        local d=$1 i
        mkdir -p "$d/a/b" "$d/c"
        for i in $(seq 12); do head -c $((RANDOM * 4 + 1)) /dev/urandom >"$d/a/f$i"; done
        head -c 3000000 /dev/urandom >"$d/a/b/big"
        echo "hello $RANDOM" >"$d/c/small"
}

# with_loop IMG|DEV MOUNTPOINT CMD...: CMD with the filesystem mounted (IMG on a loop device).
with_mounted()
{
        local src=$1 m=$2 dev
        shift 2
        mkdir -p "$m"
        if [[ -b $src ]]; then
                mount "$src" "$m"
        else
                dev=$(losetup -f --show "$src")
                BB_LOOPS+=("$dev")
                mount "$dev" "$m"
        fi
        "$@"
        umount "$m"
        [[ -n ${dev:-} ]] && losetup -d "$dev"
        return 0
}

create()
{
        # create NAME ARGS...: vssadmin create volume /name=NAME ARGS (in $OUT/$RC)
        local n=$1
        shift
        bb_run "$VSSADMIN" create volume "/name=$n" "$@"
        [[ $RC -eq 0 ]] && VOLUMES+=("$n")
        return 0
}

# adopt_roundtrip WHAT ORIGIN FS VOLNAME [/size=...]: ORIGIN holds FS with files; adopt,
# check, shadow, write, check the shadow, delete, check ORIGIN has the new data.
adopt_roundtrip()
{
        local what=$1 origin=$2 fs=$3 name=$4 opt=$5 m=$T/vols/$4 before after shadow x
        shift 5
        with_mounted "$origin" "$T/prep" fill "$T/prep"
        with_mounted "$origin" "$T/prep" sums "$T/prep" >"$T/$name.before"
        before=$(wc -l <"$T/$name.before")
        [[ $before -ge 14 ]] || bb_fail "$what: only $before files written"

        create "$name" "$opt=$origin" "/mount=$m" "$@"
        bb_assert_rc 0 "$what: adopted"
        bb_assert_contains "$OUT" "Successfully adopted '$origin' as volume '$name' ($fs filesystem kept)" "$what: adopted"
        findmnt -n -o FSTYPE "$m" | grep -qx "$fs" || bb_fail "$what: $m is not a mounted $fs"
        findmnt -n -o SOURCE "$m" | grep -q '^/dev/loop' || bb_fail "$what: $m is not served through a loop device"
        sums "$m" | diff - "$T/$name.before" >/dev/null || bb_fail "$what: the adopted files differ from the originals"
        echo "ok: $what: $before files adopted unchanged (no mkfs)"

        # Served already: the same origin cannot be a second volume.
        create "${name}dup" "$opt=$origin"
        bb_assert_hresult 0x8004230D VSS_E_OBJECT_ALREADY_EXISTS "$what: a second volume of the same origin"
        bb_assert_contains "$OUT" "is already served by openvss as cow volume $name" "$what: names the volume serving it"

        bb_run "$VSHADOW" -p -nw "$m"
        bb_assert_rc 0 "$what: vshadow -p -nw"
        shadow=$(grep -oE "$bb_guid_re" <<<"$OUT" | sed -n 2p)
        # New data after the shadow copy: overwrite, append, remove, add.
        head -c 200000 /dev/urandom >"$m/a/f1"
        head -c 5000 /dev/urandom >>"$m/a/b/big"
        rm "$m/a/f2"
        echo new >"$m/c/new"
        sync -f "$m"
        sums "$m" >"$T/$name.after"
        mkdir -p "$T/x-$name"
        bb_run "$VSSADMIN" expose shadow "/shadow=$shadow" "/at=$T/x-$name"
        bb_assert_rc 0 "$what: expose the shadow copy"
        sums "$T/x-$name" | diff - "$T/$name.before" >/dev/null ||
                bb_fail "$what: the shadow copy differs from the data at its creation"
        bb_run "$VSSADMIN" unexpose shadow "/shadow=$shadow"
        bb_assert_rc 0 "$what: unexpose"
        echo "ok: $what: the shadow copy of the adopted volume holds the data at its creation"

        bb_run "$VSSADMIN" delete volume "/name=$name"
        bb_assert_failed "$what: delete volume with a shadow copy"
        bb_run "$VSSADMIN" delete shadows "/for=$m" /all /quiet
        bb_assert_rc 0 "$what: delete shadows"
        bb_run "$VSSADMIN" delete volume "/name=$name"
        bb_assert_rc 0 "$what: delete volume"
        VOLUMES=("${VOLUMES[@]/$name/}")
        ! mountpoint -q "$m" || bb_fail "$what: still mounted after delete volume"
        [[ -e $origin ]] || bb_fail "$what: delete volume removed $origin"

        # Given back: a clean filesystem with the last writes.
        if [[ $fs == ext4 ]]; then
                bb_run e2fsck -fn "$origin"
        else
                bb_run xfs_repair -n "$origin"
        fi
        bb_assert_rc 0 "$what: the filesystem given back is clean"
        with_mounted "$origin" "$T/prep" sums "$T/prep" >"$T/$name.back"
        diff "$T/$name.back" "$T/$name.after" >/dev/null || bb_fail "$what: the data given back is not the last data"
        after=$(wc -l <"$T/$name.after")
        echo "ok: $what: delete volume gave $origin back clean with all $after files as last written"
}

# ---- images ---------------------------------------------------------------------------
for fs in ext4 xfs; do
        img=$T/$fs.img
        truncate -s 320M "$img"
        if [[ $fs == ext4 ]]; then mkfs.ext4 -q -F "$img"; else mkfs.xfs -q -f "$img"; fi

        create "bad$fs" "/image=$img" /size=256MB
        bb_assert_hresult 0x80070057 E_INVALIDARG "$fs image: /size that does not match"
        bb_assert_contains "$OUT" "size mismatch: /size is 268435456 bytes but image $img holds 335544320 bytes" \
                "$fs image: the size mismatch named"
        create "bad$fs" "/image=$img" "/fs=$fs"
        bb_assert_hresult 0x8004230D VSS_E_OBJECT_ALREADY_EXISTS "$fs image: /fs on an image holding a filesystem"
        bb_assert_contains "$OUT" "image $img already holds a filesystem ($fs): leave /fs out to adopt it" \
                "$fs image: the filesystem found named"
        if [[ $fs == xfs ]]; then
                # An exact /size is accepted.
                adopt_roundtrip "$fs image" "$img" "$fs" "ad$fs" /image /size=320MB
        else
                adopt_roundtrip "$fs image" "$img" "$fs" "ad$fs" /image
        fi
done

# An image on a loop device (mounted) is in use.
img=$T/ext4.img
dev=$(losetup -f --show "$img")
BB_LOOPS+=("$dev")
mkdir -p "$T/busy"
mount "$dev" "$T/busy"
create busy "/image=$img"
bb_assert_hresult 0x8004231D VSS_E_VOLUME_IN_USE "an image attached to a loop device"
bb_assert_contains "$OUT" "image $img is attached to $dev, mounted on $T/busy" "the loop device and mount named"
umount "$T/busy"
losetup -d "$dev"

# ---- a block device -------------------------------------------------------------------
truncate -s 320M "$T/dev.img"
dev=$(losetup -f --show "$T/dev.img")
BB_LOOPS+=("$dev")
mkfs.ext4 -q -F "$dev"
mkdir -p "$T/devm"
mount "$dev" "$T/devm"
create busydev "/device=$dev"
bb_assert_hresult 0x8004231D VSS_E_VOLUME_IN_USE "a mounted device"
bb_assert_contains "$OUT" "device $dev is mounted on $T/devm: unmount it first" "the mount point named"
umount "$T/devm"
create baddev "/device=$dev" /size=64MB
bb_assert_hresult 0x80070057 E_INVALIDARG "a device with /size that does not match"
bb_assert_contains "$OUT" "size mismatch: /size is 67108864 bytes but device $dev holds 335544320 bytes" "the sizes named"
adopt_roundtrip "ext4 device" "$dev" ext4 addev /device

create nodev /device=/dev/openvss-no-such-device
bb_assert_hresult 0x80042308 VSS_E_OBJECT_NOT_FOUND "a device that does not exist"

# ---- a new image ----------------------------------------------------------------------
create new0 "/image=$T/new.img" /fs=ext4
bb_assert_hresult 0x80070057 E_INVALIDARG "a new image without /size"
bb_assert_contains "$OUT" "image $T/new.img does not exist: give /size to create it" "what is missing named"
[[ ! -e $T/new.img ]] || bb_fail "a refused create left $T/new.img"
create new "/image=$T/new.img" /size=64MB /fs=ext4 "/mount=$T/vols/new"
bb_assert_rc 0 "a new image at a path that does not exist"
bb_assert_contains "$OUT" "Successfully created volume 'new'" "a new image: created"
[[ $(stat -c %s "$T/new.img") -eq 67108864 ]] || bb_fail "the new image is not 64 MiB"
findmnt -n -o FSTYPE "$T/vols/new" | grep -qx ext4 || bb_fail "the new image is not a mounted ext4"
echo data >"$T/vols/new/f"
bb_run "$VSSADMIN" delete volume /name=new
bb_assert_rc 0 "delete the new volume"
VOLUMES=("${VOLUMES[@]/new/}")
[[ -e $T/new.img ]] || bb_fail "delete volume removed an /image= file"
echo "ok: a new /image= is created with /size and formatted; refusals name HRESULT and reason"
