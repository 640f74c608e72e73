/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hooks: one shell command per writer event.
 *
 * A hook is started with posix_spawn() (safe in vsswriter's multi-threaded
 * process, unlike fork() + setenv()) as `/bin/sh -c CMD` in a new process
 * group, stdin from /dev/null, stdout and stderr on pipes.  The parent polls
 * both pipes and a pidfd of the child until the child exits or the event's
 * time budget runs out; on timeout the whole process group gets SIGKILL, so
 * a hook's own children (a stuck `psql`, say) die with it and cannot hold the
 * data frozen.  Only the tail of stdout (for the failure line) and the head of
 * stderr (for the message) are kept, so a chatty hook cannot grow the writer.
 */

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "hook.h"

extern char **environ;

#define STDOUT_KEEP 8192

/* The variables vsswriter sets for hooks: entries ending in '=' are whole names,
 * the others prefixes (VSS_BACKUP_METADATA_<n>, VSS_FILE_RESTORE_STATUS_<n>).  An
 * inherited one is dropped, so a hook never sees a stale value of a variable that
 * this event does not set. */
static const char *const hook_env_keys[] = {
        "VSS_EVENT=", "VSS_SNAPSHOT_SET_ID=", "VSS_WRITER_NAME=", "VSS_VOLUMES=", "VSS_SNAPSHOT_DEVICES=",
        "VSS_COMPONENTS=", "VSS_COMPONENT_COUNT=", "VSS_BACKUP_METADATA_", "VSS_FILE_RESTORE_STATUS",
        "VSS_NEW_TARGETS=", "VSS_ABORT_REASON=",
};

vss_hresult hook_parse_failure(const char *out, size_t len)
{
        const struct vss_hresult_info *info;
        size_t end = len, start;
        char line[128];

        /* Skip trailing blank lines: "echo X" ends with a newline. */
        for (;;) {
                while (end > 0 && isspace((unsigned char)out[end - 1]))
                        end--;
                if (end == 0)
                        return VSS_E_WRITERERROR_NONRETRYABLE;
                start = end;
                while (start > 0 && out[start - 1] != '\n')
                        start--;
                break;
        }
        while (start < end && isspace((unsigned char)out[start]))
                start++;
        if (end - start >= sizeof(line))
                return VSS_E_WRITERERROR_NONRETRYABLE;
        memcpy(line, out + start, end - start);
        line[end - start] = 0;
        info = vss_hresult_parse(line);
        if (info && vss_hresult_is_writer_failure(info->value))
                return info->value;
        return VSS_E_WRITERERROR_NONRETRYABLE;
}

char *hook_trim_message(char *s)
{
        size_t n;
        char *p = s;

        /* The message goes into a JSON string: valid UTF-8, cut between characters. */
        utf8_make_valid(s);
        while (*p && isspace((unsigned char)*p))
                p++;
        n = utf8_cut(p, HOOK_MESSAGE_MAX);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
                n--;
        memmove(s, p, n);
        s[n] = 0;
        return s;
}

static bool env_key_is_ours(const char *entry)
{
        for (size_t i = 0; i < ARRAY_SIZE(hook_env_keys); i++)
                if (strncmp(entry, hook_env_keys[i], strlen(hook_env_keys[i])) == 0)
                        return true;
        return false;
}

/* The current environment without our keys, plus 'env'. The strings are borrowed. */
static char **env_merge(char *const *env)
{
        size_t n = 0, m = 0, k = 0;
        char **r;

        while (environ && environ[n])
                n++;
        while (env && env[m])
                m++;
        r = calloc(n + m + 1, sizeof(char *));
        if (!r)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!env_key_is_ours(environ[i]))
                        r[k++] = environ[i];
        for (size_t i = 0; i < m; i++)
                r[k++] = env[i];
        return r;
}

struct capture {
        int fd;
        char *buf;
        size_t len, cap;
        bool tail;      /* keep the last bytes (stdout) rather than the first (stderr) */
};

/* Reads what is there. Returns false at EOF or on error (the fd is then closed). */
static bool capture_read(struct capture *c)
{
        char tmp[4096];
        ssize_t n;

        n = read(c->fd, tmp, sizeof(tmp));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0) {
                close(c->fd);
                c->fd = -EBADF;
                return false;
        }
        if (c->tail && c->len + (size_t)n > c->cap) {
                size_t keep = c->cap / 2 > (size_t)n ? c->cap / 2 : 0;
                if (keep > c->len)
                        keep = c->len;
                memmove(c->buf, c->buf + c->len - keep, keep);
                c->len = keep;
        }
        size_t take = MIN((size_t)n, c->cap - c->len);
        memcpy(c->buf + c->len, tmp + (c->tail ? (size_t)n - take : 0), take);
        c->len += take;
        c->buf[c->len] = 0;
        return true;
}

