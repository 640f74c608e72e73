/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cowctl: drive the CoW engine by hand or from scripts, without vssd.  Each
 * invocation opens the diff area, does one thing and closes it cleanly, so
 * it doubles as a recovery check (opening replays and validates the journal).
 *
 *   cowctl init DIFF ORIGIN [--chunk 16k] [--max 1G|unbounded]
 *   cowctl snapshot DIFF ORIGIN [GUID]     prints the new snapshot's GUID
 *   cowctl delete DIFF ORIGIN GUID
 *   cowctl list DIFF ORIGIN
 *   cowctl read DIFF ORIGIN GUID OFF LEN   raw bytes to stdout
 *   cowctl write DIFF ORIGIN OFF           stdin to the origin, through the CoW
 *   cowctl set-max DIFF ORIGIN SIZE|unbounded
 *   cowctl stats DIFF ORIGIN
 *
 * Errors name the HRESULT (hex and symbolic) and exit 1.
 */

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "basic/macro.h"
#include "basic/size-util.h"
#include "cow/cow-hresult.h"
#include "cow/cow.h"
#include "vss/vss.h"

static int fail(int r, const char *what)
{
        vss_hresult hr = cow_errno_to_hresult(r);

        fprintf(stderr, "cowctl: %s: %s (0x%08" PRIX32 " %s)\n", what, strerror(-r), (uint32_t) hr,
                vss_hresult_name(hr));
        return EXIT_FAILURE;
}

static int usage_error(const char *msg)
{
        fprintf(stderr, "cowctl: %s (0x%08" PRIX32 " %s)\nRun 'cowctl --help'.\n", msg,
                (uint32_t) VSS_E_INVALIDARG, vss_hresult_name(VSS_E_INVALIDARG));
        return EXIT_FAILURE;
}

/* A size of basic/size-util.h, or "unbounded". */
static int parse_size(const char *s, uint64_t *ret)
{
        if (strcasecmp(s, "unbounded") == 0) {
                *ret = COW_MAX_UNBOUNDED;
                return 0;
        }
        return size_parse(s, ret);
}

static void print_event(const struct cow_event *ev, void *userdata)
{
        static const char *names[] = { "evicted", "invalidated", "lost" };
        vss_id id;
        char b[VSS_ID_STRING_MAX];

        memcpy(id.bytes, ev->guid, 16);
        fprintf(stderr, "cowctl: snapshot %s %s\n", vss_id_format(&id, b),
                ev->type < ARRAY_SIZE(names) ? names[ev->type] : "?");
}

struct ctx {
        struct cow_io *origin, *diff;
        struct cow_volume *v;
};

static int open_all(struct ctx *c, const char *diff, const char *origin, bool create_diff, bool open_volume)
{
        int r;

        r = cow_io_open_file(origin, false, false, &c->origin);
        if (r < 0)
                return fail(r, origin);
        r = cow_io_open_file(diff, create_diff, false, &c->diff);
        if (r < 0)
                return fail(r, diff);
        if (open_volume) {
                r = cow_open(c->origin, c->diff, print_event, NULL, &c->v);
                if (r < 0)
                        return fail(r, r == -EINVAL ? "open diff area (ORIGIN is not the size it was made for)" : "open diff area");
        }
        return 0;
}

static void close_all(struct ctx *c)
{
        c->v = cow_close(c->v);
        c->diff = cow_io_free(c->diff);
        c->origin = cow_io_free(c->origin);
}

static int parse_guid(const char *s, uint8_t g[16])
{
        vss_id id;

        if (vss_id_parse(s, &id) < 0)
                return -EINVAL;
        memcpy(g, id.bytes, 16);
        return 0;
}

static void help(void)
{
        printf("cowctl init DIFF ORIGIN [--chunk 16k] [--max 1G|unbounded]\n"
               "cowctl snapshot DIFF ORIGIN [GUID]\n"
               "cowctl delete DIFF ORIGIN GUID\n"
               "cowctl list DIFF ORIGIN\n"
               "cowctl read DIFF ORIGIN GUID OFF LEN\n"
               "cowctl write DIFF ORIGIN OFF  (data on stdin)\n"
               "cowctl set-max DIFF ORIGIN SIZE|unbounded\n"
               "cowctl stats DIFF ORIGIN\n");
}

