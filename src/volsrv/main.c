/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vss-volsrv main: arguments, daemonizing, hardening, start-up and shutdown.
 *
 * Start-up order matters.  We daemonize first (before any thread exists), so
 * the starter's process only returns once the server is really serving: the
 * grandchild reports readiness through a pipe after the pid file is written
 * and every socket listens, or dies and the starter prints why (its stderr is
 * still ours until then).  The pid file doubles as the instance lock (flock),
 * so a second server on the same RUNDIR fails with VSS_E_VOLUME_IN_USE
 * instead of corrupting the diff area; a predecessor killed with -9 released
 * its lock, and its stale FUSE mount is detached before we mount ours.
 *
 * The process sits in the block I/O path of the kernel (loop over FUSE), so
 * its memory is locked (mlockall) and it is marked PR_SET_IO_FLUSHER: an
 * allocation made while serving a write must not wait on writeback of the
 * very device we serve.
 *
 * Shutdown (SIGTERM, SIGINT, Server.Stop): stop NBD, unmount FUSE, cow_close()
 * (a clean shutdown record), remove the sockets and the pid file, exit 0.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <malloc.h>

#include "basic/macro.h"
#include "basic/size-util.h"
#include "basic/string-util.h"
#include "volsrv/nbd.h"
#include "volsrv/volsrv.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

struct options {
        const char *origin;
        const char *diff;
        const char *rundir;
        bool format;
        bool foreground;
        uint32_t chunk_size;
        bool chunk_set;
        uint64_t max_bytes;
        bool max_set;
        uint64_t writeback;
        uint32_t writeback_interval_ms;
        unsigned hold_deadline_s;
};

/* Write-back buffers for first writes after a snapshot (cow_set_writeback()):
 * big enough that a commit's flush pair covers thousands of copies, small
 * enough to stay resident (the server runs mlockall()ed). */
#define WRITEBACK_DEFAULT (64ull << 20)
#define WRITEBACK_INTERVAL_MS 100u

static void usage(FILE *f)
{
        fputs("Usage: vss-volsrv --origin IMG --diff DIFFAREA --dir RUNDIR\n"
              "                  [--format [--chunk-size 16K] [--max SIZE|unbounded]] [--writeback SIZE]\n"
              "                  [--hold-deadline SECONDS] [--foreground]\n"
              "\n"
              "Serves one copy-on-write volume: RUNDIR/fuse/volume (live), RUNDIR/fuse/shadows/<guid>,\n"
              "NBD on RUNDIR/nbd.sock, control on RUNDIR/control.sock (vss-volsrv(8)).\n\n"
              "  --origin=IMG               the volume's image file or block device\n"
              "  --diff=DIFFAREA            the diff area file\n"
              "  --dir=RUNDIR               run directory (sockets, FUSE mount, pid file, logs)\n"
              "  --format                   write an empty diff area first\n"
              "  --chunk-size=N             with --format: copy-on-write unit, 4K..1M (default 16K)\n"
              "  --max=SIZE|unbounded       with --format: shadow storage bound (default unbounded)\n"
              "  --writeback=SIZE           memory for first writes awaiting their copy (default 64M)\n"
              "  --writeback-interval=MS    commit them at least this often (default 100; 0 = only\n"
              "                             when the memory is half full or on a flush)\n"
              "  --hold-deadline=SECONDS    how long the FUSE holder waits for a live server before it\n"
              "                             aborts the FUSE connection (default 30, 0 = never)\n"
              "  --foreground               do not daemonize; log to stderr\n"
              "  -h, --help                 print this help\n", f);
}

static int arg_error(const char *fmt, const char *arg)
{
        fprintf(stderr, "vss-volsrv: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, " (0x%08X %s: %s)\n", (unsigned) VSS_E_INVALIDARG, vss_hresult_name(VSS_E_INVALIDARG),
                vss_hresult_message(VSS_E_INVALIDARG));
        return -EINVAL;
}

