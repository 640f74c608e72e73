/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vsswriter: hosts writers whose event handlers are shell commands.
 *
 * Each writer (from the command line, or one per [writer] section of the
 * config files) gets its own vss_writer, hence its own connection to vssd,
 * and its own thread dispatching its events: a slow hook of one writer never
 * delays another's Freeze, and each writer's freeze deadline is watched by its
 * own thread (libvss looks at it whenever that thread is not inside a hook, and
 * a hook never outlives the event's time).  Every event goes through one
 * handler that looks up the writer's hook for it and runs it with the event's
 * time budget minus a margin (hook.c), turning a non-zero exit into a veto.
 *
 * What a hook gets besides the event (docs/vsswriter.md): the components of
 * the event, a directory where backup hooks leave backup metadata (one file
 * per component, attached to the reply when the hook succeeds) and where
 * restore hooks find it again, the file restore status and new targets at
 * restore, and at Abort who aborted.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(): SIGTERM/SIGINT stop all writers (closing their
 * connections unsubscribes them; libvss runs the Abort hook first if a writer
 * is frozen) and exit 0.  When vssd goes away, libvss reconnects by itself and
 * the writer thread only reports it; with --no-reconnect a writer thread that
 * loses its connection raises SIGUSR1, and the main thread then stops the
 * others and exits 1, so that a service manager restarts us.
 */

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "basic/fs-util.h"
#include "config.h"
#include "hook.h"
#include "tools/common/tools-common.h"
#include "vss/writer.h"

#define METADATA_MAX (256 * 1024)
/* One environment string may be at most 128 KiB (MAX_ARG_STRLEN); larger metadata
 * reaches restore hooks as a file only. */
#define METADATA_ENV_MAX (64 * 1024)

struct host_writer {
        struct writer_conf *conf;
        vss_writer *w;
        pthread_t thread;
        bool started;
        atomic_bool stopping;
        vss_hresult result;
        char detail[1024];
};

static void print_hr(const char *prefix, vss_hresult hr, const char *detail)
{
        fprintf(stderr, "vsswriter: %s: 0x%08X %s: %s%s%s\n", prefix, (uint32_t)hr, vss_hresult_name(hr),
                vss_hresult_message(hr), detail && *detail ? " " : "", detail && *detail ? detail : "");
}

/* ---- the hook's environment ---- */

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

/* The components an event is about: those it names (restore, component mode), else
 * every component the writer declares (volume mode backs them all up). */
struct comp {
        const char *logical_path;
        const char *name;
};

static size_t event_components(vss_writer *w, struct host_writer *hw, struct comp *ret, size_t max)
{
        size_t n = vss_writer_get_event_component_count(w), k = 0;

        if (n == 0) {
                for (size_t i = 0; i < hw->conf->n_components && k < max; i++)
                        ret[k++] = (struct comp){ "", hw->conf->components[i] };
                return k;
        }
        for (size_t i = 0; i < n && k < max; i++)
                if (VSS_SUCCEEDED(vss_writer_get_event_component(w, i, &ret[k].logical_path, &ret[k].name)))
                        k++;
        return k;
}

static char *component_lines(const struct comp *c, size_t n)
{
        char *s = strdup(""), *ns;

        for (size_t i = 0; s && i < n; i++) {
                /* A logical path is joined to the name with a backslash, as VSS writes them. */
                if (asprintf(&ns, "%s%s%s%s%s", s, i ? "\n" : "", c[i].logical_path, *c[i].logical_path ? "\\" : "",
                             c[i].name) < 0)
                        ns = NULL;
                free(s);
                s = ns;
        }
        return s;
}

static bool backup_event(enum vss_event e)
{
        return e >= VSS_EVENT_PREPARE_BACKUP && e <= VSS_EVENT_POST_SNAPSHOT;
}

static bool restore_event(enum vss_event e)
{
        return e == VSS_EVENT_PRE_RESTORE || e == VSS_EVENT_POST_RESTORE;
}

static int write_file(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        size_t len = strlen(text);

        if (fd < 0)
                return -errno;
        return write_all(fd, text, len);
}

/* Removes what the hook may have left in the metadata directory, and the directory. */
static void remove_dir(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (d) {
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                (void)unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        if (rmdir(dir) < 0)
                fprintf(stderr, "vsswriter: cannot remove %s: %s\n", dir, strerror(errno));
}

/* Reads dir/N (N = 1..n) the hook left, attaching each as the component's backup metadata. */
static bool take_metadata(vss_writer *w, const char *dir, const struct comp *c, size_t n, char *msg, size_t msglen)
{
        size_t total = 0;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *buf = NULL;
                _cleanup_close_ int fd = -EBADF;
                struct stat st;
                vss_hresult hr;
                ssize_t k;

                if (asprintf(&path, "%s/%zu", dir, i + 1) < 0)
                        return false;
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        snprintf(msg, msglen, "backup metadata file %zu: %s", i + 1, strerror(errno));
                        return false;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > METADATA_MAX ||
                    total + (size_t)st.st_size > METADATA_MAX) {
                        snprintf(msg, msglen, "backup metadata file %zu is not a regular file of at most 256 KiB "
                                 "(all components together)", i + 1);
                        return false;
                }
                buf = calloc(1, (size_t)st.st_size + 1);
                if (!buf)
                        return false;
                k = read(fd, buf, (size_t)st.st_size);
                if (k < 0 || (size_t)k != (size_t)st.st_size || memchr(buf, 0, (size_t)k)) {
                        snprintf(msg, msglen, "backup metadata file %zu cannot be read as text", i + 1);
                        return false;
                }
                total += (size_t)k;
                hr = vss_writer_set_backup_metadata(w, c[i].logical_path, c[i].name, buf);
                if (VSS_FAILED(hr)) {
                        snprintf(msg, msglen, "backup metadata of component '%s' refused (0x%08X %s): it must be "
                                 "UTF-8 text", c[i].name, (uint32_t)hr, vss_hresult_name(hr));
                        return false;
                }
        }
        return true;
}

