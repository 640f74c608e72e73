/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsswriter: hosts writers whose event handlers are shell commands.
 *
 * Each writer (from the command line, or one per [writer] section of the
 * config files) gets its own vss_writer, hence its own connection to vssd,
 * and its own thread running vss_writer_run(): a slow hook of one writer never
 * delays another's Freeze.  Every event goes through one handler that looks
 * up the writer's hook for it and runs it with the event's time budget minus
 * a margin (hook.c), turning a non-zero exit into a veto.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(): SIGTERM/SIGINT stop all writers (closing their
 * connections unsubscribes them) and exit 0; a writer thread that loses its
 * connection raises SIGUSR1, and the main thread then stops the others and
 * exits 1, so a service manager restarts us when vssd comes back.
 */

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "basic/macro.h"
#include "config.h"
#include "hook.h"
#include "vss/writer.h"
#include "vss/writer.h"

struct host_writer {
        struct writer_conf *conf;
        vss_writer *w;
        pthread_t thread;
        bool started;
        vss_hresult result;
        char detail[1024];
};

static void print_hr(const char *prefix, vss_hresult hr, const char *detail)
{
        fprintf(stderr, "vsswriter: %s: 0x%08X %s: %s%s%s\n", prefix, (uint32_t)hr, vss_hresult_name(hr),
                vss_hresult_message(hr), detail && *detail ? " " : "", detail && *detail ? detail : "");
}

static char *join_lines(vss_writer *w, bool devices)
{
        size_t n = vss_writer_get_volume_count(w), len = 0;
        char *s = calloc(1, 1);

        for (size_t i = 0; s && i < n; i++) {
                const char *v = vss_writer_get_volume(w, i), *d = NULL;
                char *ns;
                size_t add;

                if (!v)
                        continue;
                if (devices) {
                        d = vss_writer_get_snapshot_device(w, v);
                        if (!d)
                                continue;
                }
                add = strlen(v) + (d ? strlen(d) + 1 : 0) + 1;
                ns = realloc(s, len + add + 1);
                if (!ns) {
                        free(s);
                        return NULL;
                }
                s = ns;
                len += (size_t)snprintf(s + len, add + 1, "%s%s%s%s", len ? "\n" : "", v, d ? "\t" : "",
                                        d ? d : "");
        }
        return s;
}

static bool on_event(vss_writer *w, void *userdata)
{
        struct host_writer *hw = userdata;
        enum vss_event e = vss_writer_get_current_event(w);
        _cleanup_free_ char *vols = NULL, *devs = NULL, *env_event = NULL, *env_set = NULL, *env_name = NULL,
                            *env_vols = NULL, *env_devs = NULL;
        struct hook_result res;
        char set[VSS_ID_STRING_MAX] = "";
        int64_t left, budget;
        vss_id set_id;
        const char *cmd;
        int r;

        if (e >= _VSS_EVENT_MAX || !(cmd = hw->conf->hooks[e]))
                return true;

        vss_writer_get_snapshot_set_id(w, &set_id);
        if (!vss_id_is_null(&set_id))
                vss_id_format(&set_id, set);
        vols = join_lines(w, false);
        devs = join_lines(w, true);
        if (!vols || !devs || asprintf(&env_event, "VSS_EVENT=%s", vss_event_name(e)) < 0 ||
            asprintf(&env_set, "VSS_SNAPSHOT_SET_ID=%s", set) < 0 ||
            asprintf(&env_name, "VSS_WRITER_NAME=%s", hw->conf->name) < 0 ||
            asprintf(&env_vols, "VSS_VOLUMES=%s", vols) < 0 ||
            asprintf(&env_devs, "VSS_SNAPSHOT_DEVICES=%s", devs) < 0) {
                vss_writer_set_failure(w, VSS_E_WRITERERROR_OUTOFRESOURCES);
                vss_writer_set_failure_message(w, "vsswriter: out of memory");
                return false;
        }
        char *env[] = { env_event, env_set, env_name, env_vols, devs[0] ? env_devs : NULL, NULL };

        left = vss_writer_get_time_left_ms(w);
        budget = left == INT64_MAX ? -1 : MAX(left - HOOK_MARGIN_MS, (int64_t)0);

        r = hook_run(cmd, env, budget, &res);
        if (r < 0) {
                char msg[512];
                snprintf(msg, sizeof(msg), "cannot run hook: %s", strerror(-r));
                res.failure = VSS_E_WRITERERROR_NONRETRYABLE;
                snprintf(res.message, sizeof(res.message), "%s", msg);
        }
        if (res.failure == VSS_S_OK)
                return true;

        fprintf(stderr, "vsswriter: writer '%s': %s hook failed: 0x%08X %s: %s\n", hw->conf->name,
                vss_event_name(e), (uint32_t)res.failure, vss_hresult_name(res.failure), res.message);
        vss_writer_set_failure(w, res.failure);
        vss_writer_set_failure_message(w, res.message);
        return false;
}

