/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* shadows.c: the shadow copies vssd knows of. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "vss/provider.h"

struct conn;
struct revert;
struct vssd;

struct shadow {
        struct shadow *next;
        struct vss_provider_snapshot snap;
        int provider;                   /* index into the provider table, -1 unknown */
        int32_t attributes;             /* context bits | provider bits (without EXPOSED) */
        int64_t creation_time_us;
        char *exposed_path;
        char *published_path;           /* DIR/@GMT-... while published (pubver.c), mount queued or done */
        vss_id owner_session;
        int snapshots_count;
        bool deleting;
};

void shadow_free(struct shadow *sh);
json_t *shadow_prop_json(struct vssd *v, struct shadow *sh);
size_t shadows_on_volume(struct vssd *v, const char *volume);
struct shadow *shadow_find(struct vssd *v, const vss_id *id);
void shadow_delete(struct vssd *v, struct shadow *sh, void (*done)(struct vssd *, void *, vss_hresult), void *ud);
/* The provider lost the shadow copy (evicted, invalidated, gone): undo its
 * exposure, if any, and drop it from the list and the catalog.  'why' ends
 * the event logged for the exposure ("which was deleted to make room ...");
 * it must outlive the unexpose job (a string literal). */
void shadow_forget(struct vssd *v, struct shadow *sh, const char *why);
void shadows_release_session(struct vssd *v, const vss_id *session_id);
void method_shadows(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
void shadows_recover(struct vssd *v);
/* The running revert's text for errors ("a revert of VOL to shadow copy ID is running"), or NULL. */
const char *shadows_revert_running(struct vssd *v);
/* The volume a running revert takes offline, NULL if none. */
const char *shadows_reverting_volume(struct vssd *v);
void shadows_revert_free(struct revert *r);
