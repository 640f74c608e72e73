/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vshadow: the requester for people and scripts, after the Windows SDK
 * sample.  One run is one backup session (vss-facts 3.1):
 *
 *   SetContext -> SetBackupState -> GatherWriterMetadata -> [ExcludeWriters]
 *   -> StartSnapshotSet -> AddToSnapshotSet... -> PrepareForBackup
 *   -> DoSnapshotSet -> [expose, run --exec CMD, unexpose] -> BackupComplete
 *   -> end of session (vssd deletes the non-persistent shadow copies)
 *
 * After every stage the writer status is checked: an involved writer in a
 * FAILED_AT_* state fails the run, and each failed writer is named with its
 * state and last error, since "which writer vetoed and why" is what the admin
 * needs.
 *
 * With -bc=FILE the run ends by saving the backup components document
 * (bc-doc.c): the set, its shadow copies, and each involved writer with its
 * components, their backup metadata, its restore method and final status.  The
 * temporary file is created before the session starts and renamed into place
 * only when everything succeeded, so a failed set writes nothing.
 *
 * -r=FILE / -rs=FILE is a restore session (vss-facts 3.3): load and validate
 * the document (a bad one stops here, before vssd hears of it), Identify,
 * select the document's components (all, or those of the -wi writers, minus
 * the -wx ones) with their stored metadata and new targets, PreRestore, CMD,
 * file restore status from CMD's exit status, PostRestore.  A writer vetoing
 * PreRestore gets no PostRestore and CMD does not run; every failure names
 * the writer and its state.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread and taken by one
 * thread with sigwait(), so no libvss call is ever interrupted half-way.
 * While the session is only talking to vssd, that thread ends the process:
 * the socket closes and vssd aborts the set and releases what the session
 * owned.  Once shadow copies are exposed and CMD runs, the signal goes to CMD
 * (run in its own process group, so every process of it gets the signal)
 * instead, and the main thread reports the backup as failed, unexposes and
 * ends the session before exiting non-zero.
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/time-util.h"
#include "bc-doc.h"
#include "tools/common/tools-common.h"
#include "vss/requester.h"

enum {
        OPT_PERSISTENT,
        OPT_NO_WRITERS,
        OPT_INCLUDE_WRITER,
        OPT_EXCLUDE_WRITER,
        OPT_EXEC,
        OPT_BACKUP_COMPONENTS,
        OPT_RESTORE,
        OPT_RESTORE_SIMULATE,
        OPT_NEW_TARGET,
        OPT_SOCKET,
        OPT_HELP,
        _OPT_MAX,
};

static const struct tool_option options[_OPT_MAX] = {
        [OPT_PERSISTENT]     = { "persistent", "p", TOOL_OPT_FLAG, NULL,
                                 "keep the shadow copies after the run (VSS_CTX_APP_ROLLBACK)" },
        [OPT_NO_WRITERS]     = { "no-writers", "nw", TOOL_OPT_FLAG, NULL, "do not involve writers" },
        [OPT_INCLUDE_WRITER] = { "include-writer", "wi", TOOL_OPT_LIST, "W",
                                 "backup: fail unless writer W (name or {id}) takes part; restore: restore only "
                                 "the components of writer W" },
        [OPT_EXCLUDE_WRITER] = { "exclude-writer", "wx", TOOL_OPT_LIST, "W", "exclude writer W (name or {id})" },
        [OPT_EXEC]           = { "exec", NULL, TOOL_OPT_VALUE, "CMD",
                                 "backup: mount the shadow copies read-only, run CMD (/bin/sh -c), report the "
                                 "backup by its status; restore: run CMD between PreRestore and PostRestore" },
        [OPT_BACKUP_COMPONENTS] = { "backup-components", "bc", TOOL_OPT_VALUE, "FILE",
                                    "after a successful set, save the backup components document to FILE" },
        [OPT_RESTORE]        = { "restore", "r", TOOL_OPT_VALUE, "FILE",
                                 "restore from the backup components document FILE" },
        [OPT_RESTORE_SIMULATE] = { "restore-simulate", "rs", TOOL_OPT_VALUE, "FILE",
                                   "the restore events without CMD (file restore status none)" },
        [OPT_NEW_TARGET]     = { "new-target", NULL, TOOL_OPT_LIST, "ORIGINAL=NEW",
                                 "restore: the files of ORIGINAL are restored under NEW" },
        [OPT_SOCKET]         = { "socket", NULL, TOOL_OPT_VALUE, "PATH",
                                 "vssd's socket (default $VSS_SOCKET, else /run/openvss/vssd.sock)" },
        [OPT_HELP]           = { "help", "h", TOOL_OPT_FLAG, NULL, "print this help" },
};

/* Shared with the signal thread. */
static atomic_int child_pid;            /* CMD while it runs, else 0 */
static atomic_bool managed;             /* main thread cleans up by itself on a signal */
static atomic_int caught_signal;
static char *_Atomic bc_tmp_path;       /* -bc's temporary file, removed when a signal ends us */

