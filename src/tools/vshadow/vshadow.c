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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/common/tools-common.h"
#include "vss/requester.h"

enum {
        OPT_PERSISTENT,
        OPT_NO_WRITERS,
        OPT_INCLUDE_WRITER,
        OPT_EXCLUDE_WRITER,
        OPT_EXEC,
        OPT_SOCKET,
        OPT_HELP,
        _OPT_MAX,
};

static const struct tool_option options[_OPT_MAX] = {
        [OPT_PERSISTENT]     = { "persistent", "p", TOOL_OPT_FLAG, NULL,
                                 "keep the shadow copies after the run (VSS_CTX_APP_ROLLBACK)" },
        [OPT_NO_WRITERS]     = { "no-writers", "nw", TOOL_OPT_FLAG, NULL, "do not involve writers" },
        [OPT_INCLUDE_WRITER] = { "include-writer", "wi", TOOL_OPT_LIST, "W",
                                 "fail unless writer W (name or {id}) takes part" },
        [OPT_EXCLUDE_WRITER] = { "exclude-writer", "wx", TOOL_OPT_LIST, "W", "exclude writer W (name or {id})" },
        [OPT_EXEC]           = { "exec", NULL, TOOL_OPT_VALUE, "CMD",
                                 "mount the shadow copies read-only, run CMD (/bin/sh -c), report the backup "
                                 "by its status" },
        [OPT_SOCKET]         = { "socket", NULL, TOOL_OPT_VALUE, "PATH",
                                 "vssd's socket (default $VSS_SOCKET, else /run/openvss/vssd.sock)" },
        [OPT_HELP]           = { "help", "h", TOOL_OPT_FLAG, NULL, "print this help" },
};

/* Shared with the signal thread. */
static atomic_int child_pid;            /* CMD while it runs, else 0 */
static atomic_bool managed;             /* main thread cleans up by itself on a signal */
static atomic_int caught_signal;

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
                tool_print_errorf(VSS_E_ABORT, "Interrupted by %s: the session is closed, vssd aborts the "
                                  "snapshot set.", sig == SIGINT ? "SIGINT" : "SIGTERM");
                _exit(128 + sig);
        }
        return NULL;
}

static void usage(void)
{
        printf("Usage: vshadow [-p|--persistent] [-nw|--no-writers] [-wi=W|--include-writer=W]...\n"
               "               [-wx=W|--exclude-writer=W]... [--exec=CMD] [--socket PATH] VOLUME...\n\n"
               "Creates one snapshot set of the VOLUMEs with the writers involved.\n"
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

static int run_command(const char *cmd, const vss_id *set, struct shadow *shadows, size_t n)
{
        char id[VSS_ID_STRING_MAX], key[64];
        sigset_t none;
        int status;
        pid_t pid;

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
                setenv("VSHADOW_SET_ID", vss_id_format(set, id), 1);
                for (size_t i = 0; i < n; i++) {
                        snprintf(key, sizeof(key), "VSHADOW_ID_%zu", i + 1);
                        setenv(key, vss_id_format(&shadows[i].id, id), 1);
                        snprintf(key, sizeof(key), "VSHADOW_DEVICE_%zu", i + 1);
                        setenv(key, shadows[i].prop.snapshot_device ?: "", 1);
                        snprintf(key, sizeof(key), "VSHADOW_MOUNT_%zu", i + 1);
                        setenv(key, shadows[i].mount ?: "", 1);
                }
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

static int run(struct tool_args *a)
{
        _cleanup_(vss_backup_freep) vss_backup *b = NULL;
        _cleanup_free_ struct shadow *shadows = NULL;
        const struct tool_opt_value *wx = &a->values[OPT_EXCLUDE_WRITER];
        const char *socket = tool_args_value(a, OPT_SOCKET), *cmd = tool_args_value(a, OPT_EXEC);
        bool persistent = tool_args_flag(a, OPT_PERSISTENT), no_writers = tool_args_flag(a, OPT_NO_WRITERS);
        size_t n = a->n_positional;
        int32_t context;
        vss_id set;
        vss_hresult hr;
        char id[VSS_ID_STRING_MAX];
        int r = TOOL_EXIT_FAILURE, cmd_status = 0;

        if (n == 0) {
                tool_print_error(VSS_E_INVALIDARG, "No VOLUME given. Try 'vshadow --help'.");
                return TOOL_EXIT_USAGE;
        }
        if (no_writers && a->values[OPT_INCLUDE_WRITER].n_list > 0) {
                tool_print_error(VSS_E_INVALIDARG, "-wi cannot be combined with -nw (no writers take part).");
                return TOOL_EXIT_USAGE;
        }
        shadows = calloc(n, sizeof(*shadows));
        if (!shadows)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);

        context = persistent ? VSS_CTX_APP_ROLLBACK : VSS_CTX_BACKUP;
        if (no_writers)
                context |= VSS_VOLSNAP_ATTR_NO_WRITERS;

        hr = vss_backup_new(socket, &b);
        if (VSS_FAILED(hr))
                return tool_print_errorf(hr, "Cannot reach vssd at %s (is vssd running?).",
                                         socket ?: vss_default_socket_path());

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
        for (size_t i = 0; i < n; i++)
                STEP(vss_backup_add_to_snapshot_set(b, a->positional[i], NULL, &shadows[i].id));
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

        for (size_t i = 0; i < n; i++)
                STEP(vss_backup_get_snapshot_properties(b, &shadows[i].id, &shadows[i].prop));

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
                cmd_status = caught_signal ? 128 + caught_signal : run_command(cmd, &set, shadows, n);
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

        r = run(&a);
        tool_args_done(&a);
        fflush(stdout);
        /* The signal thread may still be in sigwait(): leave without waiting for it. */
        _exit(r);
}
