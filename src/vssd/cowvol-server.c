/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A cow volume's volume server as vssd sees it: starting it, its event
 * connection (Volume.Event notices and the supervision Hello), and replacing a
 * server that died or went silent.  The volume's lifecycle (create, delete,
 * moving the diff area) is in cowvol.c, the remount after a failed handover in
 * cowvol-remount.c.
 */

#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "basic/exec-util.h"
#include "basic/fs-util.h"
#include "basic/string-util.h"
#include "providers/cow/volsrv-client.h"
#include "vssd/volume.h"
#include "vssd/cowvol-server.h"
#include "vssd/vssd.h"


/* Supervision: every volume server gets a Hello each second on its event connection; one
 * that leaves a Hello unanswered for [cow] server_deadline_ms (default 5 s) is killed
 * (SIGKILL, also ends a SIGSTOP) and replaced.  5 s: the control loop answers in order,
 * and the slowest request it serves in normal operation (Snapshot.Create under heavy
 * write load) took 0.3-1.3 s. */
#define VOLSRV_PING_INTERVAL_US 1000000ull

/* ---- the event connection ---- */

void cowvol_ev_close(struct vssd *v, struct cowvol *cv)
{
        timer_cancel(v, &cv->ping);
        cv->ping_sent_us = 0;
        if (cv->ev_fd < 0)
                return;
        (void)epoll_ctl(v->epfd, EPOLL_CTL_DEL, cv->ev_fd, NULL);
        close(cv->ev_fd);
        cv->ev_fd = -1;
        wire_buf_done(&cv->ev_in);
}

static void ping_cb(struct vssd *v, struct timer *t);

int cowvol_ev_open(struct vssd *v, struct cowvol *cv)
{
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cv };
        int fd = volsrv_connect(cv->rundir);

        if (fd < 0)
                return fd;
        if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        cv->ev_fd = fd;
        wire_buf_init(&cv->ev_in, WIRE_MESSAGE_MAX);
        cv->ping.cb = ping_cb;
        cv->ping.userdata = cv;
        cv->ping_sent_us = 0;
        timer_arm(v, &cv->ping, clock_monotonic_us() + VOLSRV_PING_INTERVAL_US);
        return 0;
}

static void handle_event(struct vssd *v, struct cowvol *cv, json_t *params)
{
        const char *type = json_get_str(params, "type") ?: "unknown", *error = json_get_str(params, "error");
        const char *vol = cv->mountpoint && cv->mountpoint[0] ? cv->mountpoint : cv->name;
        struct shadow *sh = NULL;
        char idbuf[VSS_ID_STRING_MAX] = "?";
        vss_id sid;

        if (json_get_id(params, "shadow_id", &sid)) {
                vss_id_format(&sid, idbuf);
                sh = shadow_find(v, &sid);
        }
        if (streq(type, "reverted")) {
                json_t *e = json_object_get(params, "error");
                const char *ename = json_is_object(e) ? json_get_str(e, "name") : NULL;

                /* The target of a revert stays (docs/cow-format.md, "Revert"); Shadows.Revert reports the outcome. */
                catalog_event(v, ename ? "error" : "info", "volsnap", VSS_S_OK,
                              "the volume server of %s ended the revert to shadow copy %s%s%s", vol, idbuf,
                              ename ? " with " : "", ename ?: "");
                return;
        }
        if (streq(type, "discarded")) {
                catalog_event(v, "info", "volsnap", VSS_S_OK,
                              "shadow copy %s of volume %s was deleted: the volume was reverted to an older one", idbuf,
                              vol);
                if (sh)
                        shadow_forget(v, sh, "which was deleted when its volume was reverted to an older shadow copy");
                return;
        }
        if (streq(type, "evicted"))
                catalog_event(v, "warning", "volsnap", VSS_E_INSUFFICIENT_STORAGE,
                              "The shadow copies of volume %s were deleted because the shadow copy storage could not "
                              "grow in time (shadow copy %s, the oldest, was deleted to make room)", vol, idbuf);
        else
                catalog_event(v, "warning", "volsnap", VSS_E_UNEXPECTED_PROVIDER_ERROR,
                              "The shadow copy %s of volume %s was %s by its volume server%s%s", idbuf, vol, type,
                              error ? ": " : "", error ? error : "");
        if (!sh)
                return;
        shadow_forget(v, sh, streq(type, "evicted") ? "which was deleted to make room in the shadow copy storage" :
                                                      "which its volume server dropped");
}


