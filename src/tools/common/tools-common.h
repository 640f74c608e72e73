/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Code shared by vssadmin and vshadow: the command-line parser that accepts
 * both the Windows syntax (/for=X, /quiet, option names in any case) and the
 * Linux one (--for=X, --for X, --quiet, -wi=W), the /maxsize parser, size
 * formatting, and the one error printer every failure goes through.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "basic/macro.h"
#include "vss/vss.h"

enum tool_opt_type {
        TOOL_OPT_FLAG,          /* --quiet, /quiet, -p */
        TOOL_OPT_VALUE,         /* --for=X, --for X, /for=X; the last one given wins */
        TOOL_OPT_LIST,          /* -wi=W ...: every value is kept, in order */
};

struct tool_option {
        const char *name;       /* long name, matched case-insensitively ("for") */
        const char *short_name; /* single-dash name ("wi"), or NULL */
        enum tool_opt_type type;
        const char *metavar;    /* what the value is in --help ("VOL"); NULL: "VALUE" */
        const char *help;       /* one line for --help, or NULL */
};

enum {
        /* "/name" is an option too (vssadmin). Without it, "/mnt/data" is a positional argument. */
        TOOL_ARGS_SLASH = 1 << 0,
};

struct tool_opt_value {
        bool set;
        const char *value;      /* TOOL_OPT_VALUE: the last value, borrowed from argv */
        const char **list;      /* TOOL_OPT_LIST: all values, borrowed from argv */
        size_t n_list;
};

struct tool_args {
        const char **positional;        /* borrowed from argv */
        size_t n_positional;
        struct tool_opt_value *values;  /* one per entry of the option table */
        size_t n_values;
};

/*
 * Parses argv[1..argc-1] against the option table.  Returns VSS_S_OK, or
 * VSS_E_INVALIDARG with a malloc'ed explanation in *ret_error ("unknown option
 * '/fro'"), or VSS_E_OUTOFMEMORY.  A bare "--" ends the options.
 */
vss_hresult tool_args_parse(const struct tool_option *opts, size_t n_opts, unsigned flags,
                            int argc, char **argv, struct tool_args *ret, char **ret_error);
void tool_args_done(struct tool_args *a);

/*
 * --help: one line per option of the table whose bit is set in 'mask' (~0u: all),
 * starting with the option ("  -wi=W, --include-writer=W   help"), so that
 * every option the parser accepts is listed (tests/docs compares the list
 * with the man page).
 */
void tool_print_options(FILE *f, const struct tool_option *opts, size_t n_opts, unsigned mask);

static inline bool tool_args_flag(const struct tool_args *a, size_t i)
{
        return i < a->n_values && a->values[i].set;
}

static inline const char *tool_args_value(const struct tool_args *a, size_t i)
{
        return i < a->n_values && a->values[i].set ? a->values[i].value : NULL;
}

enum tool_size_kind {
        TOOL_SIZE_BYTES,
        TOOL_SIZE_UNBOUNDED,
        TOOL_SIZE_PERCENT,
};

struct tool_size {
        enum tool_size_kind kind;
        uint64_t bytes;         /* TOOL_SIZE_BYTES */
        unsigned percent;       /* TOOL_SIZE_PERCENT, 1..100 */
};

/*
 * Parses a /maxsize value: "900MB", "1.5G", "300000000" (bytes), "UNBOUNDED",
 * "20%".  Units B, KB, MB, GB, TB, PB, EB or B, K, M, G, T, P, E, any case,
 * powers of 1024.  Returns VSS_S_OK or VSS_E_INVALIDARG (empty, garbage,
 * negative, overflow, percent outside 1..100).
 */
vss_hresult tool_parse_size(const char *text, struct tool_size *ret);

/* "0 bytes", "512 bytes", "320 MB", "2.06 GB", "11.8 GB": three significant digits. */
char *tool_format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Prints, to stderr:
 *     Error: 0x80042316 VSS_E_SNAPSHOT_SET_IN_PROGRESS
 *     Another shadow copy creation is already in progress.
 *     <detail, if not NULL or empty>
 * and returns the exit status to use (EXIT_FAILURE).
 */
int tool_print_error(vss_hresult hr, const char *detail);
int tool_print_errorf(vss_hresult hr, const char *fmt, ...) _printf_(2, 3);

/* "0x80042316" */
char *tool_format_hresult(vss_hresult hr, char buf[11]);

/* The environment entries of a command a tool runs: v is NULL-terminated; oom is set
 * when an entry could not be added (check it before running). */
struct tool_env {
        char **v;
        size_t n;
        bool oom;
};

void tool_env_add(struct tool_env *e, const char *fmt, ...) _printf_(2, 3);
void tool_env_done(struct tool_env *e);

/* Exit statuses, documented in docs/vssadmin.md and docs/vshadow.md. */
#define TOOL_EXIT_FAILURE 1     /* the operation failed */
#define TOOL_EXIT_USAGE   2     /* bad command line */