static const char *abort_reason_name(enum vss_abort_reason r)
{
        switch (r) {
        case VSS_ABORT_FREEZE_DEADLINE: return "freeze-deadline";
        case VSS_ABORT_CONNECTION_LOST: return "connection-lost";
        case VSS_ABORT_SEQUENCE_ENDED: return "sequence-ended";
        default: return "vssd";
        }
}

static bool veto(vss_writer *w, struct host_writer *hw, enum vss_event e, vss_hresult failure, const char *message)
{
        fprintf(stderr, "vsswriter: writer '%s': %s hook failed: 0x%08X %s: %s\n", hw->conf->name, vss_event_name(e),
                (uint32_t)failure, vss_hresult_name(failure), message);
        vss_writer_set_failure(w, failure);
        vss_writer_set_failure_message(w, message);
        return false;
}

static bool on_event(vss_writer *w, void *userdata)
{
        struct host_writer *hw = userdata;
        enum vss_event e = vss_writer_get_current_event(w);
        _cleanup_free_ char *vols = NULL, *devs = NULL, *comp_lines = NULL, *targets = NULL;
        struct comp comps[WRITER_CONF_MAX_COMPONENTS * 4];
        char set[VSS_ID_STRING_MAX] = "", dir[64] = "", msg[HOOK_MESSAGE_MAX + 1];
        struct tool_env env = { 0 };
        struct hook_result res;
        int64_t left, budget;
        size_t n_comps;
        vss_id set_id;
        const char *cmd;
        bool ok = false;
        int r;

        if (e >= _VSS_EVENT_MAX || !(cmd = hw->conf->hooks[e]))
                return true;

        vss_writer_get_snapshot_set_id(w, &set_id);
        if (!vss_id_is_null(&set_id))
                vss_id_format(&set_id, set);
        if (e == VSS_EVENT_ABORT && vss_writer_get_abort_reason(w) != VSS_ABORT_REQUESTED)
                fprintf(stderr, "vsswriter: writer '%s': %s (set %s): running the Abort hook\n", hw->conf->name,
                        vss_writer_get_abort_reason(w) == VSS_ABORT_FREEZE_DEADLINE ?
                                "the freeze deadline passed before Thaw" :
                        vss_writer_get_abort_reason(w) == VSS_ABORT_CONNECTION_LOST ?
                                "the connection to vssd was lost while frozen" :
                                "the sequence ended without Thaw",
                        set);

        vols = join_lines(w, false);
        devs = join_lines(w, true);
        n_comps = event_components(w, hw, comps, ARRAY_SIZE(comps));
        comp_lines = component_lines(comps, n_comps);
        if (!vols || !devs || !comp_lines)
                goto oom;
        tool_env_add(&env, "VSS_EVENT=%s", vss_event_name(e));
        tool_env_add(&env, "VSS_SNAPSHOT_SET_ID=%s", set);
        tool_env_add(&env, "VSS_WRITER_NAME=%s", hw->conf->name);
        tool_env_add(&env, "VSS_VOLUMES=%s", vols);
        if (devs[0])
                tool_env_add(&env, "VSS_SNAPSHOT_DEVICES=%s", devs);
        tool_env_add(&env, "VSS_COMPONENTS=%s", comp_lines);
        tool_env_add(&env, "VSS_COMPONENT_COUNT=%zu", n_comps);
        if (e == VSS_EVENT_ABORT)
                tool_env_add(&env, "VSS_ABORT_REASON=%s", abort_reason_name(vss_writer_get_abort_reason(w)));

        if ((backup_event(e) || restore_event(e)) && n_comps > 0) {
                const char *tmp = getenv("TMPDIR");

                snprintf(dir, sizeof(dir), "%.40s/vsswriter.XXXXXX", tmp && *tmp && strlen(tmp) <= 40 ? tmp : "/tmp");
                if (!mkdtemp(dir)) {
                        snprintf(msg, sizeof(msg), "cannot create the backup metadata directory: %s", strerror(errno));
                        dir[0] = 0;
                        tool_env_done(&env);
                        return veto(w, hw, e, VSS_E_WRITERERROR_OUTOFRESOURCES, msg);
                }
                tool_env_add(&env, "VSS_BACKUP_METADATA_DIR=%s", dir);
        }
        if (restore_event(e)) {
                enum vss_file_restore_status worst = VSS_RS_ALL;

                for (size_t i = 0; i < n_comps; i++) {
                        const char *md = vss_writer_get_backup_metadata(w, comps[i].logical_path, comps[i].name);
                        char path[96];

                        if (md) {
                                snprintf(path, sizeof(path), "%s/%zu", dir, i + 1);
                                if (write_file(path, md) < 0) {
                                        snprintf(msg, sizeof(msg), "cannot write %s: %s", path, strerror(errno));
                                        goto fail_resources;
                                }
                                if (strlen(md) <= METADATA_ENV_MAX)
                                        tool_env_add(&env, "VSS_BACKUP_METADATA_%zu=%s", i + 1, md);
                        }
                        if (e == VSS_EVENT_POST_RESTORE) {
                                enum vss_file_restore_status st =
                                        vss_writer_get_file_restore_status(w, comps[i].logical_path, comps[i].name);
                                const char *name = vss_file_restore_status_name(st);

                                tool_env_add(&env, "VSS_FILE_RESTORE_STATUS_%zu=%s", i + 1, name ? name : "undefined");
                                /* The worst of them: failed, then none (or unknown), then all. */
                                if (st == VSS_RS_FAILED || (worst != VSS_RS_FAILED && st != VSS_RS_ALL))
                                        worst = st == VSS_RS_FAILED ? VSS_RS_FAILED : VSS_RS_NONE;
                        }
                }
                if (e == VSS_EVENT_POST_RESTORE)
                        tool_env_add(&env, "VSS_FILE_RESTORE_STATUS=%s",
                                vss_file_restore_status_name(n_comps ? worst : VSS_RS_UNDEFINED));
                targets = strdup("");
                for (size_t i = 0; targets && i < hw->conf->n_volumes; i++) {
                        const char *t = vss_writer_get_new_target(w, hw->conf->volumes[i]);
                        char *nt;

                        if (!t)
                                continue;
                        if (asprintf(&nt, "%s%s%s\t%s", targets, *targets ? "\n" : "", hw->conf->volumes[i], t) < 0)
                                nt = NULL;
                        free(targets);
                        targets = nt;
                }
                if (!targets)
                        goto oom;
                tool_env_add(&env, "VSS_NEW_TARGETS=%s", targets);
        }
        if (env.oom)
                goto oom;

        left = vss_writer_get_time_left_ms(w);
        budget = left == INT64_MAX ? -1 : MAX(left - HOOK_MARGIN_MS, (int64_t)0);

        r = hook_run(cmd, env.v, budget, &res);
        if (r < 0) {
                res.failure = VSS_E_WRITERERROR_NONRETRYABLE;
                snprintf(res.message, sizeof(res.message), "cannot run hook: %s", strerror(-r));
        }
        if (res.failure != VSS_S_OK) {
                ok = veto(w, hw, e, res.failure, res.message);
                goto out;
        }
        ok = true;
        if (backup_event(e) && dir[0] && !take_metadata(w, dir, comps, n_comps, msg, sizeof(msg)))
                ok = veto(w, hw, e, VSS_E_WRITERERROR_NONRETRYABLE, msg);
        goto out;

oom:
        snprintf(msg, sizeof(msg), "vsswriter: out of memory");
fail_resources:
        ok = veto(w, hw, e, VSS_E_WRITERERROR_OUTOFRESOURCES, msg);
out:
        if (dir[0])
                remove_dir(dir);
        tool_env_done(&env);
        return ok;
}

