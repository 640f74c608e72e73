/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FUSE front end: RUNDIR/fuse/volume is the live volume (read-write) and
 * RUNDIR/fuse/shadows/<guid> each snapshot (read-only), so the kernel can put
 * a loop device (and a file system) on them.  The protocol is spoken on
 * /dev/fuse directly (fuse-proto.c says why not libfuse); this file owns the
 * device: mount, reader threads, the holder and the handover.
 *
 * Handover.  The /dev/fuse descriptor outlives the server: right after the
 * mount a holder process (this binary, `--hold-fuse`, execed with the
 * descriptor, the shared state file and a listening socket
 * RUNDIR/fuse-holder.sock) keeps it open.  It never reads the device, so it is
 * in no I/O path.  While any descriptor of the connection is open the kernel
 * keeps the connection, and requests a dead server had read but not answered
 * stay on its processing list; they are lost only if the *file* the server
 * read from is closed, so server and holder share one open file (SCM_RIGHTS,
 * never FUSE_DEV_IOC_CLONE: a clone is a device of its own whose pending
 * requests the kernel fails with ECONNABORTED when it is closed).  A
 * replacement server (same RUNDIR; the pid file lock says the old one is
 * gone) gets both descriptors from the holder, checks the mount on
 * RUNDIR/fuse is still that connection, skips INIT (the kernel never sends it
 * twice), takes over the open handles from the state, writes
 * FUSE_NOTIFY_RESEND (Linux 6.9+) so the kernel queues the unanswered
 * requests again (a resent WRITE is applied twice: harmless for a block
 * device), and serves.  The loop devices and file systems on top never notice
 * beyond a pause.
 *
 * A holder instead of vssd: it survives vssd's death as well as the server's
 * (vssd may be restarted at any time, and a vssd killed together with a
 * volume server must not cost the mount), a server started by hand or by the
 * tests gets the same protection, and vssd keeps no per-volume descriptors.
 *
 * Settings (measured with libfuse 3.14 before, docs/volsrv.md, kept as they were):
 * max_write 64 KiB (and max_pages 16: reads are 64 KiB requests too),
 * max_background 64, FOPEN_DIRECT_IO on the live volume, no writeback cache,
 * 8 reader threads on the one descriptor, buffers allocated at start (the
 * I/O path does not allocate; the process is mlockall()ed).
 */

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "basic/macro.h"
#include "basic/time-util.h"
#include "volsrv/fuse-proto.h"
#include "volsrv/volsrv.h"

#define VF_WORKERS 8u
#define HOLDER_MSG "VSSFUSE1"

struct volsrv_fuse {
        int fd;                         /* /dev/fuse, shared with the holder */
        int state_fd;
        struct vfuse_state *st;
        struct vfuse_ctx ctx;
        pthread_t threads[VF_WORKERS];
        unsigned nthreads;
        bool stopping;
        dev_t dev;
        bool took_over;
        struct volsrv *s;
        pthread_t lease;
        bool lease_running;
        int wake[2];                    /* stops the lease thread */
};

