/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * snapset: what does the service add on top of a btrfs snapshot?
 *
 * One run measures, on one btrfs volume served by a running vssd:
 *
 *   raw     btrfs_util_create_snapshot(READ_ONLY) of the volume, done here in
 *           this process: the floor any service on btrfs pays;
 *   set     a whole snapshot set through libvss with 0, 10 and 100 writers:
 *           StartSnapshotSet, AddToSnapshotSet, PrepareForBackup and
 *           DoSnapshotSet (GatherWriterMetadata is timed apart, as "gather");
 *   freeze  each writer runs in its own thread of this process and records
 *           CLOCK_MONOTONIC in its Freeze and Thaw handlers; the window is the
 *           longest Freeze->Thaw of any writer.
 *
 * Every repetition measures raw then set for each writer count, one pair
 * after the other (interleaved, rotating the order of the writer counts), so
 * drift of this shared VM hits all of them alike; overhead = set - raw of the
 * same pair.  Medians over the repetitions are printed against the targets
 * (100 writers: overhead < 50 ms, freeze window < 100 ms).  Every snapshot is
 * deleted and the file system synced outside the timed regions.
 */

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <btrfsutil.h>

#include "vss/requester.h"
#include "vss/writer.h"

#define MAX_CONFIGS 8

struct bench_writer {
        pthread_t thread;
        int index;
        const char *socket;
        const char *volume;
        atomic_bool stop;
        atomic_int ready;               /* 1 subscribed, -1 failed */
        vss_hresult hr;
        /* Written by the handler thread, read after do_snapshot_set returned
         * and the thaw was seen (see wait_thawed). */
        atomic_llong freeze_ns;
        atomic_llong thaw_ns;
};

struct sample {
        double raw_ms;
        double set_ms;
        double do_ms;
        double gather_ms;
        double freeze_ms;               /* max over writers of thaw - freeze */
        double span_ms;                 /* first freeze -> last thaw */
};

static long long now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double ms_since(long long t0)
{
        return (double)(now_ns() - t0) / 1e6;
}

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct bench_writer *bw = userdata;

        atomic_store(&bw->freeze_ns, now_ns());
        return true;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
        struct bench_writer *bw = userdata;

        atomic_store(&bw->thaw_ns, now_ns());
        return true;
}

static void *writer_thread(void *arg)
{
        struct bench_writer *bw = arg;
        const char *volumes[] = { bw->volume, NULL };
        char name[64];
        struct vss_writer_options o = {
                .name = name,
                .volumes = volumes,
                .socket_path = bw->socket,
                .usage = VSS_UT_USERDATA,
                .source = VSS_ST_OTHER,
        };
        struct vss_writer_handlers h = {
                .on_freeze = on_freeze,
                .on_thaw = on_thaw,
        };
        vss_writer *w = NULL;
        vss_hresult hr;

        snprintf(name, sizeof(name), "snapset bench writer %d", bw->index);
        hr = vss_writer_new(&o, &h, bw, &w);
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_subscribe(w);
        bw->hr = hr;
        atomic_store(&bw->ready, VSS_SUCCEEDED(hr) ? 1 : -1);
        if (VSS_FAILED(hr)) {
                vss_writer_free(w);
                return NULL;
        }
        while (!atomic_load(&bw->stop)) {
                hr = vss_writer_dispatch(w, 50);
                if (VSS_FAILED(hr)) {
                        bw->hr = hr;
                        break;
                }
        }
        vss_writer_free(w);
        return NULL;
}

static int start_writers(struct bench_writer *ws, int n, const char *socket, const char *volume)
{
        for (int i = 0; i < n; i++) {
                memset(&ws[i], 0, sizeof(ws[i]));
                ws[i].index = i;
                ws[i].socket = socket;
                ws[i].volume = volume;
                if (pthread_create(&ws[i].thread, NULL, writer_thread, &ws[i]) != 0) {
                        fprintf(stderr, "snapset: cannot start writer thread %d\n", i);
                        return -1;
                }
        }
        for (int i = 0; i < n; i++) {
                while (atomic_load(&ws[i].ready) == 0)
                        usleep(1000);
                if (atomic_load(&ws[i].ready) < 0) {
                        fprintf(stderr, "snapset: writer %d cannot subscribe: 0x%08x %s\n", i,
                                (unsigned)ws[i].hr, vss_hresult_name(ws[i].hr));
                        return -1;
                }
        }
        return 0;
}