static void *writer_thread(void *userdata)
{
        struct host_writer *hw = userdata;
        bool was_connected = true;
        char ids[VSS_ID_STRING_MAX], insts[VSS_ID_STRING_MAX];
        vss_id id, inst;

        while (!atomic_load(&hw->stopping)) {
                bool connected;

                hw->result = vss_writer_dispatch(hw->w, -1);
                if (VSS_FAILED(hw->result)) {
                        /* --no-reconnect: the main thread reports it and exits 1. */
                        snprintf(hw->detail, sizeof(hw->detail), "%s", vss_writer_get_error_detail(hw->w));
                        kill(getpid(), SIGUSR1);
                        return NULL;
                }
                connected = vss_writer_is_connected(hw->w);
                if (was_connected && !connected)
                        fprintf(stderr, "vsswriter: writer '%s' lost its connection to vssd, reconnecting: %s\n",
                                hw->conf->name, vss_writer_get_error_detail(hw->w));
                else if (!was_connected && connected) {
                        vss_writer_get_writer_id(hw->w, &id);
                        vss_writer_get_instance_id(hw->w, &inst);
                        fprintf(stderr, "vsswriter: writer '%s' registered again: id %s, instance %s\n",
                                hw->conf->name, vss_id_format(&id, ids), vss_id_format(&inst, insts));
                }
                was_connected = connected;
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
        fputs("Usage: vsswriter --name NAME --volume PATH... [OPTIONS] [HOOKS]\n"
              "       vsswriter --config FILE|DIR [--socket PATH] [--no-reconnect]\n"
              "\n"
              "Hosts VSS writers whose event handlers are shell commands (see docs/vsswriter.md).\n"
              "\n"
              "Options:\n"
              "  --name NAME                   the writer's name, 1..255 bytes\n"
              "  --id GUID                     the writer id (default: derived from the name)\n"
              "  --volume PATH                 a path of the writer's data (repeatable)\n"
              "  --freeze-timeout MS           the longest Freeze..Thaw, 1..3600000 (default: vssd's)\n"
              "  --component NAME              a component over the volumes (repeatable)\n"
              "  --restore-method METHOD       restore_if_can_replace (default), restore_if_not_there,\n"
              "                                stop_restore_start, restore_to_alternate_location,\n"
              "                                restore_at_reboot, restore_at_reboot_if_cannot_replace,\n"
              "                                custom, restore_stop_start\n"
              "  --restore-service NAME        the service to stop/start (stop_restore_start, restore_stop_start)\n"
              "  --restore-user-procedure TEXT what an admin must do (custom)\n"
              "  --writer-restore WHEN         never (default), if_replace_fails, always\n"
              "  --reboot-required             a restore needs a reboot\n"
              "  --no-reconnect                exit 1 when the connection to vssd is lost (default: reconnect)\n"
              "  --socket PATH                 vssd's socket (default: $VSS_SOCKET, else /run/openvss/vssd.sock)\n"
              "  --config FILE|DIR             read [writer] sections from FILE, or DIR/*.conf\n"
              "  -h, --help                    show this help\n"
              "\n"
              "Hooks (each runs with /bin/sh -c; exit 0 = success, anything else vetoes):\n"
              "  --on-identify CMD\n"
              "  --on-prepare-backup CMD\n"
              "  --on-prepare-snapshot CMD\n"
              "  --on-freeze CMD\n"
              "  --on-thaw CMD\n"
              "  --on-post-snapshot CMD\n"
              "  --on-backup-complete CMD\n"
              "  --on-abort CMD\n"
              "  --on-backup-shutdown CMD\n"
              "  --on-pre-restore CMD\n"
              "  --on-post-restore CMD\n",
              f);
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
        ARG_NO_RECONNECT,
        ARG_KEY,        /* + index into key_flags */
        ARG_HOOK_FIRST = ARG_KEY + 0x40, /* + enum vss_event */
};

/* Flags that set a config key of the same name (dashes for underscores). */
static const struct {
        const char *flag;
        const char *key;
        bool takes_value;
} key_flags[] = {
        { "name", "name", true },
        { "id", "id", true },
        { "volume", "volume", true },
        { "freeze-timeout", "freeze_timeout_ms", true },
        { "component", "component", true },
        { "restore-method", "restore_method", true },
        { "restore-service", "restore_service", true },
        { "restore-user-procedure", "restore_user_procedure", true },
        { "writer-restore", "writer_restore", true },
        { "reboot-required", "reboot_required", false },
};

static vss_hresult start_writer(struct host_writer *hw, const char *socket_path)
{
        struct writer_conf *wc = hw->conf;
        struct vss_restore_method rm = {
                .method = wc->restore_method,
                .service = wc->restore_service,
                .user_procedure = wc->restore_user_procedure,
                .writer_restore = wc->writer_restore,
                .reboot_required = wc->reboot_required,
        };
        struct vss_writer_options o = {
                .name = wc->name,
                .writer_id = wc->has_id ? &wc->id : NULL,
                .volumes = (const char *const *)wc->volumes,
                .freeze_timeout_ms = wc->freeze_timeout_ms,
                .usage = VSS_UT_USERDATA,
                .source = VSS_ST_OTHER,
                .socket_path = socket_path,
                .restore_method = wc->has_restore_method ? &rm : NULL,
                .no_reconnect = wc->no_reconnect,
        };
        struct vss_writer_handlers h = {
                on_event, on_event, on_event, on_event, on_event, on_event,
                on_event, on_event, on_event, on_event, on_event,
        };
        vss_hresult hr;

        hr = vss_writer_new(&o, &h, hw, &hw->w);
        for (size_t i = 0; VSS_SUCCEEDED(hr) && i < wc->n_components; i++) {
                hr = vss_writer_add_component(hw->w, VSS_CT_FILEGROUP, "", wc->components[i], wc->components[i], true);
                for (size_t k = 0; VSS_SUCCEEDED(hr) && k < wc->n_volumes; k++)
                        hr = vss_writer_add_component_file(hw->w, "", wc->components[i], wc->volumes[k], "*", true);
        }
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_subscribe(hw->w);
        return hr;
}

int main(int argc, char **argv)
{
        struct option opts[ARRAY_SIZE(key_flags) + 5 + _VSS_EVENT_MAX] = {};
        struct writer_list list = { 0 };
        struct writer_conf *cli = NULL;
        struct host_writer *hosts = NULL;
        const char *socket_path = NULL, *config = NULL;
        bool cli_used = false, lost = false, no_reconnect = false;
        size_t n_opts = 0;
        char err[1024];
        sigset_t sigs;
        int c, r, exit_code = 0;

        for (size_t i = 0; i < ARRAY_SIZE(key_flags); i++)
                opts[n_opts++] = (struct option){ key_flags[i].flag,
                                                  key_flags[i].takes_value ? required_argument : no_argument, NULL,
                                                  ARG_KEY + (int)i };
        opts[n_opts++] = (struct option){ "socket", required_argument, NULL, ARG_SOCKET };
        opts[n_opts++] = (struct option){ "config", required_argument, NULL, ARG_CONFIG };
        opts[n_opts++] = (struct option){ "no-reconnect", no_argument, NULL, ARG_NO_RECONNECT };
        opts[n_opts++] = (struct option){ "help", no_argument, NULL, 'h' };
        for (int i = 0; i < _VSS_EVENT_MAX; i++)
                opts[n_opts++] = (struct option){ hook_flags[i], required_argument, NULL, ARG_HOOK_FIRST + i };

        cli = writer_conf_new("command line");
        if (!cli) {
                fprintf(stderr, "vsswriter: out of memory\n");
                return 1;
        }
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
                const char *key = NULL, *value = optarg;
                char k[32];

                switch (c) {
                case 'h':
                        usage(stdout);
                        writer_conf_free(cli);
                        return 0;
                case ARG_SOCKET:
                        socket_path = optarg;
                        continue;
                case ARG_CONFIG:
                        if (config)
                                usage_error("--config given twice%s", "");
                        config = optarg;
                        continue;
                case ARG_NO_RECONNECT:
                        no_reconnect = true;
                        continue;
                case ':':
                        usage_error("option '%s' needs an argument", argv[optind - 1]);
                case '?':
                        usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        if (c >= ARG_KEY && c < ARG_KEY + (int)ARRAY_SIZE(key_flags)) {
                                key = key_flags[c - ARG_KEY].key;
                                if (!key_flags[c - ARG_KEY].takes_value)
                                        value = "yes";
                                break;
                        }
                        if (c >= ARG_HOOK_FIRST && c < ARG_HOOK_FIRST + _VSS_EVENT_MAX) {
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
                if (writer_conf_set(cli, key, value, err, sizeof(err)) < 0)
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
        for (size_t i = 0; i < list.n; i++)
                list.items[i]->no_reconnect = list.items[i]->no_reconnect || no_reconnect;

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
                vss_hresult hr;
                char what[512];

                hosts[i].conf = wc;
                hr = start_writer(&hosts[i], socket_path);
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
                if (hosts[i].started) {
                        atomic_store(&hosts[i].stopping, true);
                        vss_writer_stop(hosts[i].w);
                }
        for (size_t i = 0; i < list.n; i++) {
                if (hosts[i].started)
                        pthread_join(hosts[i].thread, NULL);
                if (lost && VSS_FAILED(hosts[i].result)) {
                        char what[512];
                        snprintf(what, sizeof(what), "writer '%s' lost its connection to vssd, exiting",
                                 hosts[i].conf->name);
                        print_hr(what, hosts[i].result, hosts[i].detail);
                }
                /* Unsubscribing a writer that is still frozen runs its Abort hook first. */
                hosts[i].w = vss_writer_free(hosts[i].w);
        }
        free(hosts);
        writer_list_done(&list);
        return exit_code;
}