static void *writer_thread(void *userdata)
{
        struct host_writer *hw = userdata;

        hw->result = vss_writer_run(hw->w);
        if (VSS_FAILED(hw->result)) {
                snprintf(hw->detail, sizeof(hw->detail), "%s", vss_writer_get_error_detail(hw->w));
                kill(getpid(), SIGUSR1);
        }
        return NULL;
}

static const char *const hook_flags[_VSS_EVENT_MAX] = {
        "on-identify", "on-prepare-backup", "on-prepare-snapshot", "on-freeze", "on-thaw",
        "on-post-snapshot", "on-backup-complete", "on-abort", "on-backup-shutdown", "on-pre-restore",
        "on-post-restore",
};

static void usage(FILE *f)
{
        fputs("Usage: vsswriter --name NAME [--id GUID] --volume PATH... [--freeze-timeout MS]\n"
              "                 [--on-identify CMD] [--on-prepare-backup CMD] [--on-prepare-snapshot CMD]\n"
              "                 [--on-freeze CMD] [--on-thaw CMD] [--on-post-snapshot CMD]\n"
              "                 [--on-backup-complete CMD] [--on-abort CMD] [--on-backup-shutdown CMD]\n"
              "                 [--on-pre-restore CMD] [--on-post-restore CMD] [--socket PATH]\n"
              "       vsswriter --config FILE|DIR [--socket PATH]\n"
              "\n"
              "Hosts VSS writers whose event handlers are shell commands (see vsswriter(8)).\n\n"
              "  --name=NAME                the writer's name (1..255 bytes)\n"
              "  --id=GUID                  the writer id (default: derived from the name)\n"
              "  --volume=PATH              a path of the writer's data (repeatable)\n"
              "  --freeze-timeout=MS        how long the writer may stay frozen (1..3600000)\n",
              f);
        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                fprintf(f, "  --%s=CMD%*s run CMD at %s\n", hook_flags[i], (int)(20 - strlen(hook_flags[i])), "",
                        vss_event_name((enum vss_event)i));
        fputs("  --config=FILE|DIR          writers from an INI file, or every *.conf of DIR\n"
              "  --socket=PATH              vssd's socket (default $VSS_SOCKET, else /run/openvss/vssd.sock)\n"
              "  -h, --help                 print this help\n", f);
}

static _noreturn_ void usage_error(const char *fmt, const char *arg)
{
        fputs("vsswriter: ", stderr);
        fprintf(stderr, fmt, arg);
        fputs("\n", stderr);
        usage(stderr);
        exit(2);
}

enum {
        ARG_SOCKET = 0x100,
        ARG_CONFIG,
        ARG_FREEZE_TIMEOUT,
        ARG_HOOK_FIRST, /* + enum vss_event */
};