static void stop_writers(struct bench_writer *ws, int n)
{
        for (int i = 0; i < n; i++)
                atomic_store(&ws[i].stop, true);
        for (int i = 0; i < n; i++)
                pthread_join(ws[i].thread, NULL);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
        qsort(v, n, sizeof(double), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int fail_hr(vss_backup *b, const char *what, vss_hresult hr)
{
        fprintf(stderr, "snapset: %s failed: 0x%08x %s: %s%s%s\n", what, (unsigned)hr, vss_hresult_name(hr),
                vss_hresult_message(hr), b && *vss_backup_get_error_detail(b) ? " -- " : "",
                b ? vss_backup_get_error_detail(b) : "");
        return -1;
}

static int measure_raw(const char *volume, int seq, double *ret_ms)
{
        char path[4200];
        enum btrfs_util_error e;
        long long t0;

        snprintf(path, sizeof(path), "%s/snapset-raw-%d-%d", volume, (int)getpid(), seq);
        btrfs_util_sync(volume);
        t0 = now_ns();
        e = btrfs_util_create_snapshot(volume, path, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL);
        *ret_ms = ms_since(t0);
        if (e != BTRFS_UTIL_OK) {
                fprintf(stderr, "snapset: btrfs snapshot -r %s %s: %s (%s)\n", volume, path,
                        btrfs_util_strerror(e), strerror(errno));
                return -1;
        }
        e = btrfs_util_delete_subvolume(path, 0);
        if (e != BTRFS_UTIL_OK) {
                fprintf(stderr, "snapset: delete %s: %s (%s)\n", path, btrfs_util_strerror(e), strerror(errno));
                return -1;
        }
        btrfs_util_sync(volume);
        return 0;
}

static int measure_set(const char *socket, const char *volume, struct bench_writer *ws, int nw,
                       struct sample *s)
{
        vss_backup *b = NULL;
        vss_id set, shadow;
        vss_hresult hr;
        long long t0, t1, first_freeze = 0, last_thaw = 0;
        int32_t deleted = 0;
        int r = -1;

        for (int i = 0; i < nw; i++) {
                atomic_store(&ws[i].freeze_ns, 0);
                atomic_store(&ws[i].thaw_ns, 0);
        }
        btrfs_util_sync(volume);

        hr = vss_backup_new(socket, &b);
        if (VSS_FAILED(hr))
                return fail_hr(NULL, "connecting to vssd", hr);

        t0 = now_ns();
        hr = vss_backup_gather_writer_metadata(b);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "GatherWriterMetadata", hr);
                goto out;
        }
        s->gather_ms = ms_since(t0);

        t0 = now_ns();
        hr = vss_backup_start_snapshot_set(b, &set);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "StartSnapshotSet", hr);
                goto out;
        }
        hr = vss_backup_add_to_snapshot_set(b, volume, NULL, &shadow);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "AddToSnapshotSet", hr);
                goto out;
        }
        hr = vss_backup_prepare_for_backup(b);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "PrepareForBackup", hr);
                goto out;
        }
        t1 = now_ns();
        hr = vss_backup_do_snapshot_set(b);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "DoSnapshotSet", hr);
                goto out;
        }
        s->do_ms = ms_since(t1);
        s->set_ms = ms_since(t0);

        /* Thaw is sent before DoSnapshotSet returns, but a writer thread may
         * not have run its handler yet: wait for it (bounded). */
        s->freeze_ms = 0;
        for (int i = 0; i < nw; i++) {
                long long f, t;

                for (int k = 0; k < 5000 && atomic_load(&ws[i].thaw_ns) == 0; k++)
                        usleep(1000);
                f = atomic_load(&ws[i].freeze_ns);
                t = atomic_load(&ws[i].thaw_ns);
                if (f == 0 || t == 0) {
                        fprintf(stderr, "snapset: writer %d saw no %s\n", i, f == 0 ? "Freeze" : "Thaw");
                        goto out;
                }
                if ((double)(t - f) / 1e6 > s->freeze_ms)
                        s->freeze_ms = (double)(t - f) / 1e6;
                if (first_freeze == 0 || f < first_freeze)
                        first_freeze = f;
                if (t > last_thaw)
                        last_thaw = t;
        }
        s->span_ms = nw > 0 ? (double)(last_thaw - first_freeze) / 1e6 : 0;

        hr = vss_backup_backup_complete(b, true);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "BackupComplete", hr);
                goto out;
        }
        hr = vss_backup_delete_snapshots(b, &set, true, &deleted);
        if (VSS_FAILED(hr)) {
                fail_hr(b, "DeleteSnapshots", hr);
                goto out;
        }
        r = 0;
out:
        vss_backup_free(b);
        btrfs_util_sync(volume);
        return r;
}

