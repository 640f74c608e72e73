/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /proc scans and path helpers for the application writers (proc-util.h).
 * A scan reads every /proc/PID once; processes that vanish meanwhile or that
 * we may not inspect are skipped, never reported as errors.
 */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "proc-util.h"

bool proc_comm(pid_t pid, char *comm)
{
        char path[64], buf[64];
        ssize_t n;
        int fd;

        fmt_trunc(path, sizeof(path), "/proc/%d/comm", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        buf[15] = 0;
        memcpy(comm, buf, strlen(buf) + 1);
        return true;
}

static bool comm_matches(const char *comm, const char *const *comms)
{
        if (!comms)
                return true;
        for (; *comms; comms++)
                if (streq(comm, *comms))
                        return true;
        return false;
}

bool proc_is_running(pid_t pid, const char *const *comms)
{
        char comm[16];

        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
                return false;
        return proc_comm(pid, comm) && comm_matches(comm, comms);
}

static pid_t scan(bool (*match)(pid_t pid, const struct stat *target), const struct stat *target,
                  const char *const *comms, char *ret_comm)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        pid_t self = getpid(), found = 0;

        if (!d)
                return 0;
        while (!found && (de = readdir(d))) {
                char *end, comm[16];
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0 || pid == self)
                        continue;
                if (!proc_comm((pid_t)pid, comm) || !comm_matches(comm, comms))
                        continue;
                if (match((pid_t)pid, target)) {
                        found = (pid_t)pid;
                        if (ret_comm)
                                snprintf(ret_comm, 16, "%s", comm);
                }
        }
        closedir(d);
        return found;
}

static bool cwd_matches(pid_t pid, const struct stat *target)
{
        char path[64];
        struct stat st;

        fmt_trunc(path, sizeof(path), "/proc/%d/cwd", (int)pid);
        return stat(path, &st) == 0 && st.st_dev == target->st_dev && st.st_ino == target->st_ino;
}

static bool fd_matches(pid_t pid, const struct stat *target)
{
        char path[64];
        struct dirent *de;
        bool found = false;
        DIR *d;

        fmt_trunc(path, sizeof(path), "/proc/%d/fd", (int)pid);
        d = opendir(path);
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && st.st_dev == target->st_dev &&
                    st.st_ino == target->st_ino)
                        found = true;
        }
        closedir(d);
        return found;
}

int proc_cwd_is(pid_t pid, const char *dir)
{
        char path[64];
        struct stat a, b;

        if (stat(dir, &b) < 0)
                return 0;
        fmt_trunc(path, sizeof(path), "/proc/%d/cwd", (int)pid);
        if (stat(path, &a) < 0)
                return errno == EACCES || errno == EPERM ? -1 : 0;
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

pid_t proc_find_by_cwd(const char *dir, const char *const *comms, char *ret_comm)
{
        struct stat st;

        if (stat(dir, &st) < 0)
                return 0;
        return scan(cwd_matches, &st, comms, ret_comm);
}

pid_t proc_find_open_file(const char *path, char *ret_comm)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return 0;
        return scan(fd_matches, &st, NULL, ret_comm);
}

char *path_real_dirname(const char *path)
{
        _cleanup_free_ char *copy = strdup(path);
        char *slash, *r;

        if (!copy)
                return NULL;
        slash = strrchr(copy, '/');
        if (!slash)
                return realpath(".", NULL);
        if (slash == copy)
                slash[1] = 0;
        else
                *slash = 0;
        r = realpath(copy, NULL);
        return r;
}

bool path_is_under(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        if (streq(dir, "/"))
                return path[0] == '/';
        return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

char *path_join(const char *dir, const char *name)
{
        char *r;
        size_t n = strlen(dir);

        if (asprintf(&r, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) < 0)
                return NULL;
        return r;
}