int main(int argc, char **argv)
{
        struct option opts[8 + _VSS_EVENT_MAX] = {
                { "name", required_argument, NULL, 'n' },
                { "id", required_argument, NULL, 'i' },
                { "volume", required_argument, NULL, 'v' },
                { "freeze-timeout", required_argument, NULL, ARG_FREEZE_TIMEOUT },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "help", no_argument, NULL, 'h' },
        };
        struct writer_list list = { 0 };
        struct writer_conf *cli = NULL;
        struct host_writer *hosts = NULL;
        const char *socket_path = NULL, *config = NULL;
        bool cli_used = false, lost = false;
        char err[1024];
        sigset_t sigs;
        int c, r, exit_code = 0;

        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                opts[7 + i] = (struct option){ hook_flags[i], required_argument, NULL, ARG_HOOK_FIRST + i };

        cli = writer_conf_new("command line");
        if (!cli) {
                fprintf(stderr, "vsswriter: out of memory\n");
                return 1;
        }
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
                const char *key = NULL;

                switch (c) {
                case 'h':
                        usage(stdout);
                        writer_conf_free(cli);
                        return 0;
                case 'n': key = "name"; break;
                case 'i': key = "id"; break;
                case 'v': key = "volume"; break;
                case ARG_FREEZE_TIMEOUT: key = "freeze_timeout_ms"; break;
                case ARG_SOCKET:
                        socket_path = optarg;
                        continue;
                case ARG_CONFIG:
                        if (config)
                                usage_error("--config given twice%s", "");
                        config = optarg;
                        continue;
                case ':':
                        usage_error("option '%s' needs an argument", argv[optind - 1]);
                case '?':
                        usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        if (c >= ARG_HOOK_FIRST && c < ARG_HOOK_FIRST + _VSS_EVENT_MAX) {
                                static char k[32];
                                snprintf(k, sizeof(k), "%s", hook_flags[c - ARG_HOOK_FIRST]);
                                for (char *p = k; *p; p++)
                                        if (*p == '-')
                                                *p = '_';
                                key = k;
                                break;
                        }
                        usage_error("unknown option '%s'", argv[optind - 1]);
                }
                cli_used = true;
                if (writer_conf_set(cli, key, optarg, err, sizeof(err)) < 0)
                        usage_error("%s", err);
        }
        if (optind < argc)
                usage_error("unexpected argument '%s'", argv[optind]);
        if (config && cli_used)
                usage_error("--config cannot be combined with writer flags%s", "");
        if (!config) {
                if (!cli->name)
                        usage_error("--name is required (or use --config)%s", "");
                if (cli->n_volumes == 0)
                        usage_error("at least one --volume is required%s", "");
                if (writer_list_add(&list, TAKE_PTR(cli)) < 0) {
                        fprintf(stderr, "vsswriter: out of memory\n");
                        return 1;
                }
        } else {
                writer_conf_free(TAKE_PTR(cli));
                r = config_load(config, &list, err, sizeof(err));
                if (r < 0) {
                        fprintf(stderr, "vsswriter: %s\n", err);
                        writer_list_done(&list);
                        return 2;
                }
                if (list.n == 0) {
                        fprintf(stderr, "vsswriter: %s defines no [writer] section\n", config);
                        writer_list_done(&list);
                        return 2;
                }
        }

        /* Before any thread exists, so that every thread inherits the mask. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);

        hosts = calloc(list.n, sizeof(*hosts));
        if (!hosts) {
                fprintf(stderr, "vsswriter: out of memory\n");
                writer_list_done(&list);
                return 1;
        }
        for (size_t i = 0; i < list.n; i++) {
                struct writer_conf *wc = list.items[i];
                struct vss_writer_options o = {
                        .name = wc->name,
                        .writer_id = wc->has_id ? &wc->id : NULL,
                        .volumes = (const char *const *)wc->volumes,
                        .freeze_timeout_ms = wc->freeze_timeout_ms,
                        .usage = VSS_UT_USERDATA,
                        .source = VSS_ST_OTHER,
                        .socket_path = socket_path,
                };
                struct vss_writer_handlers h = {
                        on_event, on_event, on_event, on_event, on_event, on_event,
                        on_event, on_event, on_event, on_event, on_event,
                };
                vss_hresult hr;
                char what[512];

                hosts[i].conf = wc;
                hr = vss_writer_new(&o, &h, &hosts[i], &hosts[i].w);
                if (VSS_SUCCEEDED(hr))
                        hr = vss_writer_subscribe(hosts[i].w);
                if (VSS_FAILED(hr)) {
                        snprintf(what, sizeof(what), "cannot register writer '%s' (%s)", wc->name, wc->origin);
                        print_hr(what, hr, vss_writer_get_error_detail(hosts[i].w));
                        exit_code = 1;
                        break;
                }
                vss_id id, inst;
                char ids[VSS_ID_STRING_MAX], insts[VSS_ID_STRING_MAX];
                vss_writer_get_writer_id(hosts[i].w, &id);
                vss_writer_get_instance_id(hosts[i].w, &inst);
                fprintf(stderr, "vsswriter: writer '%s' registered: id %s, instance %s\n", wc->name,
                        vss_id_format(&id, ids), vss_id_format(&inst, insts));
        }
        for (size_t i = 0; exit_code == 0 && i < list.n; i++) {
                r = pthread_create(&hosts[i].thread, NULL, writer_thread, &hosts[i]);
                if (r != 0) {
                        fprintf(stderr, "vsswriter: cannot start a thread: %s\n", strerror(r));
                        exit_code = 1;
                        break;
                }
                hosts[i].started = true;
        }

        while (exit_code == 0) {
                int sig;

                if (sigwait(&sigs, &sig) != 0)
                        continue;
                if (sig == SIGUSR1) {
                        lost = true;
                        exit_code = 1;
                } else
                        break;
        }

        for (size_t i = 0; i < list.n; i++)
                if (hosts[i].started)
                        vss_writer_stop(hosts[i].w);
        for (size_t i = 0; i < list.n; i++) {
                if (hosts[i].started)
                        pthread_join(hosts[i].thread, NULL);
                if (lost && VSS_FAILED(hosts[i].result)) {
                        char what[512];
                        snprintf(what, sizeof(what), "writer '%s' lost its connection to vssd, exiting",
                                 hosts[i].conf->name);
                        print_hr(what, hosts[i].result, hosts[i].detail);
                }
                hosts[i].w = vss_writer_free(hosts[i].w);
        }
        free(hosts);
        writer_list_done(&list);
        return exit_code;
}