static int parse_args(int argc, char **argv, struct options *o)
{
        static const struct option longopts[] = {
                { "origin",     required_argument, NULL, 'o' },
                { "diff",       required_argument, NULL, 'd' },
                { "dir",        required_argument, NULL, 'r' },
                { "format",     no_argument,       NULL, 'f' },
                { "chunk-size", required_argument, NULL, 'c' },
                { "max",        required_argument, NULL, 'm' },
                { "writeback",  required_argument, NULL, 'w' },
                { "writeback-interval", required_argument, NULL, 'W' },
                { "foreground", no_argument,       NULL, 'F' },
                { "hold-deadline", required_argument, NULL, 'H' },
                { "help",       no_argument,       NULL, 'h' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                uint64_t v;

                switch (c) {
                case 'o': o->origin = optarg; break;
                case 'd': o->diff = optarg; break;
                case 'r': o->rundir = optarg; break;
                case 'f': o->format = true; break;
                case 'F': o->foreground = true; break;
                case 'c':
                        if (size_parse(optarg, &v) < 0 || v < COW_CHUNK_MIN || v > COW_CHUNK_MAX || (v & (v - 1)))
                                return arg_error("--chunk-size %s: a power of two from 4K to 1M", optarg);
                        o->chunk_size = (uint32_t) v;
                        o->chunk_set = true;
                        break;
                case 'm':
                        if (strcasecmp(optarg, "unbounded") == 0)
                                o->max_bytes = COW_MAX_UNBOUNDED;
                        else if (size_parse(optarg, &v) < 0 || v == 0)
                                return arg_error("--max %s: a size (e.g. 512M) or 'unbounded'", optarg);
                        else
                                o->max_bytes = v;
                        o->max_set = true;
                        break;
                case 'w':
                        if (size_parse(optarg, &v) < 0)
                                return arg_error("--writeback %s: a size (e.g. 64M), 0 = write-through", optarg);
                        o->writeback = v;
                        break;
                case 'W':
                        if (parse_u64(optarg, &v) < 0 || v > 60000)
                                return arg_error("--writeback-interval %s: milliseconds, 0..60000", optarg);
                        o->writeback_interval_ms = (uint32_t)v;
                        break;
                case 'H':
                        if (parse_u64(optarg, &v) < 0 || v > 86400)
                                return arg_error("--hold-deadline %s: seconds, 0..86400 (0 = hold forever)", optarg);
                        o->hold_deadline_s = (unsigned)v;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc)
                return arg_error("unexpected argument '%s'", argv[optind]);
        if (!o->origin || !o->diff || !o->rundir)
                return arg_error("%s", "--origin, --diff and --dir are required");
        if ((o->chunk_set || o->max_set) && !o->format)
                return arg_error("%s", "--chunk-size and --max only apply with --format (use Storage.SetMax later)");
        return 0;
}

static char *path_join(const char *a, const char *b)
{
        char *p;

        if (asprintf(&p, "%s/%s", a, b) < 0)
                return NULL;
        return p;
}

/* realpath() of a file that may not exist yet (the diff area with --format). */
static char *abs_path(const char *path)
{
        _cleanup_free_ char *dir = NULL;
        const char *slash, *base;
        char *d;

        d = realpath(path, NULL);
        if (d)
                return d;
        slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t) (slash - path + (slash == path))) : strdup(".");
        base = slash ? slash + 1 : path;
        if (!dir)
                return NULL;
        d = realpath(dir, NULL);
        if (!d)
                return NULL;
        {
                char *full = path_join(streq(d, "/") ? "" : d, base);

                free(d);
                return full;
        }
}

/*
 * Double fork.  Returns in the grandchild with *ret_ready_fd set; the original
 * process waits for one byte on the pipe and exits 0, or exits 1 when the
 * pipe closes without it (the grandchild has printed why).
 */
static int daemonize(int *ret_ready_fd)
{
        int pfd[2];
        pid_t pid;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0) {
                char b;
                ssize_t n;

                close(pfd[1]);
                do
                        n = read(pfd[0], &b, 1);
                while (n < 0 && errno == EINTR);
                _exit(n == 1 ? 0 : 1);
        }
        close(pfd[0]);
        if (setsid() < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0)
                _exit(0);
        umask(0077);
        if (chdir("/") < 0)
                return -errno;
        *ret_ready_fd = pfd[1];
        return 0;
}