DEFINE_FREE_FUNC(vss_backup, vss_backup_free);

struct shadow {
        vss_id id;
        struct vss_snapshot_prop prop;
        char *mount;                    /* exposed path, or NULL */
};

static void *signal_thread(void *userdata)
{
        sigset_t *set = userdata;

        for (;;) {
                int sig, pid;

                if (sigwait(set, &sig) != 0)
                        continue;
                caught_signal = sig;
                pid = child_pid;
                if (pid > 0) {
                        /* CMD's whole process group: "sh -c 'a; b'" forks, and killing
                         * only the shell would leave its children running. */
                        kill(-pid, sig);
                        continue;
                }
                if (managed)
                        continue;
                fflush(stdout);
                if (bc_tmp_path)
                        (void)unlink(bc_tmp_path);
                tool_print_errorf(VSS_E_ABORT, "Interrupted by %s: the session is closed, vssd aborts the "
                                  "snapshot set.", sig == SIGINT ? "SIGINT" : "SIGTERM");
                _exit(128 + sig);
        }
        return NULL;
}

static void usage(void)
{
        printf("Usage: vshadow [-p] [-nw] [-wi=W]... [-wx=W]... [--exec=CMD] [-bc=FILE] [--socket PATH] VOLUME...\n"
               "       vshadow -r=FILE [-wi=W]... [-wx=W]... [--exec=CMD] [--new-target=ORIGINAL=NEW]...\n"
               "       vshadow -rs=FILE [-wi=W]... [-wx=W]... [--new-target=ORIGINAL=NEW]...\n\n"
               "Creates one snapshot set of the VOLUMEs with the writers involved, or restores from a\n"
               "backup components document.\n"
               "Options (names in any case; a value after '=' or as the next argument):\n");
        tool_print_options(stdout, options, _OPT_MAX, ~0u);
}

static bool writer_matches(const char *spec, const char *name, const vss_id *id)
{
        vss_id want;

        if (spec[0] == '{' && VSS_SUCCEEDED(vss_id_parse(spec, &want)))
                return vss_id_equal(&want, id);
        return streq(spec, name);
}

/* Prints every failed writer (involved ones, or all when none is involved) to stderr; returns how many. */
static size_t print_failed_writers(vss_backup *b, bool only_involved)
{
        size_t n = vss_backup_get_writer_status_count(b), failed = 0;

        for (size_t i = 0; i < n; i++) {
                struct vss_writer_status st;
                char id[VSS_ID_STRING_MAX];

                if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)))
                        continue;
                if (st.state < VSS_WS_FAILED_AT_IDENTIFY || (only_involved && !st.involved))
                        continue;
                failed++;
                fprintf(stderr, "Writer name: '%s'\n"
                                "   Writer Id: %s\n"
                                "   State: %s\n"
                                "   Last error: %s\n",
                        st.name, vss_id_format(&st.writer_id, id), vss_writer_state_label(st.state),
                        vss_writer_error_label(st.failure));
                if (st.message && *st.message)
                        fprintf(stderr, "   Message: %s\n", st.message);
        }
        if (only_involved && failed == 0)
                return 0;
        return failed;
}

/* Fails when an involved writer is in a FAILED_AT_* state after 'stage'. */
static vss_hresult check_writers(vss_backup *b, const char *stage)
{
        size_t n = vss_backup_get_writer_status_count(b);

        for (size_t i = 0; i < n; i++) {
                struct vss_writer_status st;

                if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)))
                        continue;
                if (st.involved && st.state >= VSS_WS_FAILED_AT_IDENTIFY) {
                        vss_hresult hr = VSS_FAILED(st.failure) ? st.failure : VSS_E_WRITERERROR_NONRETRYABLE;

                        tool_print_errorf(hr, "Writer '%s' failed during %s.", st.name, stage);
                        print_failed_writers(b, true);
                        return hr;
                }
        }
        return VSS_S_OK;
}

static vss_hresult check_included(vss_backup *b, const struct tool_args *a, bool registered_only)
{
        const struct tool_opt_value *wi = &a->values[OPT_INCLUDE_WRITER];

        for (size_t k = 0; k < wi->n_list; k++) {
                bool found = false, involved = false;

                if (registered_only) {
                        size_t n = vss_backup_get_writer_metadata_count(b);

                        for (size_t i = 0; i < n && !found; i++) {
                                struct vss_writer_metadata md;

                                if (VSS_SUCCEEDED(vss_backup_get_writer_metadata(b, i, &md)))
                                        found = writer_matches(wi->list[k], md.name, &md.writer_id);
                        }
                        if (!found) {
                                tool_print_errorf(VSS_E_OBJECT_NOT_FOUND,
                                                  "Writer '%s' (-wi) is not registered with vssd.", wi->list[k]);
                                return VSS_E_OBJECT_NOT_FOUND;
                        }
                        continue;
                }

                for (size_t i = 0; i < vss_backup_get_writer_status_count(b); i++) {
                        struct vss_writer_status st;

                        if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)) ||
                            !writer_matches(wi->list[k], st.name, &st.writer_id))
                                continue;
                        found = true;
                        involved = involved || st.involved;
                }
                if (!found || !involved) {
                        tool_print_errorf(VSS_E_OBJECT_NOT_FOUND,
                                          "Writer '%s' (-wi) is not involved in this snapshot set: none of its "
                                          "volumes is in the set, or it was excluded.", wi->list[k]);
                        return VSS_E_OBJECT_NOT_FOUND;
                }
        }
        return VSS_S_OK;
}

