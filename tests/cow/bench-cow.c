/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A quick engine-level benchmark (not a test): random 4 KiB writes from N
 * threads on a file-backed origin, as ratios against the same run with no
 * snapshot.  Cases: first writes with 1 snapshot (16 KiB chunks, ~4 writes per
 * chunk), worst case (4 KiB chunks, every write a fresh chunk), 32 snapshots
 * vs 1, rewrites.  Usage: bench-cow DIR [THREADS] [MiB]; COW_BENCH_WRITEBACK_MB=N
 * sets the write-back limit (cow_set_writeback(), with the thread).
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cow/cow.h"
#include "cow-test-util.h"

struct job {
        struct cow_volume *v;
        uint64_t size, nwrites, seed;
};

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *p)
{
        struct job *j = p;
        uint8_t *b;

        if (posix_memalign((void **) &b, 4096, 4096) != 0)
                abort();
        memset(b, (int) j->seed, 4096);
        for (uint64_t i = 0; i < j->nwrites; i++) {
                uint64_t blk = tu_rand(&j->seed) % (j->size / 4096);
                if (cow_write(j->v, b, 4096, blk * 4096) < 0)
                        abort();
        }
        free(b);
        return NULL;
}

/* IOPS of 'nwrites' random writes after creating 'nsnap' snapshots. */
static double run(const char *dir, uint32_t chunk, unsigned nsnap, unsigned threads, uint64_t size,
                  uint64_t nwrites, bool rewrite, uint64_t *ret_diff_used)
{
        char op[4096], dp[4096];
        struct cow_io *o, *d;
        struct cow_volume *v;
        struct cow_format_params p = { .chunk_size = chunk };
        pthread_t t[64];
        struct job jobs[64];
        struct cow_stats st;
        double t0, t1;

        snprintf(op, sizeof(op), "%s/cow-bench-origin", dir);
        snprintf(dp, sizeof(dp), "%s/cow-bench-diff", dir);
        unlink(op);
        unlink(dp);
        {
                int fd = open(op, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                uint8_t *b = calloc(1, 1 << 20);
                for (uint64_t off = 0; off < size; off += 1 << 20)
                        if (pwrite(fd, b, 1 << 20, (off_t) off) != 1 << 20)
                                abort();
                fsync(fd);
                close(fd);
                free(b);
        }
        if (cow_io_open_file(op, false, false, &o) < 0 || cow_io_open_file(dp, true, false, &d) < 0 ||
            cow_format(o, d, &p) < 0 || cow_open(o, d, NULL, NULL, &v) < 0)
                abort();
        if (getenv("COW_BENCH_WRITEBACK_MB") &&
            cow_set_writeback(v, strtoull(getenv("COW_BENCH_WRITEBACK_MB"), NULL, 10) << 20, 100) < 0)
                abort();
        for (unsigned s = 0; s < nsnap; s++) {
                uint8_t g[16];
                tu_guid(g, s + 1);
                if (cow_snapshot_create(v, g) < 0)
                        abort();
        }
        if (rewrite) {
                /* copy everything once, so the measured writes are rewrites */
                uint8_t *b = calloc(1, 1 << 20);
                for (uint64_t off = 0; off < size; off += 1 << 20)
                        cow_write(v, b, 1 << 20, off);
                free(b);
        }
        t0 = now();
        for (unsigned i = 0; i < threads; i++) {
                jobs[i] = (struct job) { .v = v, .size = size, .nwrites = nwrites / threads, .seed = i + 1 };
                pthread_create(&t[i], NULL, worker, &jobs[i]);
        }
        for (unsigned i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        cow_flush(v);
        t1 = now();
        cow_stats(v, &st);
        if (ret_diff_used)
                *ret_diff_used = st.used_bytes;
        cow_close(v);
        cow_io_free(o);
        cow_io_free(d);
        unlink(op);
        unlink(dp);
        return (double) nwrites / (t1 - t0);
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : "/tmp";
        unsigned threads = argc > 2 ? (unsigned)strtol(argv[2], NULL, 10) : 16;
        uint64_t size = (argc > 3 ? (uint64_t)strtol(argv[3], NULL, 10) : 256) << 20;
        uint64_t n = size / 4096 / 4;   /* ~4 writes per 16 KiB chunk */
        uint64_t used;
        double base, one, worst, many, re;

        if (threads == 0 || threads > 64)
                return 1;
        base = run(dir, 16384, 0, threads, size, n, false, NULL);
        one = run(dir, 16384, 1, threads, size, n, false, NULL);
        many = run(dir, 16384, 32, threads, size, n, false, NULL);
        worst = run(dir, 4096, 1, threads, size, n / 4, false, &used);
        re = run(dir, 16384, 1, threads, size, n, true, NULL);
        printf("no snapshot        %8.0f IOPS\n", base);
        printf("first write, 1 snap %7.0f IOPS  ratio %.2f\n", one, one / base);
        printf("32 snaps vs 1       %7.0f IOPS  ratio %.2f\n", many, many / one);
        printf("worst (4k chunks)   %7.0f IOPS  ratio %.2f\n", worst, worst / base);
        printf("rewrite             %7.0f IOPS  ratio %.2f\n", re, re / base);
        printf("diff used %llu bytes for <= %llu unique bytes overwritten (4k chunks)\n",
               (unsigned long long) used, (unsigned long long) (n / 4 * 4096));
        return 0;
}
