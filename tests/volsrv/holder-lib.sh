# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the tests of the FUSE holder (sourced; $R is the server's RUNDIR).

server_pid() { cat "$R/volsrv.pid" 2>/dev/null; }
# holder_pid: the holder of $R (its command line is vss-volsrv-hold --hold-fuse RUNDIR N).
holder_pid() {
        local f
        for f in /proc/[0-9]*/cmdline; do
                if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "--hold-fuse $R "; then
                        f=${f#/proc/}
                        echo "${f%/cmdline}"
                        return 0
                fi
        done
        return 1
}
# unlocked: no process holds the instance lock.  A killed server's leader is a zombie (gone)
# while its other threads may still be exiting with the lock; a replacement, like vssd's,
# waits for the lock itself.
unlocked() { [[ ! -e $R/volsrv.pid ]] || flock -n "$R/volsrv.pid" true; }
gone() { [[ ! -e /proc/$1 || $(ps -o stat= -p "$1") == Z* ]]; }

# The EXIT trap: the servers, holders and helpers it started ($PIDS), by pid, then the
# mount (every process of the connection is gone, so it is aborted; it goes lazily)
# and $T.
holder_cleanup() {
        local p
        for p in "${PIDS[@]}" $(server_pid) $(holder_pid); do
                kill -CONT "$p" 2>/dev/null
                kill -9 "$p" 2>/dev/null
        done
        umount -l "$R/fuse" 2>/dev/null
        rm -rf "$T"
}
trap holder_cleanup EXIT
trap 'exit 130' INT TERM