/* Runs CMD with /bin/sh -c and the "KEY=value" entries of env added to ours. */
static int run_command(const char *cmd, struct tool_env *env)
{
        sigset_t none;
        int status;
        pid_t pid;

        if (env->oom) {
                tool_print_error(VSS_E_OUTOFMEMORY, "Cannot build the command's environment.");
                return -1;
        }
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                tool_print_errorf(VSS_E_OUTOFMEMORY, "Cannot start the command: %s", strerror(errno));
                return -1;
        }
        if (pid == 0) {
                /* Its own process group, so that a forwarded signal reaches every process
                 * of CMD; and it must die of it even if our parent ignored the signal. */
                setpgid(0, 0);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                for (size_t i = 0; i < env->n; i++)
                        putenv(env->v[i]);
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
                _exit(127);
        }

        /* Also here, so the group exists before the signal thread may use it. */
        (void)setpgid(pid, pid);
        child_pid = pid;
        /* A signal that came just before child_pid was set must still reach CMD. */
        if (caught_signal)
                kill(-pid, caught_signal);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        status = 127 << 8;
                        break;
                }
        child_pid = 0;

        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 1;
}

static int run_backup_command(const char *cmd, const vss_id *set, struct shadow *shadows, size_t n)
{
        struct tool_env env = { 0 };
        char id[VSS_ID_STRING_MAX];
        int r;

        tool_env_add(&env, "VSHADOW_SET_ID=%s", vss_id_format(set, id));
        for (size_t i = 0; i < n; i++) {
                tool_env_add(&env, "VSHADOW_ID_%zu=%s", i + 1, vss_id_format(&shadows[i].id, id));
                tool_env_add(&env, "VSHADOW_DEVICE_%zu=%s", i + 1, shadows[i].prop.snapshot_device ?: "");
                tool_env_add(&env, "VSHADOW_MOUNT_%zu=%s", i + 1, shadows[i].mount ?: "");
        }
        r = run_command(cmd, &env);
        tool_env_done(&env);
        return r;
}

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

