/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One fork-exec-with-a-deadline for every component.  The child gets its own
 * process group so that a deadline also kills what it started (mount helpers,
 * mkfs children); the output pipe is drained while waiting, so a chatty child
 * cannot block on a full pipe.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/exec-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"

static void child_exec(char *const argv[], int out_fd)
{
        sigset_t none;
        int nul;

        (void)setpgid(0, 0);
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nul >= 0)
                (void)dup2(nul, 0);
        (void)dup2(out_fd, 1);
        (void)dup2(out_fd, 2);
        execvp(argv[0], argv);
        _exit(127);
}

static void out_append(char *out, size_t outlen, size_t *off, const char *buf, size_t n)
{
        size_t k;

        if (!out || outlen < 2 || *off >= outlen - 1)
                return;
        k = MIN(n, outlen - 1 - *off);
        memcpy(out + *off, buf, k);
        *off += k;
}

/* Waits for the child until 'deadline'; -ETIMEDOUT if it is still there then.
 * Waits on a pidfd rather than in waitpid() so that a deadline also holds for a
 * child that closed its output and then hung (a umount stuck on a dead FUSE
 * server). */
static int wait_until(pid_t pid, uint64_t deadline, int *ret_status)
{
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

        for (;;) {
                pid_t w = waitpid(pid, ret_status, WNOHANG);
                uint64_t now;

                if (w == pid)
                        return 0;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (w < 0)
                        continue;
                now = clock_monotonic_us();
                if (now >= deadline)
                        return -ETIMEDOUT;
                if (pidfd >= 0) {
                        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

                        (void)poll(&pfd, 1, deadline == UINT64_MAX ? -1 : ms_until(now, deadline));
                } else
                        (void)usleep(10000);
        }
}

static void kill_child(pid_t pid, int *status)
{
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        /* A child stuck in the kernel cannot die: leave it after a second rather than hang. */
        (void)wait_until(pid, clock_monotonic_us() + USEC_PER_SEC, status);
}

int run_command(char *const argv[], int timeout_ms, char *out, size_t outlen)
{
        uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                           : clock_monotonic_us() + (uint64_t)timeout_ms * USEC_PER_MSEC;
        size_t off = 0;
        int p[2], status = 0, r = 0;
        pid_t pid;

        if (!argv || !argv[0])
                return -EINVAL;
        if (out && outlen > 0)
                out[0] = 0;
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0)
                child_exec(argv, p[1]);
        close(p[1]);
        /* Also here, so the kill below finds the group even if the child has not run yet. */
        (void)setpgid(pid, pid);

        for (;;) {
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                uint64_t now = clock_monotonic_us();
                char tmp[512];
                ssize_t n;

                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                n = poll(&pfd, 1, deadline == UINT64_MAX ? -1 : ms_until(now, deadline));
                if (n < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (n <= 0)
                        continue;
                n = read(p[0], tmp, sizeof(tmp));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;          /* EOF: every writer of the pipe is gone */
                out_append(out, outlen, &off, tmp, (size_t)n);
        }
        close(p[0]);
        if (out && outlen > 0) {
                out[off] = 0;
                while (off > 0 && (out[off - 1] == '\n' || out[off - 1] == ' '))
                        out[--off] = 0;
        }
        if (r == 0)
                r = wait_until(pid, deadline, &status);
        if (r == -ETIMEDOUT) {
                kill_child(pid, &status);
                if (out && outlen > 0)
                        snprintf(out, outlen, "%s did not finish within %d s (killed)", argv[0],
                                 timeout_ms / 1000);
                return r;
        }
        if (r < 0) {
                kill_child(pid, &status);
                return r;
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