static int dev_send(void *userdata, const struct iovec *iov, int iovcnt)
{
        struct volsrv_fuse *vf = userdata;
        ssize_t n;

        do
                n = writev(vf->fd, iov, iovcnt);
        while (n < 0 && errno == EINTR);
        /* ENOENT: the request was interrupted or aborted meanwhile, nobody waits. */
        if (n < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static void *reader_thread(void *arg)
{
        struct volsrv_fuse *vf = arg;
        uint8_t *in = NULL, *out = NULL;
        /* Headers of a WRITE (in_header + write_in) end on a page boundary. */
        const size_t lead = VFUSE_HEAD_ROOM - sizeof(struct fuse_in_header) - sizeof(struct fuse_write_in);

        (void)pthread_setname_np(pthread_self(), "fuse");
        if (posix_memalign((void **)&in, 4096, VFUSE_IN_BUFFER) != 0 ||
            posix_memalign((void **)&out, 4096, VFUSE_OUT_BUFFER) != 0) {
                log_err("fuse: no memory for a reader's buffers");
                goto out;
        }
        for (;;) {
                ssize_t n = read(vf->fd, in + lead, VFUSE_IN_BUFFER - lead);

                if (n < 0) {
                        /* ENOENT: an interrupted request vanished; EAGAIN: another reader got it. */
                        /* EINTR: volsrv_fuse_stop()'s SIGUSR2 when the connection does not end. */
                        if (errno == EINTR && __atomic_load_n(&vf->stopping, __ATOMIC_RELAXED))
                                break;
                        if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
                                continue;
                        if (errno != ENODEV && !__atomic_load_n(&vf->stopping, __ATOMIC_RELAXED))
                                log_warn("fuse: read from /dev/fuse: %m");
                        break;
                }
                if (vfuse_handle(&vf->ctx, in + lead, (size_t)n, out) < 0)
                        log_warn("fuse: dropped a malformed request (%zd bytes)", n);
        }
out:
        free(in);
        free(out);
        return NULL;
}

void volsrv_fuse_unmount_stale(const char *dir)
{
        if (umount2(dir, MNT_DETACH) == 0)
                log_info("fuse: lazily unmounted a stale mount on %s", dir);
}

/* The workers block in read(/dev/fuse); only the end of the connection wakes them
 * when the mount is still busy.  Also used on a predecessor's connection that is
 * no longer mounted where it belongs, so its users get errors instead of hanging. */
static void abort_connection(dev_t dev)
{
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor(dev));
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                log_warn("fuse: cannot abort connection (%s): %m", path);
                return;
        }
        if (write(fd, "1", 1) < 0)
                log_warn("fuse: cannot abort connection (%s): %m", path);
        close(fd);
}

/* ---- the holder ---- */

static char *holder_path(const struct volsrv *s)
{
        char *p;

        if (asprintf(&p, "%s/fuse-holder.sock", s->rundir) < 0)
                return NULL;
        return p;
}

/* A connection to the holder with the one-byte command cmd sent: the fd, or
 * -ENOENT/-ECONNREFUSED when no holder listens, or another -errno. */
static int holder_connect(const struct volsrv *s, char cmd)
{
        _cleanup_free_ char *path = holder_path(s);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (!path || strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, &cmd, 1) != 1) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/* Sends the holder a one-byte command; for 'G' receives the descriptors: the
 * device, the state and (from a holder of this version) the write-back memory,
 * else *ret_wb_fd = -1.  Returns 0, -ENOENT/-ECONNREFUSED when no holder
 * listens, or another -errno. */
