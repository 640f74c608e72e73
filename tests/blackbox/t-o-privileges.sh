#!/bin/bash
# (o) least privilege by group (issue 13, item 3): vssd.conf [service] admin_group= and
# writer_group=, run as real users made for this test.  Everyone may list; a member of
# the admin group may back up and create/delete/expose shadow copies and manage volumes,
# a member of the writer group may register writers, neither may do the other's part;
# root always may.  Each refusal is E_ACCESSDENIED (0x80070005) and names the method,
# the uid and the group that would allow it.  A writer id and name belong to the first
# uid that registered them in this run of vssd.  A uid holding max_connections_per_uid
# connections is refused with a clear error; root and other uids are not.  An unknown
# group stops vssd at start.
source "$(dirname "$0")/lib.sh"
bb_init

for t in useradd userdel groupadd groupdel setpriv; do
        command -v "$t" >/dev/null || bb_fail "$t is missing (passwd, util-linux); scripts/install-deps.sh installs it"
done

# The other users cannot run root's python3 if it is a pyenv shim under /root.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || bb_fail "$PYTHON is missing; scripts/install-deps.sh installs python3"

# Unique names (a failed run's leftovers cannot collide), removed by the trap: users first.
S=$$
GA=bbadm$S GW=bbwri$S
UA=bbua$S UW=bbuw$S UW2=bbuv$S UN=bbun$S
groupadd "$GA" && BB_CLEANUP+=("groupdel $GA")
groupadd "$GW" && BB_CLEANUP+=("groupdel $GW")
mkuser()
{
        # mkuser NAME [GROUP]
        useradd -M -N -d / -s /bin/sh ${2:+-G "$2"} "$1"
        BB_CLEANUP+=("userdel $1")
}
mkuser "$UA" "$GA"
mkuser "$UW" "$GW"
mkuser "$UW2" "$GW"
mkuser "$UN"
uid_of() { id -u "$1"; }

# The users reach the socket and the volume through $T.
chmod 0755 "$T"
mkdir -m 1777 "$T/pub"