/* Once ready: stdio leaves the starter's terminal for RUNDIR/volsrv.log. */
static void detach_stdio(const char *rundir)
{
        _cleanup_free_ char *log = path_join(rundir, "volsrv.log");
        int fd;

        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                dup2(fd, STDIN_FILENO);
                close(fd);
        }
        fd = log ? open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
        if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
        }
}

static void harden(void)
{
        /* Each thread's arena would be locked whole by mlockall. */
        mallopt(M_ARENA_MAX, 2);
        if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
                log_warn("mlockall failed, serving unlocked (writeback deadlock risk under memory pressure): %m");
        if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
                log_warn("PR_SET_IO_FLUSHER not set (%m): allocations may recurse into writeback of this volume");
}

/* Takes the instance lock; returns the locked fd. */
static int lock_pidfile(const char *path)
{
        _cleanup_close_ int fd = -EBADF;
        char buf[32] = {};

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = -errno;

                if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
                        buf[strcspn(buf, "\n")] = 0;
                vlog_hr(VSS_E_VOLUME_IN_USE, r, "another vss-volsrv (pid %s) serves %s", buf[0] ? buf : "?", path);
                return -EBUSY;
        }
        return TAKE_FD(fd);
}

static int write_pidfile(int fd)
{
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());

        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) n, 0) != n)
                return -errno;
        return 0;
}

static int setup_paths(struct volsrv *s, const struct options *o)
{
        if (mkdir(o->rundir, 0700) < 0 && errno != EEXIST)
                return -errno;
        s->rundir = realpath(o->rundir, NULL);
        s->origin_path = realpath(o->origin, NULL);
        if (!s->origin_path)
                return vlog_hr(VSS_E_OBJECT_NOT_FOUND, -errno, "origin %s", o->origin), -ENOENT;
        if (!s->rundir)
                return -errno;
        s->diff_path = abs_path(o->diff);
        if (!s->diff_path)
                return vlog_hr(VSS_E_OBJECT_NOT_FOUND, -errno, "diff area %s", o->diff), -ENOENT;
        s->control_path = path_join(s->rundir, "control.sock");
        s->nbd_path = path_join(s->rundir, "nbd.sock");
        s->fuse_dir = path_join(s->rundir, "fuse");
        s->fuse_volume = path_join(s->rundir, "fuse/volume");
        s->fuse_shadows = path_join(s->rundir, "fuse/shadows");
        s->events_path = path_join(s->rundir, "events.log");
        s->pid_path = path_join(s->rundir, "volsrv.pid");
        if (!s->control_path || !s->nbd_path || !s->fuse_dir || !s->fuse_volume || !s->fuse_shadows ||
            !s->events_path || !s->pid_path)
                return -ENOMEM;
        return 0;
}