bool cowvol_io(struct vssd *v, void *ptr, uint32_t events)
{
        struct cowvol *cv;
        ssize_t n;

        for (cv = v->cowvols; cv && cv != ptr; cv = cv->next)
                ;
        if (!cv)
                return false;
        n = wire_buf_fill(&cv->ev_in, cv->ev_fd);
        if (n == -EAGAIN)
                return true;
        if (n > 0) {
                char *line;
                size_t len;

                while (wire_buf_next_line(&cv->ev_in, &line, &len) > 0) {
                        struct wire_msg m;
                        char err[200];

                        if (wire_parse(line, len, &m, err, sizeof(err)) != VSS_S_OK)
                                continue;
                        if (m.kind == WIRE_REQUEST && streq(m.method, "Volume.Event"))
                                handle_event(v, cv, m.params);
                        else if (m.kind != WIRE_REQUEST && m.has_id && m.id == cv->ping_id)
                                cv->ping_sent_us = 0;
                        wire_msg_done(&m);
                }
                return true;
        }
        catalog_event(v, "warning", "cow", VSS_S_OK, "lost the volume server of cow volume %s; restarting it", cv->name);
        cowvol_ev_close(v, cv);
        cv->retry.cb = cowvol_retry_cb;
        cv->retry.userdata = cv;
        /* At once: the file system on the volume waits for a server meanwhile. */
        timer_arm(v, &cv->retry, clock_monotonic_us());
        return true;
}

/* ---- supervision: a server that stops answering is replaced ---- */

/* The pid in RUNDIR/volsrv.pid if that process is a vss-volsrv on this RUNDIR, else 0. */
static pid_t volsrv_pid(const struct cowvol *cv)
{
        char path[VSS_PATH_MAX], buf[4096];
        ssize_t n;
        int fd, pid = 0;

        fmt_trunc(path, sizeof(path), "%s/volsrv.pid", cv->rundir);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, 31);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        if (parse_int(buf, &pid) < 0 || pid <= 1)
                return 0;
        /* Its command line names the RUNDIR (a recycled pid does not). */
        fmt_trunc(path, sizeof(path), "/proc/%d/cmdline", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == 0)
                        buf[i] = ' ';
        buf[n] = 0;
        return strstr(buf, "vss-volsrv") && strstr(buf, cv->rundir) ? (pid_t)pid : 0;
}

/* Waits (up to timeout_ms) until no process holds the server's instance lock: a
 * server killed a moment ago may still be exiting, and its replacement would be
 * refused with VSS_E_VOLUME_IN_USE. */
static void wait_lock_free(const struct cowvol *cv, int timeout_ms)
{
        char path[VSS_PATH_MAX];
        int fd;

        fmt_trunc(path, sizeof(path), "%s/volsrv.pid", cv->rundir);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0 && waited < timeout_ms; waited += 10)
                usleep(10000);
        close(fd);
}

