/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vssd: the openvss coordinator.  main() parses the command line and
 * vssd.conf, opens the catalog, recovers shadows left by a crash, binds the
 * socket and runs the one epoll loop: the listening socket, every
 * connection, a signalfd for SIGTERM/SIGINT and the provider worker's
 * eventfd are its sources; timers give the epoll timeout.
 */

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "basic/fs-util.h"
#include "vssd/vssd.h"

static int open_socket(struct vssd *v)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dir = NULL;
        int fd, r;

        if (strlen(v->socket_path) >= sizeof(sa.sun_path)) {
                log_err("socket path too long: %s", v->socket_path);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, v->socket_path, strlen(v->socket_path) + 1);
        dir = strdup(v->socket_path);
        if (!dir)
                return -ENOMEM;
        r = mkdir_p(dirname(dir), 0755);
        if (r < 0) {
                log_err("cannot create the directory of %s: %s", v->socket_path, strerror(-r));
                return r;
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A socket file that nobody answers on is stale; one that answers is another vssd. */
        {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        log_err("another vssd is already running on %s", v->socket_path);
                        close(fd);
                        return -EADDRINUSE;
                }
        }
        (void)unlink(v->socket_path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
                r = -errno;
                log_err("cannot listen on %s: %s", v->socket_path, strerror(errno));
                close(fd);
                return r;
        }
        /* Read-only methods are open to every local user; mutating ones check SO_PEERCRED. */
        (void)chmod(v->socket_path, 0666);
        v->listen_fd = fd;
        return 0;
}

static int epoll_add(struct vssd *v, int fd, void *ptr)
{
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };

        return epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void usage(void)
{
        printf("Usage: vssd [--socket PATH] [--state-dir DIR] [--config FILE]\n"
               "            [--freeze-timeout MS] [--event-timeout MS] [--verbose]\n\n"
               "The openvss coordinator daemon; runs in the foreground and logs to stderr.\n\n"
               "  -s, --socket=PATH          listen here (default $VSS_SOCKET, else /run/openvss/vssd.sock)\n"
               "  -d, --state-dir=DIR        catalog and exposures (default /var/lib/openvss)\n"
               "  -c, --config=FILE          configuration (default /etc/openvss/vssd.conf; missing: defaults)\n"
               "  -f, --freeze-timeout=MS    writers' default freeze timeout (overrides freeze_timeout_ms)\n"
               "  -e, --event-timeout=MS     time to answer any other event (overrides event_timeout_ms)\n"
               "  -v, --verbose              log debug lines too\n"
               "  -h, --help                 print this help\n"
               "  -V, --version              print the version\n");
}