/* The document of this session's set: call after BackupComplete (the writers' final status). */
static vss_hresult build_document(vss_backup *b, const vss_id *set, int32_t context, struct shadow *shadows,
                                  size_t n, struct bc_doc *d)
{
        char host[256] = "";

        *d = (struct bc_doc){ .version = BC_DOC_VERSION, .set_id = *set, .context = context,
                              .backup_type = VSS_BT_FULL, .created_us = (int64_t)clock_realtime_us() };
        if (gethostname(host, sizeof(host) - 1) == 0 && host[0] && !(d->host = strdup(host)))
                return VSS_E_OUTOFMEMORY;
        for (size_t i = 0; i < n; i++) {
                struct bc_shadow *s = bc_doc_add_shadow(d);
                const struct vss_snapshot_prop *p = &shadows[i].prop;

                if (!s)
                        return VSS_E_OUTOFMEMORY;
                *s = (struct bc_shadow){
                        .shadow_id = shadows[i].id,
                        .original_volume = strdup(p->original_volume ?: ""),
                        .original_device = dup_or_null(p->original_device),
                        .device = strdup(p->snapshot_device ?: ""),
                        .provider_id = p->provider_id,
                        .provider_name = dup_or_null(p->provider_name),
                        .attributes = p->attributes,
                        .creation_time_us = p->creation_time_us,
                };
                if (!s->original_volume || !s->device)
                        return VSS_E_OUTOFMEMORY;
        }
        for (size_t i = 0; i < vss_backup_get_writer_status_count(b); i++) {
                struct vss_writer_status st;
                struct vss_writer_metadata md;
                struct vss_restore_method rm = { .method = VSS_RME_RESTORE_IF_CAN_REPLACE,
                                                 .writer_restore = VSS_WRE_NEVER };
                struct bc_writer *w;
                size_t m, n_md = vss_backup_get_writer_metadata_count(b);

                if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)) || !st.involved)
                        continue;
                w = bc_doc_add_writer(d);
                if (!w)
                        return VSS_E_OUTOFMEMORY;
                w->writer_id = st.writer_id;
                w->instance_id = st.instance_id;
                w->name = strdup(st.name);
                w->state = st.state;
                w->failure = st.failure;
                w->message = dup_or_null(st.message);
                if (!w->name)
                        return VSS_E_OUTOFMEMORY;
                for (m = 0; m < n_md; m++)
                        if (VSS_SUCCEEDED(vss_backup_get_writer_metadata(b, m, &md)) &&
                            vss_id_equal(&md.writer_id, &st.writer_id))
                                break;
                if (m < n_md)
                        (void)vss_backup_get_writer_restore_method(b, m, &rm);
                w->restore_method = (struct bc_restore_method){
                        .method = rm.method,
                        .service = strdup(rm.service ?: ""),
                        .user_procedure = strdup(rm.user_procedure ?: ""),
                        .writer_restore = rm.writer_restore,
                        .reboot_required = rm.reboot_required,
                };
                if (!w->restore_method.service || !w->restore_method.user_procedure)
                        return VSS_E_OUTOFMEMORY;
                if (m == n_md)
                        continue;
                for (size_t k = 0; k < md.component_count; k++) {
                        struct vss_component_info ci;
                        struct bc_component *c;
                        const char *meta;

                        if (VSS_FAILED(vss_backup_get_writer_component(b, m, k, &ci)))
                                continue;
                        c = bc_writer_add_component(w);
                        if (!c)
                                return VSS_E_OUTOFMEMORY;
                        meta = vss_backup_get_backup_metadata(b, &st.writer_id, ci.logical_path, ci.name);
                        *c = (struct bc_component){
                                .type = ci.type == VSS_CT_DATABASE ? VSS_CT_DATABASE : VSS_CT_FILEGROUP,
                                .logical_path = strdup(ci.logical_path),
                                .name = strdup(ci.name),
                                .caption = dup_or_null(ci.caption),
                                .selectable = ci.selectable,
                                .backup_metadata = dup_or_null(meta),
                        };
                        if (!c->logical_path || !c->name)
                                return VSS_E_OUTOFMEMORY;
                        for (size_t f = 0; f < vss_backup_get_writer_component_file_count(b, m, k); f++) {
                                struct vss_component_file cf;
                                struct bc_file *bf;

                                if (VSS_FAILED(vss_backup_get_writer_component_file(b, m, k, f, &cf)))
                                        continue;
                                bf = bc_component_add_file(c);
                                if (!bf)
                                        return VSS_E_OUTOFMEMORY;
                                bf->path = strdup(cf.path);
                                bf->filespec = strdup(cf.filespec);
                                bf->recursive = cf.recursive;
                                if (!bf->path || !bf->filespec)
                                        return VSS_E_OUTOFMEMORY;
                        }
                }
        }
        return VSS_S_OK;
}

/* HOST:VOLUME (a volume is an absolute path, so a ':' before the first '/' ends a host name). */
static bool split_host(const char *arg, char *host, size_t len, const char **ret_volume)
{
        const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');

        *ret_volume = arg;
        host[0] = 0;
        if (!colon || (slash && slash < colon) || colon[1] != '/' || (size_t)(colon - arg) >= len)
                return false;
        memcpy(host, arg, (size_t)(colon - arg));
        host[colon - arg] = 0;
        *ret_volume = colon + 1;
        return true;
}