static void ping_cb(struct vssd *v, struct timer *t)
{
        struct cowvol *cv = t->userdata;
        uint64_t now = clock_monotonic_us();
        char line[96];
        int n;

        if (cv->ev_fd < 0)
                return;
        if (cv->ping_sent_us && now - cv->ping_sent_us >= (uint64_t)v->cfg.server_deadline_ms * 1000) {
                pid_t pid = volsrv_pid(cv);

                catalog_event(v, "warning", "cow", VSS_E_PROVIDER_VETO,
                              "the volume server of cow volume %s (pid %d) did not answer its control socket for %u ms: "
                              "killing it; a new one takes over its FUSE connection", cv->name, (int)pid,
                              (unsigned)v->cfg.server_deadline_ms);
                if (pid > 0)
                        (void)kill(pid, SIGKILL);
                cowvol_ev_close(v, cv);
                /* Its replacement starts once it is gone (its lock released). */
                wait_lock_free(cv, 3000);
                cv->retry.cb = cowvol_retry_cb;
                cv->retry.userdata = cv;
                timer_arm(v, &cv->retry, now);
                return;
        }
        if (!cv->ping_sent_us) {
                cv->ping_id++;
                n = snprintf(line, sizeof(line), "{\"id\":%lld,\"method\":\"Hello\",\"params\":{\"version\":1}}\n",
                             (long long)cv->ping_id);
                /* Never blocks the loop: a stopped server's socket buffer holds years of pings. */
                if (send(cv->ev_fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
                        cv->ping_sent_us = now;
        }
        timer_arm(v, t, now + VOLSRV_PING_INTERVAL_US);
}


/* ---- starting volume servers ---- */

void cowvol_volsrv_binary(struct vssd *v, char *buf, size_t len)
{
        char exe[VSS_PATH_MAX];
        ssize_t n;

        if (v->cfg.volsrv_path[0]) {
                fmt_trunc(buf, len, "%s", v->cfg.volsrv_path);
                return;
        }
        if (getenv("VSS_VOLSRV") && getenv("VSS_VOLSRV")[0] == '/') {
                fmt_trunc(buf, len, "%s", getenv("VSS_VOLSRV"));
                return;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = 0;
        /* Next to vssd; the build tree (src/vssd/vssd -> src/volsrv/vss-volsrv); where
         * meson installs it (libexecdir, not on PATH). */
        fmt_trunc(buf, len, "%s/vss-volsrv", dirname(exe));
        if (access(buf, X_OK) < 0)
                fmt_trunc(buf, len, "%s/../volsrv/vss-volsrv", exe);
        if (access(buf, X_OK) < 0)
                fmt_trunc(buf, len, "%s", VSS_VOLSRV_INSTALLED);
}

/* Starts vss-volsrv (it daemonizes: setsid + double fork, so it is not
 * tied to vssd) and waits until its control socket answers. */
vss_hresult cowvol_server_start(const char *bin, struct cowvol *cv, bool format, int64_t max, char *err,
                                size_t errlen)
{
        char logp[VSS_PATH_MAX], maxs[32], e2[512];
        char *argv[16];
        int k = 0, status;
        pid_t pid;

        if (access(bin, X_OK) < 0) {
                fmt_trunc(err, errlen, "volume server binary %s: %s (set [cow] volsrv_path or $VSS_VOLSRV)", bin,
                         strerror(errno));
                return VSS_E_PROVIDER_NOT_REGISTERED;
        }
        fmt_trunc(logp, sizeof(logp), "%s/../volsrv.log", cv->rundir);
        argv[k++] = (char *)bin;
        argv[k++] = (char *)"--origin";
        argv[k++] = cv->image;
        argv[k++] = (char *)"--diff";
        argv[k++] = cv->diff;
        argv[k++] = (char *)"--dir";
        argv[k++] = cv->rundir;
        if (format) {
                argv[k++] = (char *)"--format";
                argv[k++] = (char *)"--max";
                if (max < 0)
                        fmt_trunc(maxs, sizeof(maxs), "unbounded");
                else
                        fmt_trunc(maxs, sizeof(maxs), "%lld", (long long)max);
                argv[k++] = maxs;
        }
        argv[k] = NULL;
        pid = fork();
        if (pid < 0) {
                fmt_trunc(err, errlen, "fork: %s", strerror(errno));
                return VSS_E_UNEXPECTED;
        }
        if (pid == 0) {
                sigset_t none;
                int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), nul = open("/dev/null", O_RDONLY);

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void)setsid();
                if (nul >= 0)
                        dup2(nul, 0);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execv(bin, argv);
                _exit(127);
        }
        for (int i = 0; i < 200; i++) {
                if (VSS_SUCCEEDED(volsrv_call(cv->rundir, "Volume.Status", NULL, 1000, NULL, e2, sizeof(e2)))) {
                        (void)waitpid(pid, &status, WNOHANG);
                        return VSS_S_OK;
                }
                if (waitpid(pid, &status, WNOHANG) == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                        fmt_trunc(err, errlen, "%s exited with status %d before serving (see %s)", bin,
                                 WIFEXITED(status) ? WEXITSTATUS(status) : 128, logp);
                        return VSS_E_PROVIDER_VETO;
                }
                usleep(50000);
        }
        (void)waitpid(pid, &status, WNOHANG);
        fmt_trunc(err, errlen, "the volume server did not answer on %s/control.sock within 10 s (see %s): %s",
                 cv->rundir, logp, e2);
        return VSS_E_PROVIDER_VETO;
}

void cowvol_retry_cb(struct vssd *v, struct timer *t)
{
        struct cowvol *cv = t->userdata;
        char err[600] = "no event connection", bin[VSS_PATH_MAX];
        json_t *st = NULL;
        bool taken_over, offline;
        int r;

        /* Connected already: this is a retry of the remount only. */
        if (cv->ev_fd < 0 && cowvol_ev_open(v, cv) < 0) {
                wait_lock_free(cv, 3000);
                cowvol_volsrv_binary(v, bin, sizeof(bin));
                if (VSS_FAILED(cowvol_server_start(bin, cv, false, -1, err, sizeof(err))) || cowvol_ev_open(v, cv) < 0) {
                        catalog_event(v, "error", "cow", VSS_E_PROVIDER_VETO,
                                      "cannot restart the volume server of %s: %s; retrying in 30 s", cv->name, err);
                        timer_arm(v, &cv->retry, clock_monotonic_us() + 30000000);
                        return;
                }
                catalog_event(v, "info", "cow", VSS_S_OK, "restarted the volume server of cow volume %s", cv->name);
                cv->restarted = true;
        }
        /* Asked before anything touches its FUSE files: a stat() there waits for the
         * server, and one that does not answer must not hang this loop (supervision
         * replaces it; we come back in a second). */
        if (VSS_FAILED(volsrv_call(cv->rundir, "Volume.Status", NULL, 2000, &st, err, sizeof(err)))) {
                timer_arm(v, &cv->retry, clock_monotonic_us() + 1000000);
                return;
        }
        taken_over = json_is_true(json_object_get(st, "fuse_taken_over"));
        json_decref(st);
        /* A server that took the connection over serves the very files the loop devices
         * use; one that mounted anew leaves them on a dead connection: remount.  Either way a
         * volume with nothing mounted where it belongs was left offline by a revert that vssd
         * died in (its loop device detached): cowvol_remount() attaches and mounts it again. */
        offline = cv->mountpoint[0] && mount_lookup(cv->mountpoint, NULL, NULL, 0, NULL, 0) == -ENOENT;
        r = taken_over && !offline ? 0 : cowvol_remount(v, cv);
        if (cv->restarted && r >= 0) {
                if (r == 0 && taken_over)
                        catalog_event(v, "info", "cow", VSS_S_OK,
                                      "the new volume server of cow volume %s took over its FUSE connection: the volume "
                                      "stayed %s%s (%s), nothing to remount", cv->name,
                                      cv->mountpoint[0] ? "mounted at " : "attached", cv->mountpoint,
                                      cv->loopdev[0] ? cv->loopdev : "no loop device");
                cv->restarted = false;
        }
        if (r < 0)
                timer_arm(v, &cv->retry, clock_monotonic_us() + (r == -EBUSY ? 1000000 : 30000000));
}