static int holder_call(const struct volsrv *s, char cmd, int *ret_fuse_fd, int *ret_state_fd, int *ret_wb_fd)
{
        struct timeval tv = { .tv_sec = 2 };
        char data[sizeof(HOLDER_MSG)] = {}, cbuf[CMSG_SPACE(3 * sizeof(int))] = {};
        struct iovec iov = { data, sizeof(data) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *cm;
        ssize_t n;
        int fd, r = 0;

        fd = holder_connect(s, cmd);
        if (fd < 0)
                return fd;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (cmd != 'G') {
                /* The holder closes when it has done it. */
                (void)read(fd, data, 1);
                goto out;
        }
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
                r = -errno;
                goto out;
        }
        cm = CMSG_FIRSTHDR(&mh);
        if (n != (ssize_t)sizeof(data) || memcmp(data, HOLDER_MSG, sizeof(data)) != 0 || !cm ||
            cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            (cm->cmsg_len != CMSG_LEN(2 * sizeof(int)) && cm->cmsg_len != CMSG_LEN(3 * sizeof(int)))) {
                if (cm && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(0)) {
                        size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        for (size_t i = 0; i < nfd && i < 3; i++) {
                                int fd2;

                                memcpy(&fd2, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                close(fd2);
                        }
                }
                r = -EBADMSG;
                goto out;
        }
        memcpy(ret_fuse_fd, CMSG_DATA(cm), sizeof(int));
        memcpy(ret_state_fd, CMSG_DATA(cm) + sizeof(int), sizeof(int));
        *ret_wb_fd = -1;
        if (cm->cmsg_len == CMSG_LEN(3 * sizeof(int)))
                memcpy(ret_wb_fd, CMSG_DATA(cm) + 2 * sizeof(int), sizeof(int));
out:
        close(fd);
        return r;
}

/* Starts the holder: fork, setsid, exec of this binary with the device as fd 3,
 * the state as fd 4, its listening socket as fd 5 and the write-back memory
 * as fd 6 (or nothing there).  Between fork and exec only
 * async-signal-safe calls (the engine's threads exist already). */
static int holder_spawn(struct volsrv *s, struct volsrv_fuse *vf)
{
        _cleanup_free_ char *path = holder_path(s);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char exe[4096], deadline[16];
        ssize_t n;
        pid_t pid;
        int lfd, status;

        snprintf(deadline, sizeof(deadline), "%u", s->hold_deadline_s);

        if (!path || strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return -errno;
        exe[n] = 0;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        (void)unlink(path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0)
                return -errno;
        if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(lfd, 8) < 0) {
                int r = -errno;

                close(lfd);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                int r = -errno;

                close(lfd);
                return r;
        }
        if (pid == 0) {
                char *argv[] = { (char *)"vss-volsrv-hold", (char *)"--hold-fuse", s->rundir, deadline, NULL };
                sigset_t none;
                int a, b, c, w = -1;

                /* Its own session, so a signal to the server's group spares it; a second
                 * fork so it is nobody's child. */
                if (setsid() < 0 || fork() != 0)
                        _exit(0);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                /* Out of the way first: any of them may itself be 3, 4, 5 or 6. */
                a = fcntl(vf->fd, F_DUPFD, 16);
                b = fcntl(vf->state_fd, F_DUPFD, 16);
                c = fcntl(lfd, F_DUPFD, 16);
                if (s->wb_fd >= 0)
                        w = fcntl(s->wb_fd, F_DUPFD, 16);
                if (a < 0 || b < 0 || c < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0 || dup2(c, 5) < 0)
                        _exit(127);
                if (w < 0)
                        (void)close(6);
                else if (dup2(w, 6) < 0)
                        _exit(127);
                execv(exe, argv);
                _exit(127);
        }
        close(lfd);
        (void)waitpid(pid, &status, 0);
        return 0;
}

/* The holder's main loop (vss-volsrv --hold-fuse RUNDIR DEADLINE_S, started above):
 * hands the descriptors to whoever of uid 0 or ours asks, until told to quit or
 * until the connection is gone (checked every second without waiting on the
 * device: a waiter there would be woken by every request).
 *
 * The lease: the serving server keeps one connection open ('L') and writes a
 * byte on it every second from its lease thread.  With no lease (the server
 * died and no replacement came) or no byte (the server is stopped or wedged)
 * for DEADLINE_S seconds, the holder aborts the connection and exits: every
 * request pending or to come fails (ENOTCONN, EIO through the loop device), so a
 * volume that nobody serves any more never hangs the machine (sync, umount,
 * mkfs of other devices that wait on it).  0 = hold for ever. */
int volsrv_fuse_hold(const char *rundir, unsigned deadline_s)
{
        const int fuse_fd = 3, state_fd = 4, lfd = 5, wb_fd = 6;
        const bool have_wb = fcntl(wb_fd, F_GETFD) >= 0;
        const uint64_t deadline_us = (uint64_t)deadline_s * USEC_PER_SEC;
        uint64_t since = clock_monotonic_us(), dev = 0;
        bool leased = false;
        char path[4096];
        pid_t lease_pid = 0;
        int lease = -1;

        signal(SIGPIPE, SIG_IGN);
        snprintf(path, sizeof(path), "%s/fuse-holder.sock", rundir);
        for (int i = 7; i < 1024; i++)
                (void)close(i);
        for (;;) {
                struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = lease, .events = POLLIN } };
                struct pollfd d = { .fd = fuse_fd, .events = 0 };
                struct ucred cred;
                socklen_t clen = sizeof(cred);
                struct timeval tv = { .tv_sec = 2 };
                uint64_t now;
                char cmd = 0;
                int c;

                if (poll(&d, 1, 0) < 0 || (d.revents & (POLLERR | POLLHUP | POLLNVAL)))
                        break;
                (void)poll(p, lease >= 0 ? 2 : 1, 1000);
                now = clock_monotonic_us();
                if (lease >= 0 && p[1].revents) {
                        char b[64];
                        ssize_t n = read(lease, b, sizeof(b));

                        if (n > 0)
                                since = now;
                        else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                                close(lease);
                                lease = -1;
                                since = now;
                                if (deadline_s)
                                        log_warn("fuse holder: the volume server of %s is gone; keeping its FUSE "
                                                 "connection for a replacement for %u s", rundir, deadline_s);
                        }
                }
                if (deadline_us && now - since >= deadline_us) {
                        if (pread(state_fd, &dev, sizeof(dev), offsetof(struct vfuse_state, dev)) != sizeof(dev))
                                dev = 0;
                        log_err("fuse holder: %s for %u s (--hold-deadline): aborting the FUSE connection of %s; "
                                "its users get I/O errors (0x%08X %s)",
                                lease >= 0 ? "the volume server did not renew its lease"
                                           : leased ? "no volume server took over" : "no volume server came",
                                deadline_s, rundir, (unsigned)VSS_E_UNEXPECTED, vss_hresult_name(VSS_E_UNEXPECTED));
                        /* Through fusectl when it is mounted; in any case by ending every
                         * descriptor of the connection: a server that missed its lease for
                         * the whole deadline is killed (it is stopped or wedged, and its
                         * connection ends now either way), then this process exits, and the
                         * kernel aborts a connection whose last descriptor is closed. */
                        if (dev)
                                abort_connection((dev_t)dev);
                        if (lease >= 0 && lease_pid > 0) {
                                struct pollfd h = { .fd = lease, .events = POLLIN };

                                (void)kill(lease_pid, SIGKILL);
                                /* Its end of the lease closes when it is gone. */
                                for (int i = 0; i < 50 && poll(&h, 1, 100) >= 0; i++) {
                                        char b[64];

                                        if ((h.revents & (POLLHUP | POLLERR)) ||
                                            ((h.revents & POLLIN) && read(lease, b, sizeof(b)) <= 0))
                                                break;
                                }
                        }
                        break;
                }
                if (!(p[0].revents & POLLIN))
                        continue;
                c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                (void)setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
                    (cred.uid != 0 && cred.uid != getuid()) || read(c, &cmd, 1) != 1) {
                        close(c);
                        continue;
                }
                if (cmd == 'G') {
                        char cbuf[CMSG_SPACE(3 * sizeof(int))] = {};
                        int fds[3] = { fuse_fd, state_fd, wb_fd };
                        const size_t nfd = have_wb ? 3 : 2;
                        struct iovec iov = { (void *)HOLDER_MSG, sizeof(HOLDER_MSG) };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                             .msg_controllen = CMSG_SPACE(nfd * sizeof(int)) };
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
                        memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));
                        (void)sendmsg(c, &mh, MSG_NOSIGNAL);
                        close(c);
                } else if (cmd == 'L') {
                        /* The server now serving: its lease replaces any older one. */
                        if (lease >= 0)
                                close(lease);
                        lease = c;
                        lease_pid = cred.pid;
                        leased = true;
                        since = now;
                } else if (cmd == 'Q') {
                        /* Unlink before answering: a server that asked us to go starts a
                         * new holder on the same path. */
                        (void)unlink(path);
                        close(c);
                        return 0;
                } else
                        close(c);
        }
        (void)unlink(path);
        return 0;
}