static int run(struct tool_args *a)
{
        _cleanup_(vss_backup_freep) vss_backup *b = NULL;
        _cleanup_free_ struct shadow *shadows = NULL;
        const struct tool_opt_value *wx = &a->values[OPT_EXCLUDE_WRITER];
        const char *socket = tool_args_value(a, OPT_SOCKET), *cmd = tool_args_value(a, OPT_EXEC);
        bool persistent = tool_args_flag(a, OPT_PERSISTENT), no_writers = tool_args_flag(a, OPT_NO_WRITERS);
        size_t n = a->n_positional;
        const char *bc_path = tool_args_value(a, OPT_BACKUP_COMPONENTS);
        struct bc_save bc = { .fd = -EBADF };
        int32_t context;
        vss_id set;
        vss_hresult hr;
        char id[VSS_ID_STRING_MAX];
        int r = TOOL_EXIT_FAILURE, cmd_status = 0;
        bool cluster = false;

        if (n == 0) {
                tool_print_error(VSS_E_INVALIDARG, "No VOLUME given. Try 'vshadow --help'.");
                return TOOL_EXIT_USAGE;
        }
        if (a->values[OPT_NEW_TARGET].n_list > 0) {
                tool_print_error(VSS_E_INVALIDARG, "--new-target is for a restore (-r/-rs).");
                return TOOL_EXIT_USAGE;
        }
        if (no_writers && a->values[OPT_INCLUDE_WRITER].n_list > 0) {
                tool_print_error(VSS_E_INVALIDARG, "-wi cannot be combined with -nw (no writers take part).");
                return TOOL_EXIT_USAGE;
        }
        shadows = calloc(n, sizeof(*shadows));
        if (!shadows)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        for (size_t i = 0; i < n; i++) {
                char host[256];
                const char *vol;

                if (split_host(a->positional[i], host, sizeof(host), &vol))
                        cluster = true;
        }
        if (cluster && (cmd || bc_path)) {
                tool_print_error(VSS_E_NOT_SUPPORTED, "-exec and -bc take local volumes only, not HOST:VOLUME.");
                return TOOL_EXIT_USAGE;
        }
        if (bc_path) {
                char err[1024] = "";

                /* Before the session: a document that cannot be written must not cost a freeze. */
                int e = bc_doc_save_begin(&bc, bc_path, err, sizeof(err));

                if (e < 0)
                        return tool_print_errorf(e == -ENOENT ? VSS_E_OBJECT_NOT_FOUND :
                                                 e == -EACCES || e == -EPERM || e == -EROFS ? VSS_E_ACCESSDENIED :
                                                 e == -ENOMEM ? VSS_E_OUTOFMEMORY : VSS_E_FAIL,
                                                 "-bc: %s", err[0] ? err : strerror(-e));
                bc_tmp_path = bc.tmp_path;
        }

        context = persistent ? VSS_CTX_APP_ROLLBACK : VSS_CTX_BACKUP;
        if (no_writers)
                context |= VSS_VOLSNAP_ATTR_NO_WRITERS;

        hr = vss_backup_new(socket, &b);
        if (VSS_FAILED(hr)) {
                bc_tmp_path = NULL;
                bc_doc_save_abort(&bc);
                return tool_print_errorf(hr, "Cannot reach vssd at %s (is vssd running?).",
                                         socket ?: vss_default_socket_path());
        }

#define STEP(call) do {                                                         \
                hr = (call);                                                    \
                if (VSS_FAILED(hr)) {                                           \
                        tool_print_error(hr, vss_backup_get_error_detail(b));  \
                        goto out;                                               \
                }                                                               \
        } while (0)
#define CHECK(expr) do {                                                        \
                hr = (expr);                                                    \
                if (VSS_FAILED(hr))                                             \
                        goto out;                                               \
        } while (0)

        STEP(vss_backup_set_context(b, context));
        STEP(vss_backup_set_backup_state(b, false, false, VSS_BT_FULL));
        if (!no_writers) {
                STEP(vss_backup_gather_writer_metadata(b));
                CHECK(check_included(b, a, true));
                for (size_t i = 0; i < wx->n_list; i++)
                        STEP(vss_backup_exclude_writer(b, wx->list[i]));
        }
        STEP(vss_backup_start_snapshot_set(b, &set));
        for (size_t i = 0; i < n; i++) {
                char host[256];
                const char *vol;

                /* In a cluster set a volume without a host is this host's ("" to vssd). */
                if (cluster) {
                        (void)split_host(a->positional[i], host, sizeof(host), &vol);
                        STEP(vss_backup_add_to_cluster_set(b, host, vol, &shadows[i].id));
                } else
                        STEP(vss_backup_add_to_snapshot_set(b, a->positional[i], NULL, &shadows[i].id));
        }
        STEP(vss_backup_prepare_for_backup(b));
        if (!no_writers) {
                CHECK(check_writers(b, "PrepareForBackup"));
                CHECK(check_included(b, a, false));
        }

        hr = vss_backup_do_snapshot_set(b);
        if (VSS_FAILED(hr)) {
                tool_print_error(hr, vss_backup_get_error_detail(b));
                if (print_failed_writers(b, true) == 0)
                        print_failed_writers(b, false);
                goto out;
        }
        if (!no_writers)
                CHECK(check_writers(b, "DoSnapshotSet"));

        for (size_t i = 0; i < n; i++) {
                /* Another host's shadow copy is in that host's catalog, not this one's. */
                if (cluster) {
                        (void)vss_backup_get_snapshot_properties(b, &shadows[i].id, &shadows[i].prop);
                        continue;
                }
                STEP(vss_backup_get_snapshot_properties(b, &shadows[i].id, &shadows[i].prop));
        }

        /* From here on a signal must not kill us with shadow copies mounted. */
        managed = !!cmd;
        if (cmd)
                for (size_t i = 0; i < n && !caught_signal; i++)
                        STEP(vss_backup_expose_snapshot(b, &shadows[i].id, NULL, &shadows[i].mount));

        printf("Snapshot set: %s\n", vss_id_format(&set, id));
        for (size_t i = 0; i < n; i++) {
                printf("Shadow copy %zu: %s\n", i + 1, vss_id_format(&shadows[i].id, id));
                printf("   Original volume: %s\n", shadows[i].prop.original_volume ?: a->positional[i]);
                printf("   Device: %s\n", shadows[i].prop.snapshot_device ?: "");
                printf("   Mount point: %s\n", shadows[i].mount ?: "(not exposed)");
        }
        fflush(stdout);

        if (cmd) {
                cmd_status = caught_signal ? 128 + caught_signal : run_backup_command(cmd, &set, shadows, n);
                if (cmd_status < 0)
                        cmd_status = 1;
                /* An interrupted backup is a failed one, whatever CMD made of the signal. */
                if (cmd_status == 0 && caught_signal)
                        cmd_status = 128 + caught_signal;
        }

        hr = vss_backup_backup_complete(b, cmd_status == 0);
        if (VSS_FAILED(hr))
                tool_print_error(hr, vss_backup_get_error_detail(b));
        else if (!no_writers)
                hr = check_writers(b, "BackupComplete");

        for (size_t i = 0; i < n; i++)
                if (shadows[i].mount) {
                        vss_hresult uhr = vss_backup_unexpose_snapshot(b, &shadows[i].id);

                        if (VSS_FAILED(uhr)) {
                                tool_print_error(uhr, vss_backup_get_error_detail(b));
                                if (VSS_SUCCEEDED(hr))
                                        hr = uhr;
                        }
                }

        /* The document: only for a run that fully succeeded, with the writers' final status. */
        if (bc_path && VSS_SUCCEEDED(hr) && cmd_status == 0 && !caught_signal) {
                struct bc_doc doc;
                char err[1024] = "";

                hr = build_document(b, &set, context, shadows, n, &doc);
                if (VSS_SUCCEEDED(hr)) {
                        bc_tmp_path = NULL;
                        if (bc_doc_save_commit(&bc, &doc, err, sizeof(err)) < 0)
                                hr = VSS_E_FAIL;
                } else
                        snprintf(err, sizeof(err), "cannot build the document");
                bc_doc_done(&doc);
                if (VSS_FAILED(hr))
                        tool_print_errorf(hr, "-bc: %s; no backup components document was written.", err);
                else
                        printf("Backup components document: %s\n", bc_path);
        }

        if (cmd && cmd_status != 0) {
                if (caught_signal)
                        tool_print_errorf(VSS_E_ABORT, "Interrupted by %s.",
                                          caught_signal == SIGINT ? "SIGINT" : "SIGTERM");
                else
                        fprintf(stderr, "vshadow: the command exited with status %d; the backup was reported "
                                        "as failed.\n", cmd_status);
                r = cmd_status;
        } else
                r = VSS_FAILED(hr) ? TOOL_EXIT_FAILURE : 0;
        hr = VSS_S_OK;