static int open_volume(struct volsrv *s, const struct options *o)
{
        struct cow_stats st;
        vss_hresult hr;
        int r;

        if (streq(s->origin_path, s->diff_path))
                return vlog_hr(VSS_E_INVALIDARG, 0, "the diff area cannot be the origin (%s)", s->origin_path),
                       -EINVAL;
        r = cow_io_open_file(s->origin_path, false, false, &s->origin_io);
        if (r < 0)
                return vlog_hr(cow_errno_to_hresult(r), r, "cannot open origin %s", s->origin_path), r;
        /* The diff area bypasses the page cache where it can: copies are
         * written once and rarely read, and caching them cost the committer
         * more CPU than anything else during first writes after a snapshot. */
        r = cow_io_open_file(s->diff_path, o->format, true, &s->diff_io);
        if (r < 0) {
                hr = r == -ENOENT ? VSS_E_OBJECT_NOT_FOUND : cow_errno_to_hresult(r);
                return vlog_hr(hr, r, "cannot open diff area %s%s", s->diff_path,
                               r == -ENOENT ? " (use --format to create one)" : ""), r;
        }
        if (o->format) {
                struct cow_format_params p = {
                        .chunk_size = o->chunk_size,
                        .max_bytes = o->max_set ? o->max_bytes : COW_MAX_UNBOUNDED,
                };

                r = cow_format(s->origin_io, s->diff_io, &p);
                if (r < 0)
                        return vlog_hr(cow_errno_to_hresult(r), r, "cannot format diff area %s", s->diff_path), r;
                log_info("formatted diff area %s", s->diff_path);
        }
        r = cow_open(s->origin_io, s->diff_io, volsrv_event_cb, s, &s->vol);
        if (r < 0)
                return vlog_hr(cow_errno_to_hresult(r), r, "cannot open diff area %s%s", s->diff_path,
                               r == -EBADMSG ? " (not a diff area: use --format)" : ""), r;
        /* First what a predecessor acknowledged from the write-back memory and
         * did not write back: on the origin before anything is served. */
        if (s->wb_fd >= 0)
                r = cow_set_writeback_fd(s->vol, o->writeback, o->writeback_interval_ms, s->wb_fd, &s->wb_found);
        else    /* write-through: nothing acknowledged stays in memory that dies with us */
                r = cow_set_writeback(s->vol, 0, 0);
        if (r < 0)
                return vlog_hr(cow_errno_to_hresult(r), r, "cannot set up the write-back buffers"), r;
        if (s->wb_found.error < 0)
                vlog_hr(VSS_E_UNEXPECTED, s->wb_found.error,
                        "the predecessor's write-back memory (generation %llu, %llu chunks) cannot be written "
                        "back: writes it acknowledged are lost; every flush of this FUSE connection fails "
                        "until the volume is mounted anew",
                        (unsigned long long)s->wb_found.generation, (unsigned long long)s->wb_found.chunks);
        else if (s->wb_found.chunks > 0)
                log_info("wrote back %llu chunks (%llu bytes) the predecessor acknowledged from its write-back "
                         "memory (generation %llu)", (unsigned long long)s->wb_found.chunks,
                         (unsigned long long)s->wb_found.bytes, (unsigned long long)s->wb_found.generation);
        r = cow_stats(s->vol, &st);
        if (r < 0)
                return vlog_hr(cow_errno_to_hresult(r), r, "cow_stats"), r;
        s->size = st.origin_bytes;
        s->chunk_size = st.chunk_size;
        return 0;
}

static void free_state(struct volsrv *s)
{
        s->vol = cow_close(s->vol);
        s->diff_io = cow_io_free(s->diff_io);
        s->origin_io = cow_io_free(s->origin_io);
        if (s->event_fd >= 0)
                close(s->event_fd);
        if (s->signal_fd >= 0)
                close(s->signal_fd);
        for (int *fd = (int[]){ s->wb_fd, s->claimed_fuse_fd, s->claimed_state_fd }, i = 0; i < 3; i++)
                if (fd[i] >= 0)
                        close(fd[i]);
        pthread_mutex_destroy(&s->event_lock);
        free(s->origin_path);
        free(s->diff_path);
        free(s->rundir);
        free(s->control_path);
        free(s->nbd_path);
        free(s->fuse_dir);
        free(s->fuse_volume);
        free(s->fuse_shadows);
        free(s->events_path);
        free(s->pid_path);
}

