/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* registry.c: the writers and their events. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/wire.h"
#include "vss/vss.h"
#include "vssd/loop.h"

struct conn;
struct session;
struct vssd;
struct writer;

#define VSSD_METADATA_MAX (256 * 1024)

/* Called when an awaited event ends: answered (w->state says how), past its deadline or its writer's
 * connection closed (FAILED_AT_<ev>, not responding).  'ctx' is what the sender registered. */
typedef void (*writer_event_done_fn)(struct vssd *v, void *ctx, struct writer *w, enum vss_event ev);
/* Called when a writer's freeze timer expires before it was cancelled. */
typedef void (*writer_freeze_fn)(struct vssd *v, void *ctx, struct writer *w);

struct writer {
        struct writer *next;
        uint64_t conn_serial;           /* 0 once the writer's connection closed */
        bool gone;
        char *name;
        char *instance_name;
        vss_id writer_id, instance_id;
        char **volumes;
        size_t n_volumes;
        uint32_t freeze_timeout_ms;
        char *usage, *source;
        json_t *components;             /* array, Register format */
        json_t *restore_method;         /* {method,service,user_procedure,writer_restore,reboot_required} */
        pid_t pid;
        uid_t uid;

        enum vss_writer_state state;
        vss_hresult failure;
        char *message;
        json_t *metadata;               /* object "logical_path/name" -> {logical_path,name,backup_metadata} */

        /* Set participation (owned by the session driving it). */
        struct session *session;
        bool involved, partial;
        int pending_event;              /* -1: none */
        json_int_t pending_id;
        writer_event_done_fn event_done;
        void *event_ctx;
        struct timer deadline;
        uint32_t deadline_ms;
        struct timer freeze_timer;
        writer_freeze_fn freeze_expired;
        void *freeze_ctx;
        vss_id freeze_set_id;
};

/* A writer id and name belong to the uid that first registered them in this run. */
struct writer_claim {
        struct writer_claim *next;
        vss_id writer_id;
        char *name;
        uid_t uid;
};

void method_writer_register(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void method_writers_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params);
void writer_closed(struct vssd *v, struct writer *w);
void writer_free(struct writer *w);
void writer_claims_free(struct vssd *v);
void writers_sweep(struct vssd *v);
size_t writers_count(struct vssd *v);
json_t *writer_status_json(struct writer *w);
/* What Writers.List returns: every registered writer, in registration order. */
json_t *writers_list_json(struct vssd *v);
json_t *writer_wmd_json(struct writer *w);
void writer_handle_reply(struct vssd *v, struct writer *w, struct wire_msg *m);
/* Sends event 'ev' with 'params' (taken).  With 'done' the reply is awaited (within deadline_ms unless 0)
 * and done(ctx) hears of its end; without, the writer's state moves on at once.  false when the writer's connection is closed (an awaited event then failed it). */
bool writer_send_event(struct vssd *v, struct writer *w, enum vss_event ev, json_t *params, uint32_t deadline_ms,
                       writer_event_done_fn done, void *ctx);
/* Forgets the awaited event (its reply will be ignored, no callback). */
void writer_cancel_pending(struct vssd *v, struct writer *w);
/* Arms the writer's freeze timer (its freeze_timeout_ms from now); expired(ctx) is called unless cancelled. */
void writer_arm_freeze(struct vssd *v, struct writer *w, writer_freeze_fn expired, void *ctx);
void writer_cancel_freeze(struct vssd *v, struct writer *w);
void writer_set_failed(struct vssd *v, struct writer *w, enum vss_event ev, vss_hresult hr, const char *msg);
struct writer *writer_find_id(struct vssd *v, const vss_id *id);
