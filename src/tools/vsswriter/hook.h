/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Running one hook command for one writer event, and the pure rules that
 * turn what it printed into a veto (kept apart so the unit tests can pin them).
 */

#include <stddef.h>
#include <stdint.h>

#include "vss/vss.h"

#define HOOK_MESSAGE_MAX 4096
/* The hook must end this long before the daemon stops waiting, so the reply still arrives. */
#define HOOK_MARGIN_MS 100

/*
 * The failure a hook that exited non-zero reports: one of the five writer
 * failures if the last non-empty line of its stdout names one (hex or
 * symbolic), else VSS_E_WRITERERROR_NONRETRYABLE.
 */
vss_hresult hook_parse_failure(const char *out, size_t len);

/* Trims surrounding whitespace in place and caps at HOOK_MESSAGE_MAX bytes. Returns s. */
char *hook_trim_message(char *s);

struct hook_result {
        vss_hresult failure;            /* VSS_S_OK when the hook succeeded */
        char message[HOOK_MESSAGE_MAX + 1];
};

/*
 * Runs `/bin/sh -c cmd` in its own process group with 'env' (NULL-terminated
 * "KEY=value" entries, added to the current environment) and waits at most
 * budget_ms (< 0: forever), killing the whole group when time is up.
 * Returns 0 and fills *ret, or -errno when the hook could not be started at all.
 */
int hook_run(const char *cmd, char *const *env, int64_t budget_ms, struct hook_result *ret);
