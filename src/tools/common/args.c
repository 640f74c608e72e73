/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One parser for both command-line dialects.  Windows admins type
 * "vssadmin delete shadows /For=C: /Quiet", Linux users type "--for=/mnt/data
 * --quiet" or "--for /mnt/data", and vshadow keeps its single-dash names
 * ("-p", "-wi=W").  Every token is classified once:
 *
 *   "--"            ends the options; everything after it is positional
 *   "--name[=v]"    long option (value from "=v" or from the next argument)
 *   "/name[=v]"     long option, only with TOOL_ARGS_SLASH (otherwise a path)
 *   "-name[=v]"     long or short option name
 *   anything else   positional
 *
 * Names match case-insensitively, as on Windows.  Values and positionals are
 * borrowed from argv, so the parse result lives as long as argv does.
 */

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "tools/common/tools-common.h"

static const struct tool_option *find_option(const struct tool_option *opts, size_t n_opts,
                                             const char *name, size_t len, bool allow_short,
                                             size_t *ret_index)
{
        for (size_t i = 0; i < n_opts; i++) {
                if (strlen(opts[i].name) == len && strncasecmp(opts[i].name, name, len) == 0) {
                        *ret_index = i;
                        return &opts[i];
                }
                if (allow_short && opts[i].short_name && strlen(opts[i].short_name) == len &&
                    strncasecmp(opts[i].short_name, name, len) == 0) {
                        *ret_index = i;
                        return &opts[i];
                }
        }
        return NULL;
}

static vss_hresult fail(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static vss_hresult fail(char **ret_error, const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        *ret_error = s;
        return s ? VSS_E_INVALIDARG : VSS_E_OUTOFMEMORY;
}

vss_hresult tool_args_parse(const struct tool_option *opts, size_t n_opts, unsigned flags,
                            int argc, char **argv, struct tool_args *ret, char **ret_error)
{
        struct tool_args a = {};
        bool only_positional = false;
        vss_hresult hr = VSS_E_OUTOFMEMORY;

        *ret_error = NULL;

        a.values = calloc(n_opts ? n_opts : 1, sizeof(*a.values));
        a.positional = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*a.positional));
        if (!a.values || !a.positional)
                goto out_free;
        a.n_values = n_opts;

        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *name, *eq, *value;
                const struct tool_option *o;
                const char *prefix;
                size_t idx, len;
                bool allow_short;

                if (only_positional) {
                        a.positional[a.n_positional++] = arg;
                        continue;
                }
                if (streq(arg, "--")) {
                        only_positional = true;
                        continue;
                }

                if (arg[0] == '-' && arg[1] == '-') {
                        prefix = "--";
                        name = arg + 2;
                        allow_short = false;
                } else if (arg[0] == '/' && (flags & TOOL_ARGS_SLASH) && arg[1]) {
                        prefix = "/";
                        name = arg + 1;
                        allow_short = false;
                } else if (arg[0] == '-' && arg[1]) {
                        prefix = "-";
                        name = arg + 1;
                        allow_short = true;
                } else {
                        a.positional[a.n_positional++] = arg;
                        continue;
                }

                eq = strchr(name, '=');
                len = eq ? (size_t)(eq - name) : strlen(name);
                o = find_option(opts, n_opts, name, len, allow_short, &idx);
                if (!o) {
                        hr = fail(ret_error, "Unknown option '%s%.*s'.", prefix, (int)len, name);
                        goto out_free;
                }

                if (o->type == TOOL_OPT_FLAG) {
                        if (eq) {
                                hr = fail(ret_error, "Option '%s%s' takes no value.", prefix, o->name);
                                goto out_free;
                        }
                        a.values[idx].set = true;
                        continue;
                }

                if (eq)
                        value = eq + 1;
                else if (i + 1 < argc)
                        value = argv[++i];
                else {
                        hr = fail(ret_error, "Option '%s%s' needs a value.", prefix, o->name);
                        goto out_free;
                }
                if (!*value) {
                        hr = fail(ret_error, "Option '%s%s' has an empty value.", prefix, o->name);
                        goto out_free;
                }

                a.values[idx].set = true;
                a.values[idx].value = value;
                if (o->type == TOOL_OPT_LIST) {
                        const char **l = reallocarray(a.values[idx].list, a.values[idx].n_list + 1,
                                                      sizeof(*l));
                        if (!l) {
                                hr = VSS_E_OUTOFMEMORY;
                                goto out_free;
                        }
                        l[a.values[idx].n_list++] = value;
                        a.values[idx].list = l;
                }
        }

        *ret = a;
        return VSS_S_OK;

out_free:
        tool_args_done(&a);
        return hr;
}

void tool_args_done(struct tool_args *a)
{
        if (a->values)
                for (size_t i = 0; i < a->n_values; i++)
                        free(a->values[i].list);
        free(a->values);
        free(a->positional);
        *a = (struct tool_args) {};
}

void tool_print_options(FILE *f, const struct tool_option *opts, size_t n_opts, unsigned mask)
{
        for (size_t i = 0; i < n_opts; i++) {
                const char *mv = opts[i].metavar ?: "VALUE";
                bool value = opts[i].type != TOOL_OPT_FLAG;
                char names[128] = "";
                int len = 0;

                if (i < 32 && !(mask & (1u << i)))
                        continue;
                if (opts[i].short_name)
                        len += snprintf(names + len, sizeof(names) - len, "-%s%s%s, ", opts[i].short_name,
                                        value ? "=" : "", value ? mv : "");
                if (len < (int)sizeof(names))
                        snprintf(names + len, sizeof(names) - len, "--%s%s%s", opts[i].name, value ? "=" : "",
                                 value ? mv : "");
                /* A long name gets its help on the next line rather than no gap. */
                if (strlen(names) > 26)
                        fprintf(f, "  %s\n  %-26s %s\n", names, "", opts[i].help ?: "");
                else
                        fprintf(f, "  %-26s %s\n", names, opts[i].help ?: "");
        }
}