/* The server's side of the lease (see volsrv_fuse_hold): connects with 'L' and
 * writes a byte every second.  A holder that went away is started again while
 * the connection lives (someone killed it: the mount must not depend on luck). */
static void *lease_thread(void *arg)
{
        struct volsrv_fuse *vf = arg;
        bool warned = false;
        int fd = -1;

        (void)pthread_setname_np(pthread_self(), "fuse-lease");
        for (;;) {
                struct pollfd w = { .fd = vf->wake[0], .events = POLLIN };
                struct pollfd d = { .fd = vf->fd, .events = 0 };

                if (poll(&d, 1, 0) < 0 || (d.revents & (POLLERR | POLLHUP | POLLNVAL)))
                        break;  /* the connection is gone: nothing to hold */
                if (fd >= 0 && send(fd, "B", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
                        close(fd);
                        fd = -1;
                }
                if (fd < 0) {
                        fd = holder_connect(vf->s, 'L');
                        if (fd == -ENOENT || fd == -ECONNREFUSED) {
                                log_warn("fuse: the FUSE holder of %s is gone: starting a new one", vf->s->rundir);
                                if (holder_spawn(vf->s, vf) == 0)
                                        fd = holder_connect(vf->s, 'L');
                        }
                        if (fd < 0 && !warned) {
                                log_warn("fuse: no lease with the FUSE holder (%s): the mount may not survive this "
                                         "server", strerror(-fd));
                                warned = true;
                        } else if (fd >= 0)
                                warned = false;
                }
                if (poll(&w, 1, 1000) > 0)
                        break;
        }
        if (fd >= 0)
                close(fd);
        return NULL;
}

/* ---- start and stop ---- */

static int map_state(struct volsrv_fuse *vf)
{
        void *p = mmap(NULL, sizeof(struct vfuse_state), PROT_READ | PROT_WRITE, MAP_SHARED, vf->state_fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        vf->st = p;
        return 0;
}

/* Takes the predecessor's connection from its holder, if there is one that is
 * still mounted on RUNDIR/fuse.  Returns 1 taken over, 0 nothing to take over
 * (a stale holder is told to quit, a stale connection aborted), -errno. */
void volsrv_fuse_claim(struct volsrv *s)
{
        int fuse_fd = -1, state_fd = -1, wb_fd = -1;

        s->claimed_fuse_fd = s->claimed_state_fd = -1;
        if (holder_call(s, 'G', &fuse_fd, &state_fd, &wb_fd) < 0)
                return;
        s->claimed_fuse_fd = fuse_fd;
        s->claimed_state_fd = state_fd;
        if (wb_fd >= 0) {
                if (s->wb_fd >= 0)
                        close(s->wb_fd);
                s->wb_fd = wb_fd;
                s->wb_held = true;
        }
}

static int take_over(struct volsrv *s, struct volsrv_fuse *vf)
{
        struct pollfd p;
        struct stat st_state;
        dev_t mnt_dev = 0;
        int fuse_fd = s->claimed_fuse_fd, state_fd = s->claimed_state_fd, r;

        s->claimed_fuse_fd = s->claimed_state_fd = -1;
        if (fuse_fd < 0)
                return 0;
        vf->fd = fuse_fd;
        vf->state_fd = state_fd;
        p = (struct pollfd){ .fd = fuse_fd, .events = 0 };
        if (fstat(state_fd, &st_state) < 0 || st_state.st_size < (off_t)sizeof(struct vfuse_state) ||
            map_state(vf) < 0 || vfuse_state_check(vf->st) < 0) {
                log_warn("fuse: the holder's state is unusable: starting a new mount");
                goto stale;
        }
        if (poll(&p, 1, 0) < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
                log_info("fuse: the predecessor's connection is gone: starting a new mount");
                goto stale;
        }
        /* Still mounted where it belongs?  Asked of mountinfo: a stat() of the mount
         * would wait for a reader, and there is none yet. */
        if (mount_lookup(s->fuse_dir, &mnt_dev, NULL, 0, NULL, 0) < 0 || (uint64_t)mnt_dev != vf->st->dev) {
                log_info("fuse: the predecessor's connection is no longer mounted on %s: starting a new mount",
                         s->fuse_dir);
                goto stale;
        }
        vf->took_over = true;
        vf->dev = (dev_t)vf->st->dev;
        return 1;
stale:
        if (vf->st && vf->st->dev && poll(&p, 1, 0) >= 0 && !(p.revents & (POLLERR | POLLHUP | POLLNVAL)))
                abort_connection((dev_t)vf->st->dev);
        (void)holder_call(s, 'Q', NULL, NULL, NULL);
        r = 0;
        if (vf->st)
                munmap(vf->st, sizeof(struct vfuse_state));
        vf->st = NULL;
        close(fuse_fd);
        close(state_fd);
        vf->fd = vf->state_fd = -1;
        return r;
}

static int fresh_mount(struct volsrv *s, struct volsrv_fuse *vf)
{
        char opts[256];
        int r;

        vf->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (vf->fd < 0)
                return vlog_hr(VSS_E_UNEXPECTED, -errno, "cannot open /dev/fuse"), -errno;
        vf->state_fd = memfd_create("vss-volsrv-fuse-state", MFD_CLOEXEC);
        if (vf->state_fd < 0 || ftruncate(vf->state_fd, sizeof(struct vfuse_state)) < 0)
                return -errno;
        r = map_state(vf);
        if (r < 0)
                return r;
        vfuse_state_init(vf->st);
        volsrv_fuse_unmount_stale(s->fuse_dir);
        /* default_permissions: the kernel checks the modes (0600/0400, owned by us),
         * so allow_other lets nobody else at the volume. */
        snprintf(opts, sizeof(opts),
                 "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions,max_read=%u", vf->fd,
                 (unsigned)getuid(), (unsigned)getgid(), VFUSE_MAX_WRITE);
        if (mount("vss-volsrv", s->fuse_dir, "fuse.openvss", MS_NOSUID | MS_NODEV, opts) < 0)
                return vlog_hr(VSS_E_UNEXPECTED, -errno, "mount -t fuse.openvss %s", s->fuse_dir), -errno;
        return 0;
}

/* Interrupts a reader's read(): no SA_RESTART, nothing to do. */
static void wake_reader(int sig)
{
        (void)sig;
}

int volsrv_fuse_start(struct volsrv *s)
{
        struct sigaction sa = { .sa_handler = wake_reader };
        _cleanup_free_ struct volsrv_fuse *vf = NULL;
        pthread_attr_t attr;
        struct stat st;
        int r;

        vf = calloc(1, sizeof(*vf));
        if (!vf)
                return -ENOMEM;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGUSR2, &sa, NULL);
        vf->fd = vf->state_fd = vf->wake[0] = vf->wake[1] = -1;
        vf->s = s;
        if (pipe2(vf->wake, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        r = take_over(s, vf);
        if (r < 0)
                goto fail;
        if (r == 0) {
                r = fresh_mount(s, vf);
                if (r < 0)
                        goto fail;
        }
        vf->ctx = (struct vfuse_ctx){
                .vol = s->vol,
                .size = s->size,
                .uid = (uint32_t)getuid(),
                .gid = (uint32_t)getgid(),
                .st = vf->st,
                .send = dev_send,
                .send_userdata = vf,
        };
        if (!vf->took_over)
                /* A new connection: a file system on it is mounted anew, so writes a
                 * predecessor lost are no longer this connection's to report. */
                (void)cow_set_flush_error(s->vol, 0);
        if (vf->took_over) {
                /* The predecessor's opens of the volume for writing are ours now. */
                unsigned writers = vfuse_state_writers(vf->st);

                for (unsigned i = 0; i < writers; i++)
                        (void)cow_live_open(s->vol);
                vf->st->handovers++;
                log_info("fuse: took over the connection on %s from the holder (%u open for writing, handover %llu)",
                         s->fuse_dir, writers, (unsigned long long)vf->st->handovers);
        }

        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (unsigned i = 0; i < VF_WORKERS; i++) {
                r = pthread_create(&vf->threads[i], &attr, reader_thread, vf);
                if (r != 0) {
                        r = -r;
                        break;
                }
                vf->nthreads++;
        }
        pthread_attr_destroy(&attr);
        if (vf->nthreads == 0)
                goto fail_unmount;

        if (vf->took_over && !s->wb_held && s->wb_fd >= 0) {
                /* A holder that does not keep write-back memory (an older version's): one
                 * that does takes its place.  It goes first (it unlinks the socket); we hold
                 * the device meanwhile, so the connection stays. */
                log_info("fuse: the holder of %s keeps no write-back memory: replacing it", s->rundir);
                (void)holder_call(s, 'Q', NULL, NULL, NULL);
                r = holder_spawn(s, vf);
                if (r < 0)
                        log_warn("fuse: cannot start a new FUSE holder (%s): the mount will not survive this "
                                 "server", strerror(-r));
        }
        if (vf->took_over) {
                r = vfuse_notify_resend(&vf->ctx);
                if (r < 0)
                        log_warn("fuse: FUSE_NOTIFY_RESEND failed (%s): requests in flight at the predecessor's "
                                 "death wait until they are retried", strerror(-r));
        } else {
                /* Only now: stat() on the mount waits for a reader to answer INIT. */
                if (stat(s->fuse_dir, &st) == 0)
                        vf->dev = st.st_dev;
                vf->st->dev = (uint64_t)vf->dev;
                r = holder_spawn(s, vf);
                if (r < 0)
                        log_warn("fuse: cannot start the FUSE holder (%s): the mount will not survive this server",
                                 strerror(-r));
                s->wb_held = r == 0 && s->wb_fd >= 0;
        }
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        r = pthread_create(&vf->lease, &attr, lease_thread, vf);
        pthread_attr_destroy(&attr);
        if (r != 0)
                log_warn("fuse: cannot start the lease thread (%s): the holder aborts the connection after %u s",
                         strerror(r), s->hold_deadline_s);
        vf->lease_running = r == 0;
        s->fuse = TAKE_PTR(vf);
        return 0;

fail_unmount:
        if (!vf->took_over)
                (void)umount2(s->fuse_dir, MNT_DETACH);
fail:
        if (vf->st)
                munmap(vf->st, sizeof(struct vfuse_state));
        if (vf->fd >= 0)
                close(vf->fd);
        if (vf->state_fd >= 0)
                close(vf->state_fd);
        if (vf->wake[0] >= 0) {
                close(vf->wake[0]);
                close(vf->wake[1]);
        }
        return r < 0 ? r : -EIO;
}

bool volsrv_fuse_taken_over(const struct volsrv *s, uint64_t *ret_handovers)
{
        *ret_handovers = s->fuse && s->fuse->st ? s->fuse->st->handovers : 0;
        return s->fuse && s->fuse->took_over;
}

void volsrv_fuse_stop(struct volsrv *s)
{
        struct volsrv_fuse *vf = s->fuse;
        struct timespec deadline;
        bool aborted = false;

        if (!vf)
                return;
        __atomic_store_n(&vf->stopping, true, __ATOMIC_RELAXED);
        /* The lease ends first, or its thread would start a new holder after the 'Q'. */
        if (vf->lease_running) {
                (void)write(vf->wake[1], "x", 1);
                pthread_join(vf->lease, NULL);
        }
        close(vf->wake[0]);
        close(vf->wake[1]);
        /* A clean stop ends the mount: the holder goes first, so nothing keeps the
         * connection once we close our descriptor. */
        (void)holder_call(s, 'Q', NULL, NULL, NULL);
        if (umount2(s->fuse_dir, 0) < 0) {
                if (errno == EBUSY)
                        log_warn("fuse: %s is still in use (loop device?): detaching it, its users get I/O errors",
                             s->fuse_dir);
                (void)umount2(s->fuse_dir, MNT_DETACH);
        }
        /* Monotonic: a clock step must neither cut the wait short nor stretch it. */
        deadline = timespec_from_us(clock_monotonic_us() + 2 * USEC_PER_SEC);
        for (unsigned i = 0; i < vf->nthreads; i++) {
                if (!aborted && pthread_clockjoin_np(vf->threads[i], NULL, CLOCK_MONOTONIC, &deadline) == 0)
                        continue;
                if (!aborted) {
                        abort_connection(vf->dev);
                        aborted = true;
                }
                /* Without fusectl (often not mounted) the abort does nothing, and a mount
                 * still in use keeps the readers blocked in read(): interrupt them. */
                for (;;) {
                        struct timespec t = timespec_from_us(clock_monotonic_us() + 100000);

                        (void)pthread_kill(vf->threads[i], SIGUSR2);
                        if (pthread_clockjoin_np(vf->threads[i], NULL, CLOCK_MONOTONIC, &t) == 0)
                                break;
                }
        }
        munmap(vf->st, sizeof(struct vfuse_state));
        close(vf->fd);
        close(vf->state_fd);
        free(vf);
        s->fuse = NULL;
}