#undef STEP
#undef CHECK

out:
        bc_tmp_path = NULL;
        bc_doc_save_abort(&bc);
        if (VSS_FAILED(hr))
                (void)vss_backup_abort_backup(b);
        for (size_t i = 0; i < n; i++) {
                vss_snapshot_prop_clear(&shadows[i].prop);
                free(shadows[i].mount);
        }
        /* Ending the session: vssd deletes the non-persistent shadow copies now. */
        b = vss_backup_free(b);
        if (caught_signal && r == 0)
                r = 128 + caught_signal;
        return r;
}

/* ---- restore ---- */

static bool doc_writer_matches(const char *spec, const struct bc_writer *w)
{
        return writer_matches(spec, w->name, &w->writer_id);
}

static bool listed(const struct tool_opt_value *v, const struct bc_writer *w)
{
        for (size_t k = 0; k < v->n_list; k++)
                if (doc_writer_matches(v->list[k], w))
                        return true;
        return false;
}

/* Fails when a restored writer is in 'failed_state' now; prints each such writer. */
static vss_hresult check_restore(vss_backup *b, enum vss_writer_state failed_state, const char *stage)
{
        vss_hresult first = VSS_S_OK;

        for (size_t i = 0; i < vss_backup_get_writer_status_count(b); i++) {
                struct vss_writer_status st;

                if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)) || !st.involved || st.state != failed_state)
                        continue;
                if (VSS_SUCCEEDED(first)) {
                        first = VSS_FAILED(st.failure) ? st.failure : VSS_E_WRITERERROR_NONRETRYABLE;
                        tool_print_errorf(first, "Writer '%s' failed during %s.", st.name, stage);
                }
        }
        if (VSS_FAILED(first))
                print_failed_writers(b, true);
        return first;
}

