/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one logging API of openvss's programs (daemons and tools; library code
 * never logs).  Every line names its program and pid and goes to stderr, which
 * is the journal under systemd and a log file when a daemon redirects it:
 *
 *     2026-12-02 14:26:02.123456 vssd[1234] info: shadow copy {..} created
 *
 * log_setup() names the program once at startup.  Lines are written whole
 * (stdio's stream lock), so threads do not interleave within a line.
 */

#include <stdbool.h>

#include "basic/macro.h"

enum log_level {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
};

/* The name in every line ("vssd", "vss-volsrv"); the default is "openvss". */
void log_setup(const char *program);
/* Debug lines are dropped unless verbose. */
void log_set_verbose(bool verbose);
bool log_is_verbose(void);

/* "error", "warning", "info", "debug"; anything else is LOG_LEVEL_ERROR. */
enum log_level log_level_from_name(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);

#define log_err(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                    \
        do {                                              \
                if (log_is_verbose())                     \
                        log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
        } while (0)
