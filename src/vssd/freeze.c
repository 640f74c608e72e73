/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Flush-and-hold: syncfs + FIFREEZE on every volume around a provider's
 * commit.  The safety net is a forked watchdog child holding its own copies
 * of the mount fds and a pipe from us: it thaws everything when the hold
 * deadline passes or the moment the pipe reaches EOF (vssd died), so no
 * filesystem stays frozen whatever happens to vssd.  Runs on the provider
 * worker thread; after fork() the child only makes async-signal-safe calls.
 *
 * Some filesystems must never be frozen: the one holding vssd's catalog (the
 * event loop writes to it) and those holding a cow volume's diff area or its
 * volume server's files (the server sits under the frozen filesystem's I/O
 * path and would deadlock the stack).  Asking for one of them is refused
 * with VSS_E_VOLUME_NOT_SUPPORTED before anything is frozen.
 */

#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/time-util.h"
#include "vssd/freeze.h"

static _noreturn_ void watchdog(int rfd, const int *fds, size_t n, unsigned hold_ms)
{
        struct pollfd pfd = { .fd = rfd, .events = POLLIN };
        char c = 0;
        int r;

        do
                r = poll(&pfd, 1, (int)hold_ms);
        while (r < 0 && errno == EINTR);
        if (r > 0 && read(rfd, &c, 1) == 1 && c == 'd')
                _exit(0);
        /* Deadline passed (r == 0) or vssd is gone (EOF): thaw. */
        for (size_t i = 0; i < n; i++)
                (void)ioctl(fds[i], FITHAW, 0);
        _exit(r == 0 ? 2 : 3);
}

vss_hresult freeze_around(char **paths, size_t n, char **protect, size_t n_protect, unsigned hold_ms,
                          vss_hresult (*cb)(void *userdata), void *userdata, char *errbuf, size_t errlen)
{
        int fds[VSS_MAX_VOLUMES_PER_SET];
        dev_t devs[VSS_MAX_VOLUMES_PER_SET];
        size_t nfd = 0, frozen = 0;
        int pipefd[2] = { -1, -1 }, status = 0;
        struct stat st;
        vss_hresult hr = VSS_S_OK;
        uint64_t t0, t1;
        pid_t pid;

        if (n > ARRAY_SIZE(fds)) {
                snprintf(errbuf, errlen, "cannot freeze %zu volumes at once (at most %zu)", n, ARRAY_SIZE(fds));
                return VSS_E_INVALIDARG;
        }
        for (size_t i = 0; i < n; i++) {
                int fd = open(paths[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                bool dup = false;

                if (fd < 0 || fstat(fd, &st) < 0) {
                        snprintf(errbuf, errlen, "cannot open %s for freezing: %s", paths[i], strerror(errno));
                        if (fd >= 0)
                                close(fd);
                        hr = VSS_E_UNEXPECTED_PROVIDER_ERROR;
                        goto out_close;
                }
                for (size_t k = 0; k < n_protect; k++) {
                        struct stat pst;

                        if (!protect[k] || stat(protect[k], &pst) < 0 || pst.st_dev != st.st_dev)
                                continue;
                        snprintf(errbuf, errlen,
                                 "refusing to freeze %s: its filesystem holds %s, which must stay writable while "
                                 "the volumes are frozen", paths[i], protect[k]);
                        close(fd);
                        hr = VSS_E_VOLUME_NOT_SUPPORTED;
                        goto out_close;
                }
                for (size_t k = 0; k < nfd; k++)
                        dup = dup || devs[k] == st.st_dev;
                if (dup) {
                        close(fd);
                        continue;
                }
                devs[nfd] = st.st_dev;
                fds[nfd++] = fd;
        }
        for (size_t i = 0; i < nfd; i++)
                (void)syncfs(fds[i]);

        /* A socket pair rather than a pipe: telling a watchdog that already
         * gave up must not raise SIGPIPE (send with MSG_NOSIGNAL). */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipefd) < 0) {
                snprintf(errbuf, errlen, "socketpair: %s", strerror(errno));
                hr = VSS_E_UNEXPECTED;
                goto out_close;
        }
        pid = fork();
        if (pid < 0) {
                snprintf(errbuf, errlen, "fork: %s", strerror(errno));
                hr = VSS_E_UNEXPECTED;
                goto out_close;
        }
        if (pid == 0) {
                close(pipefd[1]);
                watchdog(pipefd[0], fds, nfd, hold_ms);
        }
        close(pipefd[0]);
        pipefd[0] = -1;

        t0 = (clock_monotonic_us() / USEC_PER_MSEC);
        for (; frozen < nfd; frozen++)
                if (ioctl(fds[frozen], FIFREEZE, 0) < 0) {
                        snprintf(errbuf, errlen, "FIFREEZE failed: %s", strerror(errno));
                        hr = VSS_E_FLUSH_WRITES_TIMEOUT;
                        break;
                }
        if (hr == VSS_S_OK)
                hr = cb(userdata);
        t1 = (clock_monotonic_us() / USEC_PER_MSEC);
        for (size_t i = 0; i < frozen; i++)
                (void)ioctl(fds[i], FITHAW, 0);
        (void)send(pipefd[1], "d", 1, MSG_NOSIGNAL);
        close(pipefd[1]);
        pipefd[1] = -1;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if ((WIFEXITED(status) && WEXITSTATUS(status) == 2) || t1 - t0 > hold_ms) {
                snprintf(errbuf, errlen, "writes held for %llu ms, longer than the %u ms limit",
                         (unsigned long long)(t1 - t0), hold_ms);
                hr = VSS_E_HOLD_WRITES_TIMEOUT;
        }
out_close:
        if (pipefd[0] >= 0)
                close(pipefd[0]);
        if (pipefd[1] >= 0)
                close(pipefd[1]);
        for (size_t i = 0; i < nfd; i++)
                close(fds[i]);
        return hr;
}