static int parse_args(struct vssd *v, int argc, char **argv, uint32_t *freeze_ms, uint32_t *event_ms)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "state-dir", required_argument, NULL, 'd' },
                { "config", required_argument, NULL, 'c' },
                { "freeze-timeout", required_argument, NULL, 'f' },
                { "event-timeout", required_argument, NULL, 'e' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int o;

        while ((o = getopt_long(argc, argv, "s:d:c:f:e:vhV", opts, NULL)) >= 0)
                switch (o) {
                case 's':
                        v->socket_path = optarg;
                        break;
                case 'd':
                        v->state_dir = optarg;
                        break;
                case 'c':
                        v->config_path = optarg;
                        break;
                case 'f':
                case 'e':
                        if (config_parse_ms(optarg, o == 'f' ? freeze_ms : event_ms) < 0) {
                                fprintf(stderr, "vssd: %s: '%s' is not a number of milliseconds in 1..3600000\n",
                                        o == 'f' ? "--freeze-timeout" : "--event-timeout", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'v':
                        log_set_verbose(true);
                        break;
                case 'h':
                        usage();
                        return 0;
                case 'V':
                        printf("%s\n", VSSD_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "vssd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void drain_signals(struct vssd *v)
{
        struct signalfd_siginfo si;

        while (read(v->sigfd, &si, sizeof(si)) == sizeof(si)) {
                log_info("received %s, shutting down", strsignal((int)si.ssi_signo));
                v->quit = true;
        }
}

static void run(struct vssd *v)
{
        struct epoll_event evs[64];

        while (!v->quit) {
                int timeout = timers_run(v), n;

                if (v->quit)
                        break;
                n = epoll_wait(v->epfd, evs, ARRAY_SIZE(evs), timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_err("epoll_wait: %m");
                        break;
                }
                for (int i = 0; i < n; i++) {
                        void *p = evs[i].data.ptr;

                        if (p == &v->listen_fd)
                                (void)conn_accept(v);
                        else if (p == &v->sigfd)
                                drain_signals(v);
                        else if (p == &v->prov_evfd)
                                prov_dispatch_done(v);
                        else if (v->cluster && p == vcluster_evfd_ptr(v))
                                vcluster_dispatch(v);
                        else if (cowvol_io(v, p, evs[i].events))
                                ;
                        else
                                conn_io(v, p, evs[i].events);
                }
                conns_reap(v);
        }
}

static void shutdown_daemon(struct vssd *v)
{
        /* Abort every set in progress and release every session: that queues
         * provider aborts and deletions of auto-release shadows, which we then
         * wait for before the catalog closes. */
        sessions_shutdown(v);
        vcluster_stop(v);
        while (v->jobs_in_flight > 0) {
                uint64_t x;
                struct epoll_event ev;

                if (epoll_wait(v->epfd, &ev, 1, 100) < 0 && errno != EINTR)
                        break;
                (void)read(v->prov_evfd, &x, sizeof(x));
                prov_dispatch_done(v);
        }
        while (v->conns) {
                struct conn *c = v->conns;
                c->dead = true;
                conns_reap(v);
                if (v->conns == c)
                        break;
        }
        while (v->writers) {
                struct writer *w = v->writers;
                v->writers = w->next;
                writer_free(w);
        }
        writer_claims_free(v);
        while (v->shadows) {
                struct shadow *sh = v->shadows;
                v->shadows = sh->next;
                shadow_free(sh);
        }
        providers_done(v);
        storage_done(v);
        cowvols_done(v);
        pubvers_done(v);
        catalog_event(v, "info", "service", VSS_S_OK, "vssd stopped");
        catalog_close(v);
        if (v->listen_fd >= 0) {
                close(v->listen_fd);
                (void)unlink(v->socket_path);
        }
        if (v->sigfd >= 0)
                close(v->sigfd);
        if (v->prov_evfd >= 0)
                close(v->prov_evfd);
        if (v->epfd >= 0)
                close(v->epfd);
}

int main(int argc, char **argv)
{
        struct vssd vssd = {
                .epfd = -EBADF,
                .sigfd = -EBADF,
                .listen_fd = -EBADF,
                .prov_evfd = -EBADF,
                .state_dir = "/var/lib/openvss",
                .config_path = "/etc/openvss/vssd.conf",
                .next_serial = 1,
        }, *v = &vssd;
        uint32_t freeze_ms = 0, event_ms = 0;
        char err[512];
        sigset_t mask;
        int r;

        log_setup("vssd");
        setvbuf(stderr, NULL, _IOLBF, 0);
        v->socket_path = (char *)vss_default_socket_path();
        r = parse_args(v, argc, argv, &freeze_ms, &event_ms);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        config_defaults(&v->cfg);
        if (config_load(v->config_path, &v->cfg, err, sizeof(err)) < 0) {
                log_err("bad configuration: %s", err);
                return 1;
        }
        if (freeze_ms)
                v->cfg.freeze_timeout_ms = freeze_ms;
        if (event_ms)
                v->cfg.event_timeout_ms = event_ms;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        v->start_us = (int64_t)time(NULL) * 1000000;

        r = mkdir_p(v->state_dir, 0700);
        if (r < 0) {
                log_err("cannot create state directory %s: %s", v->state_dir, strerror(-r));
                return 1;
        }
        v->epfd = epoll_create1(EPOLL_CLOEXEC);
        v->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        v->prov_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->epfd < 0 || v->sigfd < 0 || v->prov_evfd < 0) {
                log_err("cannot set up the event loop: %m");
                return 1;
        }
        if (open_socket(v) < 0)
                return 1;
        if (catalog_open(v) < 0) {
                close(v->listen_fd);
                (void)unlink(v->socket_path);
                return 1;
        }
        if (providers_init(v) < 0) {
                catalog_close(v);
                close(v->listen_fd);
                (void)unlink(v->socket_path);
                return 1;
        }
        if (epoll_add(v, v->listen_fd, &v->listen_fd) < 0 || epoll_add(v, v->sigfd, &v->sigfd) < 0 ||
            epoll_add(v, v->prov_evfd, &v->prov_evfd) < 0) {
                log_err("epoll_ctl: %m");
                return 1;
        }
        if (storage_load(v) < 0)
                catalog_event(v, "error", "catalog", VSS_E_UNEXPECTED, "cannot load shadow storage associations");
        if (cowvols_load(v) < 0)
                catalog_event(v, "error", "catalog", VSS_E_UNEXPECTED, "cannot load cow volumes");
        shadows_recover(v);
        /* Not fatal: a host that cannot reach etcd still serves its own sets, and keeps trying. */
        if (vcluster_start(v) < 0)
                catalog_event(v, "error", "cluster", VSS_E_CLUSTER_ERROR, "cannot start the cluster thread");
        catalog_event(v, "info", "service", VSS_S_OK, "vssd %s started on %s (state %s, freeze %u ms, event %u ms)",
                      OPENVSS_VERSION, v->socket_path, v->state_dir, v->cfg.freeze_timeout_ms,
                      v->cfg.event_timeout_ms);
        run(v);
        shutdown_daemon(v);
        return 0;
}