int hook_run(const char *cmd, char *const *env, int64_t budget_ms, struct hook_result *ret)
{
        char out_buf[STDOUT_KEEP + 1] = "", err_buf[HOOK_MESSAGE_MAX + 1] = "";
        struct capture out = { .fd = -EBADF, .buf = out_buf, .cap = STDOUT_KEEP, .tail = true };
        struct capture err = { .fd = -EBADF, .buf = err_buf, .cap = HOOK_MESSAGE_MAX };
        int out_pipe[2] = { -EBADF, -EBADF }, err_pipe[2] = { -EBADF, -EBADF };
        _cleanup_free_ char **envp = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int64_t start = (int64_t)(clock_monotonic_us() / USEC_PER_MSEC), deadline = budget_ms < 0 ? -1 : start + budget_ms;
        bool exited = false, killed = false;
        int status = 0, r;
        pid_t pid;

        *ret = (struct hook_result){ .failure = VSS_S_OK };
        envp = env_merge(env);
        if (!envp)
                return -ENOMEM;
        if (pipe2(out_pipe, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(err_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                close(out_pipe[0]);
                close(out_pipe[1]);
                return r;
        }

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setpgroup(&attr, 0);
        /* vsswriter blocks SIGTERM/SIGINT in every thread; the hook must not inherit that. */
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };
        r = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(out_pipe[1]);
        close(err_pipe[1]);
        out.fd = out_pipe[0];
        err.fd = err_pipe[0];
        if (r != 0) {
                close(out.fd);
                close(err.fd);
                return -r;
        }
        pidfd = pidfd_open(pid, 0);

        while (!exited) {
                struct pollfd p[3] = {
                        { .fd = out.fd, .events = POLLIN },
                        { .fd = err.fd, .events = POLLIN },
                        { .fd = pidfd, .events = POLLIN },
                };
                int timeout = -1;

                if (deadline >= 0) {
                        int64_t left = deadline - (int64_t)(clock_monotonic_us() / USEC_PER_MSEC);
                        if (left <= 0) {
                                kill(-pid, SIGKILL);
                                killed = true;
                                break;
                        }
                        timeout = (int)MIN(left, (int64_t)INT32_MAX);
                }
                /* Without a pidfd, fall back to polling for the exit every 50 ms. */
                if (pidfd < 0 && (timeout < 0 || timeout > 50))
                        timeout = 50;
                r = poll(p, 3, timeout);
                if (r < 0 && errno != EINTR)
                        break;
                if (r > 0) {
                        if (p[0].revents)
                                capture_read(&out);
                        if (p[1].revents)
                                capture_read(&err);
                }
                if ((pidfd >= 0 && r > 0 && p[2].revents) || pidfd < 0) {
                        pid_t w = waitpid(pid, &status, WNOHANG);
                        if (w == pid)
                                exited = true;
                }
        }
        if (!exited)
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;

        /* Drain what the hook left in the pipes, without waiting for
         * background children that may still hold them open. */
        for (struct capture *c = &out; c; c = c == &out ? &err : NULL) {
                if (c->fd < 0)
                        continue;
                fcntl(c->fd, F_SETFL, O_NONBLOCK);
                for (int i = 0; i < 64 && c->fd >= 0; i++) {
                        ssize_t before = (ssize_t)c->len;
                        if (!capture_read(c) || (ssize_t)c->len == before)
                                break;
                }
                if (c->fd >= 0)
                        close(c->fd);
                c->fd = -EBADF;
        }

        if (killed) {
                ret->failure = VSS_E_WRITERERROR_TIMEOUT;
                snprintf(ret->message, sizeof(ret->message), "hook killed after %lld ms",
                         (long long)((int64_t)(clock_monotonic_us() / USEC_PER_MSEC) - start));
                return 0;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        ret->failure = hook_parse_failure(out.buf, out.len);
        snprintf(ret->message, sizeof(ret->message), "%s", err.buf);
        hook_trim_message(ret->message);
        if (!ret->message[0]) {
                if (WIFEXITED(status))
                        snprintf(ret->message, sizeof(ret->message), "hook exited with status %d",
                                 WEXITSTATUS(status));
                else
                        snprintf(ret->message, sizeof(ret->message), "hook killed by signal %d (%s)",
                                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        }
        return 0;
}
