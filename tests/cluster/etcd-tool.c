/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * etcd-tool: every call of src/cluster/etcd.h from the command line, so the
 * cluster tests (tests/cluster/t-*.sh) drive the real library against a real
 * three-member etcd from inside the hosts' network namespaces.  Not a
 * general etcdctl: output is made for assertions.
 *
 *   etcd-tool [--endpoints URLS] [--timeout-ms N] COMMAND ARGS...
 *     get KEY [--prefix]          one "KEY=VALUE create=N mod=N version=N lease=HEX" line per key
 *     put KEY VALUE [--lease ID]  prints "revision=N"
 *     del KEY [--prefix]          prints "deleted=N"
 *     create KEY VALUE [--lease ID]
 *                                 txn: put if the key does not exist; prints "created revision=N"
 *                                 or "exists VALUE" (the failure branch reads it back)
 *     lease-grant TTL             prints "lease=ID ttl=N" (ID in decimal)
 *     keepalive ID [--every-ms N --count N]
 *                                 prints "ttl=N" per keepalive
 *     revoke ID
 *     watch KEY [--prefix] [--rev N] [--count N]
 *                                 prints "PUT KEY=VALUE mod=N" / "DELETE KEY mod=N" until COUNT
 *                                 events or the deadline; "ready" once etcd confirmed the watch
 *     status                      one "ENDPOINT leader=HEX member=HEX revision=N" line per endpoint
 *
 * Endpoints default to $ETCD_ENDPOINTS.  Every command prints "elapsed_ms=N"
 * on stderr.  Exit status: 0 ok, 2 -ETIMEDOUT, 3 -ENOLINK (no quorum),
 * 4 -ECONNREFUSED, 5 -ENOENT, 6 the create found the key, 1 anything else;
 * the error text (etcd_client_error()) goes to stderr as "error: ...".
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/time-util.h"
#include "cluster/etcd.h"

static uint64_t t_start;

static int exit_code(int r)
{
        switch (r) {
        case 0:
                return 0;
        case -ETIMEDOUT:
                return 2;
        case -ENOLINK:
                return 3;
        case -ECONNREFUSED:
                return 4;
        case -ENOENT:
                return 5;
        default:
                return 1;
        }
}

static int finish(struct etcd_client *c, int r)
{
        fprintf(stderr, "elapsed_ms=%" PRIu64 "\n", (clock_monotonic_us() - t_start) / 1000);
        if (r < 0)
                fprintf(stderr, "error: %s: %s\n", strerror(-r), c ? etcd_client_error(c) : "");
        return exit_code(r);
}

