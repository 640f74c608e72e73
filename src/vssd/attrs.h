/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pure helpers of the snapshot-set model, shared with the unit tests. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Persistent, No auto release, Differential" (vss-facts 5.3 words, bit order). */
void attributes_text(int32_t attributes, char *buf, size_t len);
/* "Backup", "ClientAccessible", ... ; NULL for a context that cannot create shadows. */
const char *context_type_name(int32_t context);
bool context_valid(int32_t context);
/* The attribute bits a context implies. */
int32_t context_attributes(int32_t context);

enum involvement {
        INVOLVE_NO,
        INVOLVE_YES,
        INVOLVE_PARTIAL,        /* some but not all volumes in the set: inconsistent */
};

/* How a writer with 'wvols' takes part in a set of 'svols' in 'context'. */
enum involvement involvement_compute(int32_t context, bool excluded, char *const *wvols, size_t n_wvols,
                                     char *const *svols, size_t n_svols);
