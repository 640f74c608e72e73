/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The skeleton of the application writers: options, config, the
 * registration loop (see writer-app.h).
 *
 * Options and config keys go through one table, so a flag and a key cannot
 * drift apart.  Values are collected first (file, then command line) and
 * applied key by key, the command line winning; for an option that may repeat
 * (--database) the command line's values replace the file's as a whole, which
 * is what an admin overriding a unit's config expects.
 *
 * The program's handlers are wrapped: the wrapper knows whether a backup or
 * restore sequence is under way (from PrepareForBackup to BackupComplete,
 * BackupShutdown or Abort; from PreRestore to PostRestore), because
 * registering again in the middle of one would drop the writer from it.
 * Signals only set a flag and wake vss_writer_dispatch() through
 * vss_writer_stop(), which is async-signal-safe.
 */

#include <assert.h>
#include <getopt.h>
#include <ini.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/log.h"
#include "basic/string-util.h"
#include "basic/time-util.h"
#include "writer-app.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- descriptions --------------------------------------------------------------------- */

static int strv_push(char ***v, size_t *n, const char *s)
{
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));

        if (!nv)
                return -ENOMEM;
        *v = nv;
        nv[*n] = strdup(s);
        if (!nv[*n])
                return -ENOMEM;
        nv[++*n] = NULL;
        return 0;
}

int writer_desc_add_volume(struct writer_desc *d, const char *path)
{
        for (size_t i = 0; i < d->n_volumes; i++)
                if (streq(d->volumes[i], path))
                        return 0;
        return strv_push(&d->volumes, &d->n_volumes, path);
}

