/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * example-writer: the smallest useful libvss writer.
 *
 *     example-writer [--socket PATH] [--name NAME] VOLUME...
 *
 * It plays the part of a database: at Freeze it opens a "session" (here just
 * the set id and the time, where a real writer would run FLUSH TABLES WITH
 * READ LOCK or pg_backup_start on a connection it keeps open), holds it while
 * the shadow copy is taken, and at Thaw closes that same session and attaches
 * what it learnt as backup metadata of its component.  The requester reads
 * the metadata back (see example-requester.c).  Stop it with Ctrl-C.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vss/writer.h>

struct session {
        bool open;
        vss_id set_id;
        struct timespec frozen_at;
        unsigned count;
};

static vss_writer *the_writer;

static void on_signal(int sig)
{
        (void)sig;
        vss_writer_stop(the_writer); /* async-signal-safe */
}

static bool on_freeze(vss_writer *w, void *userdata)
{
        struct session *s = userdata;
        char id[VSS_ID_STRING_MAX];

        if (s->open) {
                /* A previous set never thawed us: refuse rather than mix two sessions. */
                vss_writer_set_failure(w, VSS_E_WRITERERROR_RETRYABLE);
                vss_writer_set_failure_message(w, "a freeze session is still open");
                return false;
        }
        vss_writer_get_snapshot_set_id(w, &s->set_id);
        clock_gettime(CLOCK_MONOTONIC, &s->frozen_at);
        s->open = true;
        printf("Freeze: session opened for set %s (%lld ms left)\n", vss_id_format(&s->set_id, id),
               (long long)vss_writer_get_time_left_ms(w));
        fflush(stdout);
        return true;
}

static bool on_thaw(vss_writer *w, void *userdata)
{
        struct session *s = userdata;
        struct timespec now;
        vss_id set;
        char id[VSS_ID_STRING_MAX], md[256];
        long long held_ms;

        vss_writer_get_snapshot_set_id(w, &set);
        if (!s->open || !vss_id_equal(&set, &s->set_id)) {
                vss_writer_set_failure_message(w, "thaw without a matching freeze session");
                return false; /* VSS_E_WRITERERROR_NONRETRYABLE */
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        held_ms = (now.tv_sec - s->frozen_at.tv_sec) * 1000LL + (now.tv_nsec - s->frozen_at.tv_nsec) / 1000000;
        s->open = false;
        s->count++;
        snprintf(md, sizeof(md), "set=%s frozen_ms=%lld backups=%u", vss_id_format(&set, id), held_ms, s->count);
        if (VSS_FAILED(vss_writer_set_backup_metadata(w, "", "data", md)))
                return false;
        printf("Thaw: session closed after %lld ms, metadata \"%s\"\n", held_ms, md);
        fflush(stdout);
        return true;
}

static bool on_abort(vss_writer *w, void *userdata)
{
        struct session *s = userdata;

        (void)w;
        if (s->open)
                printf("Abort: session dropped\n");
        s->open = false;
        fflush(stdout);
        return true;
}

static bool on_post_snapshot(vss_writer *w, void *userdata)
{
        (void)userdata;
        for (size_t i = 0; i < vss_writer_get_volume_count(w); i++) {
                const char *v = vss_writer_get_volume(w, i), *d = vss_writer_get_snapshot_device(w, v);
                printf("PostSnapshot: %s -> %s\n", v, d ? d : "(no shadow)");
        }
        fflush(stdout);
        return true;
}

int main(int argc, char **argv)
{
        struct vss_writer_handlers h = {
                .on_freeze = on_freeze,
                .on_thaw = on_thaw,
                .on_abort = on_abort,
                .on_post_snapshot = on_post_snapshot,
        };
        struct vss_writer_options o = { .name = "Example Writer", .usage = VSS_UT_USERDATA,
                                        .source = VSS_ST_TRANSACTEDDB };
        struct session s = { 0 };
        struct sigaction sa = { .sa_handler = on_signal };
        vss_hresult hr;
        int i = 1;

        for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
                if (strcmp(argv[i], "--socket") == 0)
                        o.socket_path = argv[i + 1];
                else if (strcmp(argv[i], "--name") == 0)
                        o.name = argv[i + 1];
                else
                        break;
        }
        if (i >= argc || argv[i][0] == '-') {
                fprintf(stderr, "Usage: %s [--socket PATH] [--name NAME] VOLUME...\n", argv[0]);
                return 2;
        }
        o.volumes = (const char *const *)&argv[i]; /* argv is NULL-terminated */

        hr = vss_writer_new(&o, &h, &s, &the_writer);
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_add_component(the_writer, VSS_CT_FILEGROUP, "", "data", "Example data", true);
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_add_component_file(the_writer, "", "data", argv[i], "*", true);
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_subscribe(the_writer);
        if (VSS_FAILED(hr)) {
                fprintf(stderr, "example-writer: cannot subscribe: 0x%08X %s: %s\n", (uint32_t)hr,
                        vss_hresult_name(hr), vss_hresult_message(hr));
                vss_writer_free(the_writer);
                return 1;
        }
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        printf("Writer '%s' subscribed; waiting for events (Ctrl-C to stop)\n", o.name);
        fflush(stdout);

        hr = vss_writer_run(the_writer);
        if (VSS_FAILED(hr))
                fprintf(stderr, "example-writer: 0x%08X %s: %s\n", (uint32_t)hr, vss_hresult_name(hr),
                        vss_hresult_message(hr));
        the_writer = vss_writer_free(the_writer);
        return VSS_FAILED(hr) ? 1 : 0;
}