static void usage(FILE *f)
{
        fprintf(f,
                "usage: snapset --volume DIR [--socket PATH] [--reps N] [--writers 0,10,100]\n"
                "Measures snapshot-set creation through vssd against a raw btrfs snapshot.\n"
                "The socket defaults to $VSS_SOCKET, then /run/openvss/vssd.sock.\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "volume", required_argument, NULL, 'v' },
                { "socket", required_argument, NULL, 's' },
                { "reps", required_argument, NULL, 'r' },
                { "writers", required_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *volume = NULL, *socket = NULL;
        int configs[MAX_CONFIGS] = { 0, 10, 100 }, nconfigs = 3, reps = 5, maxw = 0, c, seq = 0;
        struct sample *samples[MAX_CONFIGS];
        struct bench_writer *ws;
        bool pass = true;

        while ((c = getopt_long(argc, argv, "v:s:r:w:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'v':
                        volume = optarg;
                        break;
                case 's':
                        socket = optarg;
                        break;
                case 'r': {
                        char *end;
                        long v = strtol(optarg, &end, 10);

                        if (*end || v < 1 || v > 1000) {
                                fprintf(stderr, "snapset: --reps wants 1..1000, got '%s'\n", optarg);
                                return 2;
                        }
                        reps = (int)v;
                        break;
                }
                case 'w': {
                        char *copy = strdup(optarg), *save = NULL, *tok;

                        nconfigs = 0;
                        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                                char *end;
                                long v = strtol(tok, &end, 10);

                                if (*end || v < 0 || v > 1000 || nconfigs == MAX_CONFIGS) {
                                        fprintf(stderr, "snapset: bad --writers '%s'\n", optarg);
                                        free(copy);
                                        return 2;
                                }
                                configs[nconfigs++] = (int)v;
                        }
                        free(copy);
                        if (nconfigs == 0) {
                                fprintf(stderr, "snapset: --writers is empty\n");
                                return 2;
                        }
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!volume) {
                usage(stderr);
                return 2;
        }
        if (!socket)
                socket = getenv("VSS_SOCKET");
        if (btrfs_util_is_subvolume(volume) != BTRFS_UTIL_OK) {
                fprintf(stderr, "snapset: %s is not a btrfs subvolume root\n", volume);
                return 2;
        }

        for (int i = 0; i < nconfigs; i++) {
                if (configs[i] > maxw)
                        maxw = configs[i];
                samples[i] = calloc(reps, sizeof(struct sample));
                if (!samples[i])
                        return 1;
        }
        ws = calloc(maxw > 0 ? maxw : 1, sizeof(*ws));
        if (!ws)
                return 1;

        printf("snapset: volume %s, %d repetitions, writers:", volume, reps);
        for (int i = 0; i < nconfigs; i++)
                printf(" %d", configs[i]);
        printf("\n");

        for (int rep = 0; rep < reps; rep++) {
                for (int k = 0; k < nconfigs; k++) {
                        /* Rotate the order so no writer count always runs first. */
                        int ci = (k + rep) % nconfigs, nw = configs[ci];
                        struct sample *s = &samples[ci][rep];

                        if (start_writers(ws, nw, socket, volume) < 0)
                                return 1;
                        if (measure_raw(volume, seq++, &s->raw_ms) < 0 ||
                            measure_set(socket, volume, ws, nw, s) < 0) {
                                stop_writers(ws, nw);
                                return 1;
                        }
                        stop_writers(ws, nw);
                        fprintf(stderr, "  rep %d writers %3d: raw %7.2f ms  set %7.2f ms  (do %7.2f, gather %6.2f)  "
                                "freeze %7.2f ms\n", rep + 1, nw, s->raw_ms, s->set_ms, s->do_ms, s->gather_ms,
                                s->freeze_ms);
                }
        }

        printf("\nmedians over %d repetitions (ms)\n", reps);
        printf("%8s %9s %9s %9s %9s %10s %8s %10s %10s\n", "writers", "raw", "set", "do_set", "gather",
               "overhead", "ratio", "freeze", "fr.span");
        for (int i = 0; i < nconfigs; i++) {
                double raw[reps], set[reps], dos[reps], gat[reps], ovh[reps], rat[reps], frz[reps], spn[reps];
                double m_ovh, m_frz;

                for (int r = 0; r < reps; r++) {
                        struct sample *s = &samples[i][r];

                        raw[r] = s->raw_ms;
                        set[r] = s->set_ms;
                        dos[r] = s->do_ms;
                        gat[r] = s->gather_ms;
                        ovh[r] = s->set_ms - s->raw_ms;
                        rat[r] = s->raw_ms > 0 ? ovh[r] / s->raw_ms : 0;
                        frz[r] = s->freeze_ms;
                        spn[r] = s->span_ms;
                }
                m_ovh = median(ovh, reps);
                m_frz = median(frz, reps);
                printf("%8d %9.2f %9.2f %9.2f %9.2f %10.2f %7.2fx %10.2f %10.2f\n", configs[i], median(raw, reps),
                       median(set, reps), median(dos, reps), median(gat, reps), m_ovh, median(rat, reps), m_frz,
                       median(spn, reps));
                if (configs[i] == 100) {
                        bool ok_o = m_ovh < 50.0, ok_f = m_frz < 100.0;

                        printf("target (100 writers): overhead %.2f ms < 50 ms: %s; freeze window %.2f ms < 100 ms: %s\n",
                               m_ovh, ok_o ? "PASS" : "MISS", m_frz, ok_f ? "PASS" : "MISS");
                        pass = pass && ok_o && ok_f;
                }
        }
        printf("overhead = set - raw of the same repetition; ratio = overhead / raw; freeze = longest\n"
               "Freeze->Thaw of one writer; fr.span = first Freeze to last Thaw over all writers.\n");

        for (int i = 0; i < nconfigs; i++)
                free(samples[i]);
        free(ws);
        return pass ? 0 : 3;
}