static int run_restore(struct tool_args *a)
{
        _cleanup_(vss_backup_freep) vss_backup *b = NULL;
        const struct tool_opt_value *wi = &a->values[OPT_INCLUDE_WRITER], *wx = &a->values[OPT_EXCLUDE_WRITER];
        const struct tool_opt_value *nt = &a->values[OPT_NEW_TARGET];
        const char *socket = tool_args_value(a, OPT_SOCKET), *cmd = tool_args_value(a, OPT_EXEC);
        const char *file = tool_args_value(a, OPT_RESTORE);
        bool simulate = !file;
        _cleanup_free_ char *doc_path = NULL;
        struct bc_doc doc = { 0 };
        char err[1024], id[VSS_ID_STRING_MAX];
        size_t selected = 0;
        vss_hresult hr;
        int r = TOOL_EXIT_FAILURE, cmd_status = 0;
        enum vss_file_restore_status fstatus = VSS_RS_NONE;

        if (simulate)
                file = tool_args_value(a, OPT_RESTORE_SIMULATE);
        if (tool_args_value(a, OPT_RESTORE) && tool_args_value(a, OPT_RESTORE_SIMULATE)) {
                tool_print_error(VSS_E_INVALIDARG, "-r and -rs cannot be combined.");
                return TOOL_EXIT_USAGE;
        }
        if (a->n_positional > 0 || tool_args_flag(a, OPT_PERSISTENT) || tool_args_flag(a, OPT_NO_WRITERS) ||
            tool_args_value(a, OPT_BACKUP_COMPONENTS)) {
                tool_print_error(VSS_E_INVALIDARG, "A restore (-r/-rs) takes no VOLUME, -p, -nw or -bc.");
                return TOOL_EXIT_USAGE;
        }
        if (simulate && cmd) {
                tool_print_error(VSS_E_INVALIDARG, "-rs runs the restore events without a command: use -r with "
                                 "--exec.");
                return TOOL_EXIT_USAGE;
        }
        for (size_t k = 0; k < nt->n_list; k++) {
                const char *eq = strchr(nt->list[k], '=');

                if (!eq || eq == nt->list[k] || !eq[1] || nt->list[k][0] != '/' || eq[1] != '/') {
                        tool_print_errorf(VSS_E_INVALIDARG, "--new-target '%s' must be ORIGINAL=NEW, both absolute "
                                          "paths.", nt->list[k]);
                        return TOOL_EXIT_USAGE;
                }
        }

        /* The document first: a bad one ends the run before vssd or any writer hears of it. */
        hr = bc_doc_load(file, &doc, err, sizeof(err));
        if (VSS_FAILED(hr))
                return tool_print_errorf(hr, "Cannot restore from %s", err);
        doc_path = realpath(file, NULL);
        for (size_t k = 0; k < wi->n_list; k++) {
                bool found = false;

                for (size_t i = 0; i < doc.n_writers && !found; i++)
                        found = doc_writer_matches(wi->list[k], &doc.writers[i]);
                if (!found) {
                        tool_print_errorf(VSS_E_OBJECT_NOT_FOUND, "Writer '%s' (-wi) is not in the backup components "
                                          "document %s.", wi->list[k], file);
                        bc_doc_done(&doc);
                        return TOOL_EXIT_FAILURE;
                }
        }

        hr = vss_backup_new(socket, &b);
        if (VSS_FAILED(hr)) {
                bc_doc_done(&doc);
                return tool_print_errorf(hr, "Cannot reach vssd at %s (is vssd running?).",
                                         socket ?: vss_default_socket_path());
        }

#define STEP(call) do {                                                         \
                hr = (call);                                                    \
                if (VSS_FAILED(hr)) {                                           \
                        tool_print_error(hr, vss_backup_get_error_detail(b));  \
                        goto out;                                               \
                }                                                               \
        } while (0)

        printf("Restore from: %s\n", doc_path ?: file);
        printf("Snapshot set: %s\n", vss_id_format(&doc.set_id, id));
        for (size_t i = 0; i < doc.n_shadows; i++) {
                printf("Shadow copy %zu: %s\n", i + 1, vss_id_format(&doc.shadows[i].shadow_id, id));
                printf("   Original volume: %s\n", doc.shadows[i].original_volume);
                printf("   Device: %s\n", doc.shadows[i].device);
        }

        STEP(vss_backup_gather_writer_metadata(b));

        for (size_t i = 0; i < doc.n_writers; i++) {
                const struct bc_writer *w = &doc.writers[i];
                const struct bc_restore_method *rm = &w->restore_method;

                if ((wi->n_list > 0 && !listed(wi, w)) || listed(wx, w))
                        continue;
                printf("Writer '%s': %s\n", w->name, vss_id_format(&w->writer_id, id));
                printf("   Restore method: %s%s%s%s%s\n", vss_restore_method_name(rm->method),
                       *rm->service ? " (service " : "", rm->service, *rm->service ? ")" : "",
                       rm->reboot_required ? ", reboot required" : "");
                if (*rm->user_procedure)
                        printf("   User procedure: %s\n", rm->user_procedure);
                if (w->n_components == 0)
                        printf("   No components: the writer takes no part in the restore\n");
                for (size_t k = 0; k < w->n_components; k++) {
                        const struct bc_component *c = &w->components[k];

                        printf("   Component: %s%s%s\n", c->logical_path, *c->logical_path ? "\\" : "", c->name);
                        STEP(vss_backup_add_restore_component(b, &w->writer_id, w->name, c->logical_path, c->name,
                                                              c->backup_metadata));
                        selected++;
                }
        }
        for (size_t k = 0; selected > 0 && k < nt->n_list; k++) {
                _cleanup_free_ char *orig = strdup(nt->list[k]);
                char *eq = orig ? strchr(orig, '=') : NULL;

                if (!eq) {
                        hr = VSS_E_OUTOFMEMORY;
                        goto out;
                }
                *eq = 0;
                STEP(vss_backup_add_new_target(b, NULL, NULL, NULL, orig, eq + 1));
                printf("New target: %s -> %s\n", orig, eq + 1);
        }
        fflush(stdout);

        if (selected > 0) {
                STEP(vss_backup_pre_restore(b));
                printf("PreRestore: done\n");
                hr = check_restore(b, VSS_WS_FAILED_AT_PRE_RESTORE, "PreRestore");
        } else
                printf("No writer components to restore: PreRestore and PostRestore are skipped\n");
        fflush(stdout);

        if (VSS_SUCCEEDED(hr) && cmd) {
                struct tool_env env = { 0 };

                managed = true;
                tool_env_add(&env, "VSHADOW_RESTORE_DOC=%s", doc_path ?: file);
                tool_env_add(&env, "VSHADOW_SET_ID=%s", vss_id_format(&doc.set_id, id));
                for (size_t i = 0; i < doc.n_shadows; i++) {
                        tool_env_add(&env, "VSHADOW_ID_%zu=%s", i + 1, vss_id_format(&doc.shadows[i].shadow_id, id));
                        tool_env_add(&env, "VSHADOW_DEVICE_%zu=%s", i + 1, doc.shadows[i].device);
                        tool_env_add(&env, "VSHADOW_ORIGINAL_%zu=%s", i + 1, doc.shadows[i].original_volume);
                }
                cmd_status = caught_signal ? 128 + caught_signal : run_command(cmd, &env);
                tool_env_done(&env);
                if (cmd_status < 0)
                        cmd_status = 1;
                if (cmd_status == 0 && caught_signal)
                        cmd_status = 128 + caught_signal;
                fstatus = cmd_status == 0 ? VSS_RS_ALL : VSS_RS_FAILED;
                printf("Command exited with status %d: file restore status %s\n", cmd_status,
                       vss_file_restore_status_name(fstatus));
                fflush(stdout);
        }

        if (selected > 0) {
                /* Writers that vetoed PreRestore get no PostRestore (libvss leaves them out). */
                vss_hresult phr = vss_backup_set_file_restore_status(b, NULL, NULL, NULL, fstatus);

                if (VSS_SUCCEEDED(phr))
                        phr = vss_backup_post_restore(b);
                if (VSS_FAILED(phr)) {
                        tool_print_error(phr, vss_backup_get_error_detail(b));
                        hr = VSS_SUCCEEDED(hr) ? phr : hr;
                        goto out;
                }
                printf("PostRestore: done\n");
                phr = check_restore(b, VSS_WS_FAILED_AT_POST_RESTORE, "PostRestore");
                if (VSS_SUCCEEDED(hr))
                        hr = phr;
        }