int writer_desc_add_component(struct writer_desc *d, enum vss_component_type type, const char *logical_path,
                              const char *name, const char *caption)
{
        struct writer_desc_component *n, *c;

        n = realloc(d->components, (d->n_components + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        d->components = n;
        c = &n[d->n_components];
        *c = (struct writer_desc_component){ .type = type };
        c->logical_path = strdup(logical_path ? logical_path : "");
        c->name = strdup(name);
        c->caption = caption ? strdup(caption) : NULL;
        d->n_components++;
        if (!c->logical_path || !c->name || (caption && !c->caption))
                return -ENOMEM;
        return (int)d->n_components - 1;
}

int writer_desc_add_file(struct writer_desc *d, int component, const char *path, const char *filespec,
                         bool recursive)
{
        struct writer_desc_component *c;
        struct writer_desc_file *n;

        assert(component >= 0 && (size_t)component < d->n_components);
        c = &d->components[component];
        n = realloc(c->files, (c->n_files + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        c->files = n;
        n[c->n_files] = (struct writer_desc_file){ .path = strdup(path), .filespec = strdup(filespec ?: "*"),
                                                   .recursive = recursive };
        c->n_files++;
        if (!n[c->n_files - 1].path || !n[c->n_files - 1].filespec)
                return -ENOMEM;
        return 0;
}

void writer_desc_done(struct writer_desc *d)
{
        for (size_t i = 0; i < d->n_volumes; i++)
                free(d->volumes[i]);
        free(d->volumes);
        for (size_t i = 0; i < d->n_components; i++) {
                struct writer_desc_component *c = &d->components[i];
                for (size_t j = 0; j < c->n_files; j++) {
                        free(c->files[j].path);
                        free(c->files[j].filespec);
                }
                free(c->files);
                free(c->logical_path);
                free(c->name);
                free(c->caption);
        }
        free(d->components);
        *d = (struct writer_desc){ 0 };
}

bool writer_desc_equal(const struct writer_desc *a, const struct writer_desc *b)
{
        if (a->n_volumes != b->n_volumes || a->n_components != b->n_components)
                return false;
        for (size_t i = 0; i < a->n_volumes; i++)
                if (!streq(a->volumes[i], b->volumes[i]))
                        return false;
        for (size_t i = 0; i < a->n_components; i++) {
                const struct writer_desc_component *x = &a->components[i], *y = &b->components[i];

                if (x->type != y->type || !streq(x->logical_path, y->logical_path) || !streq(x->name, y->name) ||
                    !streq_ptr(x->caption, y->caption) || x->n_files != y->n_files)
                        return false;
                for (size_t j = 0; j < x->n_files; j++)
                        if (!streq(x->files[j].path, y->files[j].path) ||
                            !streq(x->files[j].filespec, y->files[j].filespec) ||
                            x->files[j].recursive != y->files[j].recursive)
                                return false;
        }
        return true;
}

/* ---- small parsers -------------------------------------------------------------------- */

int writer_parse_ms(const char *text, uint32_t *ret)
{
        unsigned long v;
        char *end;

        if (!text || *text < '0' || *text > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(text, &end, 10);
        if (errno || *end || v < 1 || v > 3600000)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int writer_parse_bool(const char *text, bool *ret)
{
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "0", "no", "false", "off" };

        for (size_t i = 0; text && i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(text, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(text, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

/* ---- the option table ----------------------------------------------------------------- */

enum {
        OPT_NAME,
        OPT_SOCKET,
        OPT_FREEZE_TIMEOUT,
        OPT_CONFIG,
        OPT_NO_RECONNECT,
        OPT_VERBOSE,
        OPT_HELP,
        _OPT_COMMON,
};

static const struct writer_app_option common_options[_OPT_COMMON] = {
        [OPT_NAME] = { .name = "name", .arg = "NAME", .help = "writer name shown by `vssadmin list writers`" },
        [OPT_SOCKET] = { .name = "socket", .arg = "PATH",
                         .help = "vssd's socket (default: $VSS_SOCKET, else /run/openvss/vssd.sock)" },
        [OPT_FREEZE_TIMEOUT] = { .name = "freeze-timeout", .arg = "MS",
                                 .help = "longest Freeze-to-Thaw window, 1..3600000 ms (default: vssd's, 60000)" },
        [OPT_CONFIG] = { .name = "config", .arg = "FILE",
                         .help = "read the [writer] section of FILE; options given here win" },
        [OPT_NO_RECONNECT] = { .name = "no-reconnect",
                               .help = "exit with status 1 when vssd goes away, instead of waiting for it and "
                                       "registering again" },
        [OPT_VERBOSE] = { .name = "verbose", .help = "also log debug lines" },
        [OPT_HELP] = { .name = "help", .help = "print this help and exit" },
};

struct opt_ref {
        const struct writer_app_option *o;
        bool common;
        int index;              /* in common_options or app->options */
};

struct kv {
        int opt;                /* index into the table of opt_ref */
        char *value;
        bool from_cli;
        unsigned line;
};

struct parse_ctx {
        struct writer_app *app;
        struct opt_ref *table;
        size_t n_table;
        struct kv *kvs;
        size_t n_kvs;
        const char *file;
        char err[512];
};

/* "freeze_timeout" and "freeze-timeout" name the same option. */
static bool key_matches(const char *key, const char *option)
{
        for (; *key && *option; key++, option++)
                if (*key != *option && !((*key == '_' || *key == '-') && *option == '-'))
                        return false;
        return *key == *option;
}

static int table_find(struct parse_ctx *p, const char *key)
{
        for (size_t i = 0; i < p->n_table; i++)
                if (key_matches(key, p->table[i].o->name))
                        return (int)i;
        return -1;
}

static int kv_add(struct parse_ctx *p, int opt, const char *value, bool from_cli, unsigned line)
{
        struct kv *n = realloc(p->kvs, (p->n_kvs + 1) * sizeof(*n));

        if (!n)
                return -ENOMEM;
        p->kvs = n;
        n[p->n_kvs] = (struct kv){ .opt = opt, .value = strdup(value), .from_cli = from_cli, .line = line };
        if (!n[p->n_kvs].value)
                return -ENOMEM;
        p->n_kvs++;
        return 0;
}

static void parse_ctx_done(struct parse_ctx *p)
{
        for (size_t i = 0; i < p->n_kvs; i++)
                free(p->kvs[i].value);
        free(p->kvs);
        free(p->table);
}

static int on_ini_key(void *userdata, const char *section, const char *key, const char *value)
{
        struct parse_ctx *p = userdata;
        int opt;

        if (*section && !streq(section, "writer")) {
                fmt_trunc(p->err, sizeof(p->err), "unknown section [%s] (the options go in [writer])", section);
                return 0;
        }
        opt = table_find(p, key);
        if (opt < 0 || (p->table[opt].common && (p->table[opt].index == OPT_CONFIG ||
                                                 p->table[opt].index == OPT_HELP))) {
                fmt_trunc(p->err, sizeof(p->err), "unknown key '%s'", key);
                return 0;
        }
        if (!value || !*value) {
                fmt_trunc(p->err, sizeof(p->err), "key '%s' has no value", key);
                return 0;
        }
        if (kv_add(p, opt, value, false, 0) < 0) {
                fmt_trunc(p->err, sizeof(p->err), "out of memory");
                return 0;
        }
        return 1;
}

static void print_help(struct writer_app *app, FILE *f, struct parse_ctx *p)
{
        fprintf(f, "Usage: %s [OPTION]...\n%s\n\nOptions:\n", app->program, app->summary);
        for (size_t i = 0; i < p->n_table; i++) {
                const struct writer_app_option *o = p->table[i].o;
                char left[64];

                fmt_trunc(left, sizeof(left), "--%s%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "",
                          o->multiple ? "..." : "");
                if (p->table[i].common && p->table[i].index == OPT_NAME)
                        fprintf(f, "  %-26s %s (default: %s)\n", left, o->help, app->default_name);
                else
                        fprintf(f, "  %-26s %s\n", left, o->help);
        }
        fprintf(f, "\nEvery option is also a key of the [writer] section of --config FILE "
                   "(freeze_timeout = 20000).\n");
}

static _printf_(3, 4) int usage_error(struct writer_app *app, struct parse_ctx *p, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", app->program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help'.\n", app->program);
        return 2;
}

static int apply_common(struct writer_app *app, int index, const char *value, char *err, size_t errlen)
{
        struct writer_app_settings *s = &app->s;
        char **target = NULL;

        switch (index) {
        case OPT_NAME:
                if (!*value || strlen(value) > 255) {
                        fmt_trunc(err, errlen, "the writer name must have 1 to 255 characters");
                        return -EINVAL;
                }
                target = &s->name;
                break;
        case OPT_SOCKET:
                target = &s->socket;
                break;
        case OPT_FREEZE_TIMEOUT:
                if (writer_parse_ms(value, &s->freeze_timeout_ms) < 0) {
                        fmt_trunc(err, errlen, "freeze timeout '%s' is not a number of milliseconds in 1..3600000",
                                  value);
                        return -EINVAL;
                }
                return 0;
        case OPT_NO_RECONNECT:
                if (writer_parse_bool(value, &s->no_reconnect) < 0) {
                        fmt_trunc(err, errlen, "no_reconnect '%s' is not a boolean (yes/no)", value);
                        return -EINVAL;
                }
                return 0;
        case OPT_VERBOSE:
                if (writer_parse_bool(value, &s->verbose) < 0) {
                        fmt_trunc(err, errlen, "verbose '%s' is not a boolean (yes/no)", value);
                        return -EINVAL;
                }
                return 0;
        default:
                return 0;
        }
        free(*target);
        *target = strdup(value);
        return *target ? 0 : -ENOMEM;
}

int writer_app_parse(struct writer_app *app, int argc, char **argv, int *ret_exit)
{
        struct parse_ctx p = { .app = app };
        struct option *longopts = NULL;
        size_t n_app = 0;
        int c, r = 0;

        for (; app->options && app->options[n_app].name; n_app++)
                ;
        p.n_table = _OPT_COMMON + n_app;
        p.table = calloc(p.n_table, sizeof(*p.table));
        longopts = calloc(p.n_table + 1, sizeof(*longopts));
        if (!p.table || !longopts) {
                fprintf(stderr, "%s: out of memory\n", app->program);
                *ret_exit = 1;
                goto out;
        }
        /* The common options, the program's, and --help last, as the help text lists them. */
        for (size_t i = 0; i < OPT_HELP; i++)
                p.table[i] = (struct opt_ref){ &common_options[i], true, (int)i };
        for (size_t i = 0; i < n_app; i++)
                p.table[OPT_HELP + i] = (struct opt_ref){ &app->options[i], false, (int)i };
        p.table[p.n_table - 1] = (struct opt_ref){ &common_options[OPT_HELP], true, OPT_HELP };
        for (size_t i = 0; i < p.n_table; i++)
                longopts[i] = (struct option){ p.table[i].o->name, p.table[i].o->arg ? required_argument : no_argument,
                                               NULL, 0x100 + (int)i };

        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":", longopts, NULL)) >= 0) {
                int opt = c - 0x100;

                if (c == ':') {
                        *ret_exit = usage_error(app, &p, "option '%s' needs an argument", argv[optind - 1]);
                        goto out;
                }
                if (c == '?' || opt < 0 || (size_t)opt >= p.n_table) {
                        *ret_exit = usage_error(app, &p, "unknown option '%s'", argv[optind - 1]);
                        goto out;
                }
                if (p.table[opt].common && p.table[opt].index == OPT_HELP) {
                        print_help(app, stdout, &p);
                        *ret_exit = 0;
                        goto out;
                }
                if (kv_add(&p, opt, p.table[opt].o->arg ? optarg : "true", true, 0) < 0) {
                        fprintf(stderr, "%s: out of memory\n", app->program);
                        *ret_exit = 1;
                        goto out;
                }
        }
        if (optind < argc) {
                *ret_exit = usage_error(app, &p, "unexpected argument '%s'", argv[optind]);
                goto out;
        }

        /* The config file named on the command line (the last --config wins). */
        for (size_t i = 0; i < p.n_kvs; i++)
                if (p.table[p.kvs[i].opt].common && p.table[p.kvs[i].opt].index == OPT_CONFIG)
                        p.file = p.kvs[i].value;
        if (p.file) {
                int line = ini_parse(p.file, on_ini_key, &p);

                if (line < 0) {
                        fprintf(stderr, "%s: cannot read config file %s: %s\n", app->program, p.file,
                                line == -1 ? strerror(errno) : "out of memory");
                        *ret_exit = 2;
                        goto out;
                }
                if (line > 0) {
                        fprintf(stderr, "%s: %s:%d: %s\n", app->program, p.file, line,
                                p.err[0] ? p.err : "syntax error");
                        *ret_exit = 2;
                        goto out;
                }
        }

        /* Apply option by option: the command line's values if it has any, else the file's. */
        for (size_t opt = 0; opt < p.n_table; opt++) {
                bool cli = false;
                char err[512] = "";

                for (size_t i = 0; i < p.n_kvs; i++)
                        if (p.kvs[i].opt == (int)opt && p.kvs[i].from_cli)
                                cli = true;
                for (size_t i = 0; i < p.n_kvs; i++) {
                        struct kv *kv = &p.kvs[i];

                        if (kv->opt != (int)opt || kv->from_cli != cli)
                                continue;
                        if (p.table[opt].common)
                                r = apply_common(app, p.table[opt].index, kv->value, err, sizeof(err));
                        else
                                r = app->set(app->userdata, p.table[opt].o->name, kv->value, err, sizeof(err));
                        if (r < 0) {
                                if (cli)
                                        *ret_exit = usage_error(app, &p, "--%s: %s", p.table[opt].o->name,
                                                                err[0] ? err : strerror(-r));
                                else {
                                        fprintf(stderr, "%s: %s: %s: %s\n", app->program, p.file,
                                                p.table[opt].o->name, err[0] ? err : strerror(-r));
                                        *ret_exit = 2;
                                }
                                goto out;
                        }
                }
        }
        if (!app->s.name && !(app->s.name = strdup(app->default_name))) {
                *ret_exit = 1;
                goto out;
        }
        if (p.file && !(app->s.config = strdup(p.file))) {
                *ret_exit = 1;
                goto out;
        }
        if (app->check) {
                char err[512] = "";

                if (app->check(app->userdata, err, sizeof(err)) < 0) {
                        *ret_exit = usage_error(app, &p, "%s", err);
                        goto out;
                }
        }
        log_setup(app->program);
        log_set_verbose(app->s.verbose);
        free(longopts);
        parse_ctx_done(&p);
        return 0;
out:
        free(longopts);
        parse_ctx_done(&p);
        return -1;
}

void writer_app_done(struct writer_app *app)
{
        vss_writer *w = TAKE_PTR(app->w);

        vss_writer_free(w);
        writer_desc_done(&app->desc);
        free(app->s.name);
        free(app->s.socket);
        free(app->s.config);
        app->s = (struct writer_app_settings){ 0 };
}

/* ---- handlers ------------------------------------------------------------------------- */

const char *writer_event_name(vss_writer *w)
{
        enum vss_event e = vss_writer_get_current_event(w);

        /* vss_event_name() says "Unknown"; a writer between events has none. */
        return (unsigned)e < _VSS_EVENT_MAX ? vss_event_name(e) : "(no event)";
}

bool writer_veto(vss_writer *w, vss_hresult failure, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_err("%s: %s (0x%08X %s)", writer_event_name(w), msg, (uint32_t)failure, vss_hresult_name(failure));
        vss_writer_set_failure(w, failure);
        vss_writer_set_failure_message(w, msg);
        return false;
}

int64_t writer_budget_ms(vss_writer *w, int64_t margin_ms)
{
        int64_t left = vss_writer_get_time_left_ms(w);

        if (left == INT64_MAX)
                return left;
        return left > margin_ms ? left - margin_ms : 0;
}

static bool dispatch_event(vss_writer *w, struct writer_app *app, enum vss_event e,
                           bool (*h)(vss_writer *, void *))
{
        bool ok;

        switch (e) {
        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PREPARE_SNAPSHOT:
        case VSS_EVENT_FREEZE:
        case VSS_EVENT_PRE_RESTORE:
                app->busy = true;
                break;
        default:
                break;
        }
        log_debug("%s", vss_event_name(e));
        ok = h ? h(w, app->userdata) : true;
        switch (e) {
        case VSS_EVENT_BACKUP_COMPLETE:
        case VSS_EVENT_BACKUP_SHUTDOWN:
        case VSS_EVENT_ABORT:
        case VSS_EVENT_POST_RESTORE:
                app->busy = false;
                break;
        case VSS_EVENT_PREPARE_SNAPSHOT:
        case VSS_EVENT_FREEZE:
        case VSS_EVENT_PRE_RESTORE:
                /* A veto here ends the sequence (vssd aborts the set, or the requester stops). */
                if (!ok && e == VSS_EVENT_PRE_RESTORE)
                        app->busy = false;
                break;
        default:
                break;
        }
        return ok;
}

#define WRAP(event, field)                                                     \
        static bool wrap_##field(vss_writer *w, void *userdata)                \
        {                                                                      \
                struct writer_app *app = userdata;                             \
                return dispatch_event(w, app, event, app->handlers.field);     \
        }
WRAP(VSS_EVENT_IDENTIFY, on_identify)
WRAP(VSS_EVENT_PREPARE_BACKUP, on_prepare_backup)
WRAP(VSS_EVENT_PREPARE_SNAPSHOT, on_prepare_snapshot)
WRAP(VSS_EVENT_FREEZE, on_freeze)
WRAP(VSS_EVENT_THAW, on_thaw)
WRAP(VSS_EVENT_POST_SNAPSHOT, on_post_snapshot)
WRAP(VSS_EVENT_BACKUP_COMPLETE, on_backup_complete)
WRAP(VSS_EVENT_ABORT, on_abort)
WRAP(VSS_EVENT_BACKUP_SHUTDOWN, on_backup_shutdown)
WRAP(VSS_EVENT_PRE_RESTORE, on_pre_restore)
WRAP(VSS_EVENT_POST_RESTORE, on_post_restore)

static const struct vss_writer_handlers wrapped_handlers = {
        .on_identify = wrap_on_identify,
        .on_prepare_backup = wrap_on_prepare_backup,
        .on_prepare_snapshot = wrap_on_prepare_snapshot,
        .on_freeze = wrap_on_freeze,
        .on_thaw = wrap_on_thaw,
        .on_post_snapshot = wrap_on_post_snapshot,
        .on_backup_complete = wrap_on_backup_complete,
        .on_abort = wrap_on_abort,
        .on_backup_shutdown = wrap_on_backup_shutdown,
        .on_pre_restore = wrap_on_pre_restore,
        .on_post_restore = wrap_on_post_restore,
};

/* ---- the registration loop ------------------------------------------------------------ */

static struct writer_app *signal_app;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
        vss_writer *w;

        (void)sig;
        stop_requested = 1;
        w = signal_app ? signal_app->w : NULL;
        if (w)
                vss_writer_stop(w);
}

/* Sleeps up to ms, waking early on a signal. */
static void pause_ms(unsigned ms)
{
        uint64_t end = clock_monotonic_us() + (uint64_t)ms * USEC_PER_MSEC;

        while (!stop_requested) {
                uint64_t now = clock_monotonic_us();
                if (now >= end)
                        break;
                (void)poll(NULL, 0, MIN(ms_until(now, end), 100));
        }
}

static vss_hresult app_register(struct writer_app *app, char *err, size_t errlen)
{
        struct writer_desc *d = &app->desc;
        struct vss_writer_options o = {
                .name = app->s.name,
                .volumes = (const char *const *)d->volumes,
                .freeze_timeout_ms = app->s.freeze_timeout_ms,
                .usage = VSS_UT_USERDATA,
                .source = app->source,
                .socket_path = app->s.socket,
                .restore_method = &app->restore_method,
                .no_reconnect = app->s.no_reconnect,
        };
        vss_writer *w = NULL;
        vss_hresult hr;

        hr = vss_writer_new(&o, &wrapped_handlers, app, &w);
        for (size_t i = 0; VSS_SUCCEEDED(hr) && i < d->n_components; i++) {
                struct writer_desc_component *c = &d->components[i];

                hr = vss_writer_add_component(w, c->type, c->logical_path, c->name, c->caption, true);
                for (size_t j = 0; VSS_SUCCEEDED(hr) && j < c->n_files; j++)
                        hr = vss_writer_add_component_file(w, c->logical_path, c->name, c->files[j].path,
                                                           c->files[j].filespec, c->files[j].recursive);
        }
        if (VSS_SUCCEEDED(hr))
                hr = vss_writer_subscribe(w);
        if (VSS_FAILED(hr)) {
                fmt_trunc(err, errlen, "0x%08X %s: %s%s%s", (uint32_t)hr, vss_hresult_name(hr),
                          vss_hresult_message(hr), w && *vss_writer_get_error_detail(w) ? ": " : "",
                          w ? vss_writer_get_error_detail(w) : "");
                vss_writer_free(w);
                return hr;
        }
        app->w = w;
        return hr;
}

static void log_registered(struct writer_app *app)
{
        char id[VSS_ID_STRING_MAX], inst[VSS_ID_STRING_MAX], vols[1024] = "";
        size_t len = 0;
        vss_id x, y;

        vss_writer_get_writer_id(app->w, &x);
        vss_writer_get_instance_id(app->w, &y);
        for (size_t i = 0; i < app->desc.n_volumes && len < sizeof(vols); i++)
                len += (size_t)snprintf(vols + len, sizeof(vols) - len, "%s%s", i ? ", " : "", app->desc.volumes[i]);
        log_info("writer '%s' registered with vssd: writer id %s, instance %s, volumes %s", app->s.name,
                 vss_id_format(&x, id), vss_id_format(&y, inst), vols[0] ? vols : "(none)");
}

int writer_app_run(struct writer_app *app)
{
        struct sigaction sa = { .sa_handler = on_signal }, ign = { .sa_handler = SIG_IGN };
        unsigned backoff = 0, tick_ms = app->tick_ms ?: 1000;
        char err[2048], last_err[2048] = "";
        uint64_t next_tick = 0;
        vss_id instance = VSS_ID_NULL;
        bool connected = true;
        int exit_code = 0;

        signal_app = app;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGPIPE, &ign, NULL);

        while (!stop_requested) {
                if (!app->w) {
                        struct writer_desc d = { 0 };
                        vss_hresult hr;
                        int r;

                        err[0] = 0;
                        r = app->describe(app->userdata, &d, err, sizeof(err));
                        if (r >= 0) {
                                writer_desc_done(&app->desc);
                                app->desc = d;
                                hr = app_register(app, err, sizeof(err));
                                if (VSS_SUCCEEDED(hr)) {
                                        log_registered(app);
                                        vss_writer_get_instance_id(app->w, &instance);
                                        connected = true;
                                        backoff = 0;
                                        last_err[0] = 0;
                                        continue;
                                }
                                if (hr == VSS_E_WRITER_INFRASTRUCTURE && app->s.no_reconnect) {
                                        log_err("cannot register with vssd: %s", err);
                                        exit_code = 1;
                                        break;
                                }
                        } else
                                writer_desc_done(&d);
                        /* Log a problem once, and again only when it changes. */
                        if (!streq(err, last_err)) {
                                log_warn("%s %s; trying again", r < 0 ? "cannot describe the writer's data:"
                                                                      : "cannot register with vssd:", err);
                                snprintf(last_err, sizeof(last_err), "%s", err);
                        }
                        backoff = backoff ? MIN(backoff * 2, (unsigned)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
                        pause_ms(backoff);
                        if (app->tick)
                                (void)app->tick(app->userdata);
                        continue;
                }

                vss_hresult hr = vss_writer_dispatch(app->w, (int)tick_ms);
                if (VSS_FAILED(hr)) {
                        log_err("lost the connection to vssd: 0x%08X %s: %s; exiting (--no-reconnect)",
                                (uint32_t)hr, vss_hresult_name(hr), vss_writer_get_error_detail(app->w));
                        exit_code = 1;
                        break;
                }
                if (vss_writer_fd(app->w) < 0) {
                        if (connected)
                                log_warn("lost the connection to vssd; registering again when it is back");
                        connected = false;
                } else {
                        vss_id now;

                        vss_writer_get_instance_id(app->w, &now);
                        if (!connected || !vss_id_equal(&now, &instance)) {
                                app->busy = false;      /* vssd forgot any set it had with the old instance */
                                log_registered(app);
                        }
                        instance = now;
                        connected = true;
                }
                if (app->tick && clock_monotonic_us() >= next_tick) {
                        bool changed = app->tick(app->userdata);

                        next_tick = clock_monotonic_us() + (uint64_t)tick_ms * USEC_PER_MSEC;
                        if (changed && !app->busy) {
                                struct writer_desc d = { 0 };

                                if (app->describe(app->userdata, &d, err, sizeof(err)) >= 0 &&
                                    !writer_desc_equal(&d, &app->desc)) {
                                        vss_writer *old = TAKE_PTR(app->w);

                                        log_info("the data's layout changed; registering again");
                                        vss_writer_free(old);
                                }
                                writer_desc_done(&d);
                        }
                }
        }
        if (app->shutdown)
                app->shutdown(app->userdata);
        if (stop_requested)
                log_info("stopping on a signal");
        signal_app = NULL;
        return exit_code;
}
