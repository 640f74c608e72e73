/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What PreRestore needs to know about the machine: whether a database server
 * still runs on the directory about to be replaced, or another process still
 * has a database file open.  Both are read from /proc: a PostgreSQL
 * postmaster and a MariaDB server both chdir() into their data directory, so
 * a process of that name whose cwd is the directory is its server, whatever
 * its pid file says (a stale pid file is exactly what a restored copy brings
 * along).  And paths: the real directory of a file, and "is A under B".
 */

#include <stdbool.h>
#include <sys/types.h>

/* The first process other than ours whose /proc/PID/comm is one of 'comms' (NULL-terminated;
 * NULL: any) and whose working directory is 'dir' (compared by device and inode).  0 when
 * there is none; the name goes to ret_comm (16 bytes) if not NULL. */
pid_t proc_find_by_cwd(const char *dir, const char *const *comms, char *ret_comm);
/* The first process other than ours with a file descriptor open on 'path' (by device and
 * inode), 0 when there is none or 'path' does not exist. */
pid_t proc_find_open_file(const char *path, char *ret_comm);
/* The name of process 'pid' (/proc/PID/comm) into comm (16 bytes); false when it is gone. */
bool proc_comm(pid_t pid, char *comm);
/* Whether the working directory of 'pid' is 'dir': 1 yes, 0 no, -1 when it cannot be read
 * (another user's process). */
int proc_cwd_is(pid_t pid, const char *dir);
/* Whether 'pid' is alive and named one of 'comms'. */
bool proc_is_running(pid_t pid, const char *const *comms);

/* The canonical path of the directory holding 'path' (which itself need not exist); a new
 * string or NULL with errno set. */
char *path_real_dirname(const char *path);
/* True when 'path' is 'dir' or below it (both canonical, no trailing slash except "/"). */
bool path_is_under(const char *path, const char *dir);
/* "dir/name" in a new string (NULL on OOM). */
char *path_join(const char *dir, const char *name);
