/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* storage.c: shadow storage associations (where a volume's diff area lives). */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vss/vss.h"

struct conn;
struct vssd;

struct storage_assoc {
        struct storage_assoc *next;
        char *for_vol;                  /* the shadowed volume (mount point) */
        char *on_vol;                   /* the volume holding its diff area */
        int64_t max_bytes;              /* -1: unbounded */
};

int storage_load(struct vssd *v);
void storage_done(struct vssd *v);
struct storage_assoc *storage_find(struct vssd *v, const char *for_vol);
/* VSS_E_INSUFFICIENT_STORAGE (message in err) when on_vol has less free space than the minimum diff area
 * ([storage] min_diff_area_mb).  Touches no daemon state: the provider worker calls it too. */
vss_hresult storage_check_on(unsigned min_diff_area_mb, const char *on_vol, char *err, size_t errlen);
void method_storage(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