int main(int argc, char **argv)
{
        struct options o = { .writeback = WRITEBACK_DEFAULT, .writeback_interval_ms = WRITEBACK_INTERVAL_MS,
                             .hold_deadline_s = VOLSRV_HOLD_DEADLINE_DEFAULT_S };
        struct volsrv *s;
        _cleanup_close_ int pid_fd = -EBADF, ready_fd = -EBADF, listen_fd = -EBADF;
        sigset_t mask;
        int r, ret = 1;

        /* The FUSE holder (fuse.c): started by a server, never by hand. */
        if (argc == 4 && streq(argv[1], "--hold-fuse")) {
                uint64_t deadline;

                log_setup("vss-volsrv-hold");
                if (parse_u64(argv[3], &deadline) < 0 || deadline > 86400)
                        return 2;
                detach_stdio(argv[2]);
                return volsrv_fuse_hold(argv[2], (unsigned)deadline) < 0 ? 1 : 0;
        }
        log_setup("vss-volsrv");
        if (parse_args(argc, argv, &o) < 0)
                return 2;

        /* Big (the event ring): on the heap, and locked like the rest. */
        s = calloc(1, sizeof(*s));
        if (!s)
                return 1;
        s->event_fd = s->signal_fd = -1;
        s->claimed_fuse_fd = s->claimed_state_fd = s->wb_fd = -1;
        s->hold_deadline_s = o.hold_deadline_s;
        pthread_mutex_init(&s->event_lock, NULL);

        r = setup_paths(s, &o);
        if (r < 0) {
                if (r != -ENOENT)
                        vlog_hr(VSS_E_INVALIDARG, r, "cannot set up run directory %s", o.rundir);
                goto out;
        }
        if (!o.foreground) {
                r = daemonize(&ready_fd);
                if (r < 0) {
                        vlog_hr(VSS_E_UNEXPECTED, r, "cannot daemonize");
                        goto out;
                }
        }

        pid_fd = lock_pidfile(s->pid_path);
        if (pid_fd < 0)
                goto out;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        /* Blocked before any thread exists, so only the signalfd sees them. */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        s->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->signal_fd < 0 || s->event_fd < 0) {
                vlog_hr(VSS_E_UNEXPECTED, -errno, "signalfd/eventfd");
                goto out;
        }

        harden();

        /* What a predecessor's FUSE holder keeps, the write-back memory first. */
        volsrv_fuse_claim(s);
        if (s->wb_fd < 0)
                s->wb_fd = memfd_create("vss-volsrv-writeback", MFD_CLOEXEC);
        if (s->wb_fd < 0)
                log_warn("no memfd for the write-back buffers (%m): writes acknowledged from them do not "
                         "survive this server");

        r = open_volume(s, &o);
        if (r < 0)
                goto out;

        if (mkdir(s->fuse_dir, 0755) < 0 && errno != EEXIST) {
                vlog_hr(VSS_E_UNEXPECTED, -errno, "mkdir %s", s->fuse_dir);
                goto out_close;
        }
        /* Takes the predecessor's connection over from its holder, or mounts anew
         * (lazily unmounting a stale mount first). */
        r = volsrv_fuse_start(s);
        if (r < 0) {
                vlog_hr(VSS_E_UNEXPECTED, r, "cannot mount FUSE on %s", s->fuse_dir);
                goto out_close;
        }
        r = nbd_server_start(s->vol, s->size, s->nbd_path, &s->nbd);
        if (r < 0) {
                vlog_hr(VSS_E_UNEXPECTED, r, "cannot listen on %s", s->nbd_path);
                goto out_fuse;
        }
        r = volsrv_control_listen(s, &listen_fd);
        if (r < 0) {
                vlog_hr(VSS_E_UNEXPECTED, r, "cannot listen on %s", s->control_path);
                goto out_nbd;
        }
        r = write_pidfile(pid_fd);
        if (r < 0) {
                vlog_hr(VSS_E_UNEXPECTED, r, "cannot write %s", s->pid_path);
                goto out_nbd;
        }

        log_info("serving %s (%llu bytes, chunk %u) with diff area %s on %s", s->origin_path,
             (unsigned long long) s->size, s->chunk_size, s->diff_path, s->rundir);
        if (ready_fd >= 0) {
                detach_stdio(s->rundir);
                if (write(ready_fd, "R", 1) != 1)
                        log_warn("cannot signal readiness: %m");
                close(TAKE_FD(ready_fd));
        }

        r = volsrv_control_run(s, listen_fd);
        ret = r < 0 ? 1 : 0;
        (void) unlink(s->control_path);

out_nbd:
        s->nbd = nbd_server_stop(s->nbd);
        (void) unlink(s->nbd_path);
out_fuse:
        volsrv_fuse_stop(s);
out_close:
        s->vol = cow_close(s->vol);
        if (ret == 0)
                log_info("stopped cleanly");
out:
        if (pid_fd >= 0 && ret == 0)
                (void) unlink(s->pid_path);
        free_state(s);
        free(s);
        return ret;
}
