/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the hook output rules of vsswriter (src/tools/vsswriter/hook.c):
 * what a hook script prints decides the failure code and the message of a
 * veto, and a hook may print anything.  Invariants (abort() on violation): the
 * failure is always one of the five writer failures SetWriterFailure accepts;
 * a trimmed message has no surrounding whitespace, fits HOOK_MESSAGE_MAX and is
 * valid UTF-8 (it becomes a JSON string in the veto reply).
 */

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/vsswriter/hook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-hook-output: invariant violated: %s\n", what);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vss_hresult hr;
        json_t *j;
        char *msg;
        size_t n;

        if (size > 1024 * 1024)
                return 0;
        hr = hook_parse_failure((const char *)data, size);
        check(hr == VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT || hr == VSS_E_WRITERERROR_OUTOFRESOURCES ||
                      hr == VSS_E_WRITERERROR_TIMEOUT || hr == VSS_E_WRITERERROR_RETRYABLE ||
                      hr == VSS_E_WRITERERROR_NONRETRYABLE,
              "the failure is one of the five writer failures");

        msg = malloc(size + 1);
        if (!msg)
                return 0;
        memcpy(msg, data, size);
        msg[size] = 0;
        hook_trim_message(msg);
        n = strlen(msg);
        check(n <= HOOK_MESSAGE_MAX, "the message fits");
        check(n == 0 || (!isspace((unsigned char)msg[0]) && !isspace((unsigned char)msg[n - 1])),
              "the message is trimmed");
        /* It goes into a JSON string: jansson must take it. */
        j = json_string(msg);
        check(j != NULL, "the message is valid UTF-8");
        json_decref(j);
        free(msg);
        return 0;
}