#undef STEP

out:
        fflush(stdout);
        if (cmd && cmd_status != 0) {
                if (caught_signal)
                        tool_print_errorf(VSS_E_ABORT, "Interrupted by %s.",
                                          caught_signal == SIGINT ? "SIGINT" : "SIGTERM");
                else
                        fprintf(stderr, "vshadow: the command exited with status %d; the writers were told the "
                                        "files failed to restore.\n", cmd_status);
                r = cmd_status;
        } else
                r = VSS_FAILED(hr) ? TOOL_EXIT_FAILURE : 0;
        bc_doc_done(&doc);
        b = vss_backup_free(b);
        if (caught_signal && r == 0)
                r = 128 + caught_signal;
        return r;
}

int main(int argc, char **argv)
{
        _cleanup_free_ char *err = NULL;
        struct tool_args a;
        pthread_t thread;
        sigset_t set;
        vss_hresult hr;
        int r;

        hr = tool_args_parse(options, _OPT_MAX, 0, argc, argv, &a, &err);
        if (VSS_FAILED(hr)) {
                tool_print_error(hr, err);
                return TOOL_EXIT_USAGE;
        }
        if (tool_args_flag(&a, OPT_HELP)) {
                usage();
                tool_args_done(&a);
                return 0;
        }

        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (pthread_create(&thread, NULL, signal_thread, &set) != 0) {
                tool_args_done(&a);
                return tool_print_error(VSS_E_OUTOFMEMORY, "Cannot start the signal thread.");
        }
        pthread_detach(thread);

        if (tool_args_value(&a, OPT_RESTORE) || tool_args_value(&a, OPT_RESTORE_SIMULATE))
                r = run_restore(&a);
        else
                r = run(&a);
        tool_args_done(&a);
        fflush(stdout);
        /* The signal thread may still be in sigwait(): leave without waiting for it. */
        _exit(r);
}
