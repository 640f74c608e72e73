/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* catalog.c: the SQLite catalog and the event log. */

#include <jansson.h>
#include <stdint.h>

#include "basic/macro.h"
#include "vss/vss.h"

struct session;
struct shadow;
struct vssd;
struct writer;

int catalog_open(struct vssd *v);
void catalog_close(struct vssd *v);
void catalog_event(struct vssd *v, const char *level, const char *source, vss_hresult hr, const char *fmt, ...)
        _printf_(5, 6);
json_t *catalog_events(struct vssd *v, int64_t limit, int64_t since_us);
int catalog_shadow_put(struct vssd *v, const struct shadow *sh);
int catalog_shadow_del(struct vssd *v, const vss_id *id);
int catalog_shadows_load(struct vssd *v);
int catalog_set_put(struct vssd *v, struct session *s, const char *status);
int catalog_metadata_put(struct vssd *v, const vss_id *set_id, struct writer *w);