static const char *opt(int argc, char **argv, const char *name)
{
        for (int i = 0; i + 1 < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return argv[i + 1];
        return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
        for (int i = 0; i < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        return true;
        return false;
}

static int64_t num(const char *s, int64_t dflt)
{
        return s ? strtoll(s, NULL, 0) : dflt;
}

static void print_kv(const struct etcd_kv *kv)
{
        printf("%s=%s create=%" PRId64 " mod=%" PRId64 " version=%" PRId64 " lease=%" PRIx64 "\n", (char *)kv->key,
               (char *)kv->value, kv->create_revision, kv->mod_revision, kv->version, (uint64_t)kv->lease);
}

int main(int argc, char **argv)
{
        _cleanup_(etcd_client_freep) struct etcd_client *c = NULL;
        const char *endpoints = getenv("ETCD_ENDPOINTS"), *cmd;
        uint64_t timeout_ms = 2000, deadline;
        int i = 1, r;

        t_start = clock_monotonic_us();
        while (i < argc && argv[i][0] == '-') {
                if (strcmp(argv[i], "--endpoints") == 0 && i + 1 < argc)
                        endpoints = argv[i + 1];
                else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
                        timeout_ms = strtoull(argv[i + 1], NULL, 10);
                else {
                        fprintf(stderr, "etcd-tool: unknown option %s\n", argv[i]);
                        return 1;
                }
                i += 2;
        }
        if (i >= argc || !endpoints) {
                fprintf(stderr, "usage: etcd-tool [--endpoints URLS] [--timeout-ms N] COMMAND ARGS...\n");
                return 1;
        }
        r = etcd_client_new(endpoints, &c);
        if (r < 0) {
                fprintf(stderr, "error: bad endpoint list '%s': %s\n", endpoints, strerror(-r));
                return 1;
        }
        cmd = argv[i];
        argc -= i + 1;
        argv += i + 1;
        deadline = clock_monotonic_us() + timeout_ms * USEC_PER_MSEC;

        if (strcmp(cmd, "get") == 0 && argc >= 1) {
                struct etcd_range_result res;

                r = etcd_get(c, argv[0], flag(argc, argv, "--prefix"), deadline, &res);
                if (r >= 0) {
                        for (size_t k = 0; k < res.n_kvs; k++)
                                print_kv(&res.kvs[k]);
                        printf("count=%" PRId64 " revision=%" PRId64 "\n", res.count, res.header.revision);
                        etcd_range_result_release(&res);
                }
                return finish(c, r);
        }
        if (strcmp(cmd, "put") == 0 && argc >= 2) {
                int64_t rev = 0;

                r = etcd_put(c, argv[0], argv[1], strlen(argv[1]), num(opt(argc, argv, "--lease"), 0), deadline,
                             &rev);
                if (r >= 0)
                        printf("revision=%" PRId64 "\n", rev);
                return finish(c, r);
        }
        if (strcmp(cmd, "del") == 0 && argc >= 1) {
                int64_t n = 0;

                r = etcd_delete(c, argv[0], flag(argc, argv, "--prefix"), deadline, &n);
                if (r >= 0)
                        printf("deleted=%" PRId64 "\n", n);
                return finish(c, r);
        }
        if (strcmp(cmd, "create") == 0 && argc >= 2) {
                struct etcd_txn *t = etcd_txn_new();
                struct etcd_txn_result res;

                if (!t || etcd_txn_cmp_int(t, argv[0], ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0) < 0 ||
                    etcd_txn_put(t, true, argv[0], argv[1], strlen(argv[1]), num(opt(argc, argv, "--lease"), 0)) <
                            0 ||
                    etcd_txn_get(t, false, argv[0], false) < 0) {
                        etcd_txn_free(t);
                        return finish(c, -ENOMEM);
                }
                r = etcd_txn_commit(c, t, deadline, &res);
                etcd_txn_free(t);
                if (r < 0)
                        return finish(c, r);
                if (res.succeeded) {
                        printf("created revision=%" PRId64 "\n", res.header.revision);
                } else {
                        const struct etcd_range_result *g = etcd_txn_result_range(&res, 0);

                        printf("exists %s\n", g && g->n_kvs ? (char *)g->kvs[0].value : "");
                        r = 1;
                }
                etcd_txn_result_release(&res);
                if (r == 1) {
                        finish(c, 0);
                        return 6;
                }
                return finish(c, 0);
        }
        if (strcmp(cmd, "lease-grant") == 0 && argc >= 1) {
                int64_t id = 0, ttl = 0;

                r = etcd_lease_grant(c, num(argv[0], 0), deadline, &id, &ttl);
                if (r >= 0)
                        printf("lease=%" PRId64 " ttl=%" PRId64 "\n", id, ttl);
                return finish(c, r);
        }
        if (strcmp(cmd, "keepalive") == 0 && argc >= 1) {
                int64_t every = num(opt(argc, argv, "--every-ms"), 0), count = num(opt(argc, argv, "--count"), 1);

                for (int64_t k = 0; k < count; k++) {
                        int64_t ttl = 0;

                        if (k > 0) {
                                struct timespec ts = { .tv_sec = every / 1000, .tv_nsec = every % 1000 * 1000000 };

                                nanosleep(&ts, NULL);
                        }
                        deadline = clock_monotonic_us() + timeout_ms * USEC_PER_MSEC;
                        r = etcd_lease_keepalive(c, num(argv[0], 0), deadline, &ttl);
                        if (r < 0)
                                return finish(c, r);
                        printf("ttl=%" PRId64 "\n", ttl);
                        fflush(stdout);
                }
                return finish(c, 0);
        }
        if (strcmp(cmd, "revoke") == 0 && argc >= 1)
                return finish(c, etcd_lease_revoke(c, num(argv[0], 0), deadline));
        if (strcmp(cmd, "watch") == 0 && argc >= 1) {
                _cleanup_(etcd_watch_freep) struct etcd_watch *w = NULL;
                int64_t want = num(opt(argc, argv, "--count"), 1), got = 0;
                bool ready = false;

                r = etcd_watch_new(c, argv[0], flag(argc, argv, "--prefix"), num(opt(argc, argv, "--rev"), 0), &w);
                if (r < 0)
                        return finish(c, r);
                while (got < want) {
                        struct etcd_watch_response resp;
                        /* Short slices, so "ready" is printed as soon as etcd confirms. */
                        uint64_t slice = MIN(deadline, clock_monotonic_us() + 50 * USEC_PER_MSEC);

                        r = etcd_watch_next(w, slice, &resp);
                        if (!ready && etcd_watch_established(w)) {
                                printf("ready\n");
                                fflush(stdout);
                                ready = true;
                        }
                        if (r < 0) {
                                fprintf(stderr, "error: %s: %s\n", strerror(-r), etcd_watch_error(w));
                                return finish(NULL, r);
                        }
                        if (r == 0) {
                                if (clock_monotonic_us() >= deadline) {
                                        fprintf(stderr, "watch: %" PRId64 " of %" PRId64 " events; %s\n", got,
                                                want, etcd_watch_error(w));
                                        return finish(NULL, -ETIMEDOUT);
                                }
                                continue;
                        }
                        for (size_t k = 0; k < resp.n_events; k++, got++) {
                                const struct etcd_event *e = &resp.events[k];

                                if (e->type == ETCD_EVENT_PUT)
                                        printf("PUT %s=%s mod=%" PRId64 "\n", (char *)e->kv.key, (char *)e->kv.value,
                                               e->kv.mod_revision);
                                else
                                        printf("DELETE %s mod=%" PRId64 "\n", (char *)e->kv.key, e->kv.mod_revision);
                        }
                        fflush(stdout);
                        etcd_watch_response_release(&resp);
                }
                if (etcd_watch_error(w)[0])
                        fprintf(stderr, "watch: recovered from: %s\n", etcd_watch_error(w));
                return finish(NULL, 0);
        }
        if (strcmp(cmd, "status") == 0) {
                int worst = 0;

                for (size_t k = 0; k < etcd_client_n_endpoints(c); k++) {
                        struct etcd_status st;

                        r = etcd_member_status(c, k, clock_monotonic_us() + timeout_ms * USEC_PER_MSEC, &st);
                        if (r < 0) {
                                printf("%s error %s\n", etcd_client_endpoint(c, k), etcd_client_error(c));
                                worst = r;
                                continue;
                        }
                        printf("%s leader=%" PRIx64 " member=%" PRIx64 " revision=%" PRId64 " version=%s%s%s\n",
                               etcd_client_endpoint(c, k), st.leader, st.header.member_id, st.header.revision,
                               st.version, st.errors[0] ? " errors=" : "", st.errors);
                }
                return finish(NULL, worst);
        }
        fprintf(stderr, "etcd-tool: unknown command or missing arguments: %s\n", cmd);
        return 1;
}