# as USER CMD...: runs CMD as USER with the groups the user database gives it.
as()
{
        local u=$1
        shift
        setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

denied()
{
        # denied USER METHOD GROUP WHAT: the last bb_run was refused for METHOD.
        bb_assert_hresult 0x80070005 E_ACCESSDENIED "$4"
        bb_assert_contains "$OUT" "$2 needs membership of group $3 (uid $(uid_of "$1") is not a member)" "$4"
}

# ---- an unknown group is a configuration error ------------------------------------------
printf '[service]\nadmin_group=%s\nwriter_group=bbnosuch%s\n' "$GA" "$S" >"$T/bad.conf"
bb_run timeout 20 "$VSSD" --socket "$T/bad.sock" --state-dir "$T/state" --config "$T/bad.conf"
bb_assert_failed "vssd with an unknown writer_group"
bb_assert_contains "$OUT" "writer_group=bbnosuch$S: unknown group" "vssd names the unknown group"
[[ ! -S "$T/bad.sock" ]] || bb_fail "vssd opened its socket with an unknown group in its configuration"

printf '[service]\nadmin_group=%s\nwriter_group=%s\nmax_connections_per_uid=4\n' "$GA" "$GW" >"$T/vssd.conf"
bb_volume VOL data
bb_start_vssd --config "$T/vssd.conf"

# A persistent shadow copy made by root, for the others to list and (try to) delete.
bb_run "$VSHADOW" -p -nw "$VOL"
bb_assert_rc 0 "root: vshadow -p -nw"
SHADOW=$(grep -oE "$bb_guid_re" <<<"$OUT" | sed -n 2p)
[[ -n "$SHADOW" ]] || bb_fail "no shadow id in vshadow's output:"$'\n'"$OUT"

# ---- everyone may list --------------------------------------------------------------------
for u in "$UN" "$UW" "$UA"; do
        for what in writers providers shadows shadowstorage volumes events; do
                bb_run as "$u" "$VSSADMIN" list "$what"
                bb_assert_rc 0 "$u: vssadmin list $what"
        done
        bb_run as "$u" "$VSSADMIN" list shadows
        bb_assert_contains "$OUT" "$SHADOW" "$u sees root's shadow copy in vssadmin list shadows"
done

# ---- what the admin group is for ------------------------------------------------------------
for u in "$UN" "$UW"; do
        bb_run as "$u" "$VSSADMIN" delete shadows "/shadow=$SHADOW" /quiet
        denied "$u" Shadows.Delete "$GA" "$u: vssadmin delete shadows"
        bb_run as "$u" "$VSSADMIN" expose shadow "/shadow=$SHADOW" "/at=$T/pub/x"
        denied "$u" Shadows.Expose "$GA" "$u: vssadmin expose shadow"
        bb_run as "$u" "$VSSADMIN" add shadowstorage "/for=$VOL" "/on=$VOL" /maxsize=1GB
        denied "$u" Storage.Add "$GA" "$u: vssadmin add shadowstorage"
        bb_run as "$u" "$VSSADMIN" create volume /name=bbpriv /size=64MB /fs=ext4
        denied "$u" Volumes.Create "$GA" "$u: vssadmin create volume"
        bb_run as "$u" "$VSSADMIN" delete volume /name=bbpriv
        denied "$u" Volumes.Delete "$GA" "$u: vssadmin delete volume"
        bb_run as "$u" "$VSHADOW" -nw "$VOL"
        denied "$u" Backup.SetContext "$GA" "$u: vshadow"
done
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "$SHADOW" "the refused deletions deleted nothing"

# The admin group's member backs up, deletes, and is refused what is the writers' part.
bb_run as "$UA" "$VSHADOW" -p -nw "$VOL"
bb_assert_rc 0 "$UA (admin group): vshadow -p -nw"
bb_run as "$UA" "$VSSADMIN" delete shadows "/for=$VOL" /all /quiet
bb_assert_rc 0 "$UA (admin group): vssadmin delete shadows /all"
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "No items found that satisfy the query." "the admin group's member deleted every shadow copy"
# Membership counts from either source: the connecting process's groups (a unit's
# SupplementaryGroups=, here setpriv --groups) for a user the database does not list, and
# the user database for a process that dropped its supplementary groups.
bb_run setpriv --reuid="$UN" --regid="$(id -g "$UN")" --groups="$(getent group "$GA" | cut -d: -f3)" -- \
        "$VSHADOW" -p -nw "$VOL"
bb_assert_rc 0 "$UN with $GA as a supplementary group of the process: vshadow -p -nw"
bb_run setpriv --reuid="$UA" --regid="$(id -g "$UA")" --clear-groups -- \
        "$VSSADMIN" delete shadows "/for=$VOL" /all /quiet
bb_assert_rc 0 "$UA, in $GA by /etc/group only, without supplementary groups: vssadmin delete shadows"
bb_run "$VSSADMIN" list shadows
bb_assert_contains "$OUT" "No items found that satisfy the query." "the shadow copy made by the process group's member is gone"
bb_run as "$UA" "$VSSWRITER" --name bbw-admin --volume "$VOL" --no-reconnect
denied "$UA" Writer.Register "$GW" "$UA (admin group, not writer group): vsswriter"

# ---- what the writer group is for ---------------------------------------------------------
bb_run as "$UN" "$VSSWRITER" --name bbw-nobody --volume "$VOL" --no-reconnect
denied "$UN" Writer.Register "$GW" "$UN (no group): vsswriter"

start_writer_as()
{
        # start_writer_as USER NAME [ARGS...]: a vsswriter of USER, listed.
        local u=$1 name=$2
        shift 2
        # setpriv itself in the background (not the function "as"): $! is then the writer's pid.
        setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- \
                "$VSSWRITER" --name "$name" --volume "$VOL" --no-reconnect "$@" >>"$T/writer-$name.log" 2>&1 &
        BB_PIDS+=($!)
        bb_wait_until 10 "writer '$name' of $u listed" bb_writer_listed "$name"
}
bb_writer_gone() { ! bb_writer_listed "$1"; }
start_writer_as "$UW" bbw-owned
OWNED_PID=${BB_PIDS[-1]}
OWNED_ID=$(bb_writer_field bbw-owned "Writer Id")
[[ -n "$OWNED_ID" ]] || bb_fail "no writer id for bbw-owned"

# Another writer-group uid may not take the id or the name, even while its first owner is away.
bb_run as "$UW2" "$VSSWRITER" --name bbw-owned --volume "$VOL" --no-reconnect
bb_assert_hresult 0x80070005 E_ACCESSDENIED "$UW2: vsswriter with another uid's writer name"
bb_assert_contains "$OUT" "writer id $OWNED_ID belongs to uid $(uid_of "$UW"), which registered it first in this run of vssd (uid $(uid_of "$UW2") may not register it)" \
        "$UW2: the refusal names the owner of the (name-derived) id"
bb_run as "$UW2" "$VSSWRITER" --name bbw-owned --id "{0b0b0b0b-1111-4222-8333-444455556666}" --volume "$VOL" --no-reconnect
bb_assert_hresult 0x80070005 E_ACCESSDENIED "$UW2: vsswriter with another uid's writer name, its own id"
bb_assert_contains "$OUT" "writer name 'bbw-owned' belongs to uid $(uid_of "$UW"), which registered it first in this run of vssd (uid $(uid_of "$UW2") may not register it)" \
        "$UW2: the refusal names the owner of the name"
bb_run as "$UW2" "$VSSWRITER" --name bbw-other --id "$OWNED_ID" --volume "$VOL" --no-reconnect
bb_assert_hresult 0x80070005 E_ACCESSDENIED "$UW2: vsswriter with another uid's writer id"
bb_assert_contains "$OUT" "writer id $OWNED_ID belongs to uid $(uid_of "$UW")" "$UW2: the refusal names the owner of the id"
kill -TERM "$OWNED_PID"
bb_wait_until 10 "bbw-owned gone from vssadmin list writers" bb_writer_gone bbw-owned
bb_run as "$UW2" "$VSSWRITER" --name bbw-owned --volume "$VOL" --no-reconnect
bb_assert_contains "$OUT" "belongs to uid $(uid_of "$UW")" "$UW2: the claim outlives the owner's connection"
# Root may register any writer; the first owner registers its own again.
start_writer_as root bbw-owned
kill -TERM "${BB_PIDS[-1]}"
bb_wait_until 10 "root's bbw-owned gone" bb_writer_gone bbw-owned
start_writer_as "$UW" bbw-owned
start_writer_as "$UW2" bbw-second

# ---- connections per uid ------------------------------------------------------------------
# UN holds 4 connections (the limit); its fifth is refused with the reason.
setpriv --reuid="$UN" --regid="$(id -g "$UN")" --init-groups -- "$PYTHON" - "$T/vssd.sock" "$T/pub/held" <<'PY' &
import socket, sys, time
socks = []
for i in range(4):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(b'{"id":1,"method":"Service.Status"}\n')
    buf = b""
    while b"\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("connection %d closed by vssd" % i)
        buf += d
    socks.append(s)
open(sys.argv[2], "w").write("4\n")
while True:
    time.sleep(3600)   # holds the connections until the test kills it
PY
HOLDER=$!
BB_PIDS+=($HOLDER)
bb_wait_until 10 "$UN holding 4 connections" test -s "$T/pub/held"
bb_run as "$UN" "$VSSADMIN" list writers
bb_assert_hresult 0x80070005 E_ACCESSDENIED "$UN: a fifth connection"
bb_assert_contains "$OUT" "connection refused: uid $(uid_of "$UN") already has 4 connections to vssd (max_connections_per_uid=4 in vssd.conf)" \
        "$UN: the refusal says why"
bb_run as "$UA" "$VSSADMIN" list writers
bb_assert_rc 0 "another uid is not limited by $UN's connections"
bb_run "$VSSADMIN" list writers
bb_assert_rc 0 "root is not limited by $UN's connections"
kill -TERM "$HOLDER"
bb_wait_pid_gone "$HOLDER" 5 || bb_fail "the connection holder did not exit"
bb_wait_until 10 "$UN may connect again" as "$UN" "$VSSADMIN" list writers

# ---- a new run of vssd: claims are per run ----------------------------------------------------
bb_stop_vssd
bb_start_vssd --config "$T/vssd.conf"
bb_wait_until 10 "the writers of the last run gone" bb_writer_gone bbw-owned
start_writer_as "$UW2" bbw-owned
echo "ok: privileges by group, writer claims and connection limits"