static int run(int argc, char **argv, uint64_t chunk, uint64_t max, struct ctx *c)
{
        const char *cmd = argv[0];
        uint8_t g[16];
        int r;

        if (argc < 3)
                return usage_error("DIFF and ORIGIN are required");

        if (streq(cmd, "init")) {
                struct cow_format_params p = { .chunk_size = (uint32_t) chunk, .max_bytes = max };
                if (argc != 3)
                        return usage_error("init takes DIFF ORIGIN");
                if (chunk > COW_CHUNK_MAX)
                        return usage_error("--chunk must be a power of two from 4k to 1M");
                r = open_all(c, argv[1], argv[2], true, false);
                if (r)
                        return r;
                r = cow_format(c->origin, c->diff, &p);
                if (r == -EINVAL)
                        return usage_error("--chunk must be a power of two from 4k to 1M");
                if (r < 0)
                        return fail(r, "format");
                return 0;
        }

        r = open_all(c, argv[1], argv[2], false, true);
        if (r)
                return r;

        if (streq(cmd, "snapshot")) {
                vss_id id;
                char b[VSS_ID_STRING_MAX];
                if (argc > 4)
                        return usage_error("snapshot takes DIFF ORIGIN [GUID]");
                if (argc == 4) {
                        if (parse_guid(argv[3], id.bytes) < 0)
                                return usage_error("bad GUID");
                } else
                        vss_id_generate(&id);
                r = cow_snapshot_create(c->v, id.bytes);
                if (r < 0)
                        return fail(r, "create snapshot");
                printf("%s\n", vss_id_format(&id, b));
        } else if (streq(cmd, "delete")) {
                if (argc != 4 || parse_guid(argv[3], g) < 0)
                        return usage_error("delete takes DIFF ORIGIN GUID");
                r = cow_snapshot_delete(c->v, g);
                if (r < 0)
                        return fail(r, "delete snapshot");
        } else if (streq(cmd, "list")) {
                _cleanup_free_ struct cow_snapshot_info *l = NULL;
                size_t n;
                r = cow_snapshot_list(c->v, &l, &n);
                if (r < 0)
                        return fail(r, "list");
                for (size_t i = 0; i < n; i++) {
                        vss_id id;
                        char b[VSS_ID_STRING_MAX], t[64];
                        time_t sec = (time_t) (l[i].ctime_ns / 1000000000ULL);
                        struct tm tm;
                        memcpy(id.bytes, l[i].guid, 16);
                        strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", gmtime_r(&sec, &tm));
                        printf("%s seq=%" PRIu32 " created=%sZ copies=%" PRIu64 "\n", vss_id_format(&id, b),
                               l[i].seq, t, l[i].copies);
                }
        } else if (streq(cmd, "read")) {
                _cleanup_free_ uint8_t *buf = NULL;
                uint64_t off, len;
                if (argc != 6 || parse_guid(argv[3], g) < 0 || parse_size(argv[4], &off) < 0 ||
                    parse_size(argv[5], &len) < 0 || len == COW_MAX_UNBOUNDED)
                        return usage_error("read takes DIFF ORIGIN GUID OFF LEN");
                buf = malloc(1 << 20);
                if (!buf)
                        return fail(-ENOMEM, "read");
                while (len > 0) {
                        size_t n = (size_t) MIN(len, (uint64_t) 1 << 20);
                        r = cow_snapshot_read(c->v, g, buf, n, off);
                        if (r < 0)
                                return fail(r, "read snapshot");
                        if (fwrite(buf, 1, n, stdout) != n)
                                return fail(-EIO, "stdout");
                        off += n;
                        len -= n;
                }
        } else if (streq(cmd, "write")) {
                _cleanup_free_ uint8_t *buf = NULL;
                uint64_t off;
                size_t n;
                if (argc != 4 || parse_size(argv[3], &off) < 0 || off == COW_MAX_UNBOUNDED)
                        return usage_error("write takes DIFF ORIGIN OFF");
                buf = malloc(1 << 20);
                if (!buf)
                        return fail(-ENOMEM, "write");
                while ((n = fread(buf, 1, 1 << 20, stdin)) > 0) {
                        r = cow_write(c->v, buf, n, off);
                        if (r < 0)
                                return fail(r, "write origin");
                        off += n;
                }
                r = cow_flush(c->v);
                if (r < 0)
                        return fail(r, "flush origin");
        } else if (streq(cmd, "set-max")) {
                uint64_t m;
                if (argc != 4 || parse_size(argv[3], &m) < 0 || m == 0)
                        return usage_error("set-max takes DIFF ORIGIN SIZE|unbounded");
                r = cow_set_max(c->v, m);
                if (r < 0)
                        return fail(r, "set maximum size");
        } else if (streq(cmd, "stats")) {
                struct cow_stats st;
                r = cow_stats(c->v, &st);
                if (r < 0)
                        return fail(r, "stats");
                printf("chunk_size %" PRIu32 "\norigin_bytes %" PRIu64 "\nsnapshots %" PRIu32 "\n"
                       "used_bytes %" PRIu64 "\nallocated_bytes %" PRIu64 "\n", st.chunk_size, st.origin_bytes,
                       st.snapshots, st.used_bytes, st.allocated_bytes);
                if (st.max_bytes == COW_MAX_UNBOUNDED)
                        printf("max_bytes unbounded\n");
                else
                        printf("max_bytes %" PRIu64 "\n", st.max_bytes);
        } else
                return usage_error("unknown command");
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "chunk", required_argument, NULL, 'c' },
                { "max", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct ctx c = {};
        uint64_t chunk = COW_CHUNK_DEFAULT, max = COW_MAX_UNBOUNDED;
        int o, r;

        while ((o = getopt_long(argc, argv, "c:m:h", opts, NULL)) >= 0) {
                switch (o) {
                case 'c':
                        if (parse_size(optarg, &chunk) < 0 || chunk == COW_MAX_UNBOUNDED)
                                return usage_error("bad --chunk");
                        break;
                case 'm':
                        if (parse_size(optarg, &max) < 0 || max == 0)
                                return usage_error("bad --max");
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return usage_error("bad option");
                }
        }
        if (optind >= argc)
                return usage_error("a command is required");
        r = run(argc - optind, argv + optind, chunk, max, &c);
        close_all(&c);
        return r;
}
