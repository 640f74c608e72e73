/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* session.c: a requester's session; its snapshot set is set.c's (set.h). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vss/vss.h"
#include "vssd/set.h"

struct conn;
struct vssd;
struct writer;

struct session {
        struct vssd *vssd;
        uint64_t conn_serial;
        pid_t pid;
        vss_id session_id;
        int32_t context;
        bool context_set;
        char backup_type[16];
        bool select_components, bootable;
        json_t *components;             /* AddComponent */
        json_t *excluded;               /* names or ids */
        vss_id set_id;
        struct set_volume *vols;
        size_t n_vols;
        json_t *restore_components;     /* PreRestore/PostRestore */
        bool backup_succeeded;

        /* The requester's call in progress, answered when its sequence ends. */
        json_int_t call_id;
        const char *call_method;

        /* The set: written by set.c only. */
        const struct set_ops *ops;
        enum set_phase phase;
        const struct set_sequence *seq; /* the sequence being walked, NULL when no call is in progress */
        size_t step;                    /* its next step */
        bool implicit_prepare;          /* DoSnapshotSet runs PrepareForBackup itself */
        int outstanding;                /* writer replies awaited */
        int prov_outstanding;           /* provider calls awaited */
        vss_hresult prov_hr;
        char prov_error[900];
        bool prov_prepared;             /* end_prepare reached: abort needed on failure */
        bool committed;
        vss_hresult fail_hr;
        char fail_detail[1024];
        vss_hresult record_hr;          /* the catalog could not record the set's shadow copies */
        char record_error[1024];
        bool closing;                   /* the requester is gone */
        bool freeze_expired;
        char fail_writer[256];          /* the writer whose failure is fail_hr, "" if none */
        /* Cluster sets (cluster-set.c): the requester's session coordinates, a session of
         * vssd's own (no connection) runs each participant's local part. */
        bool cluster_coordinator;
        bool cluster_participant;
        json_t *cluster_volumes;        /* coordinator: {"host": [{"volume","shadow_id"}]} */
        uint64_t cluster_hold_until_us; /* participant: the hold deadline D (monotonic), 0: none */
};

struct session *session_get(struct vssd *v, struct conn *c, bool create);
void session_release(struct vssd *v, struct session *s);
/* A session of vssd's own, without a requester (a cluster set's participant). */
struct session *session_new_internal(struct vssd *v, const struct set_ops *ops);
/* AddToSnapshotSet's checks and the new volume (shadow_id NULL: a new id); err says why not. */
vss_hresult session_add_volume(struct vssd *v, struct session *s, const char *vol, const char *pidstr,
                               const vss_id *shadow_id, char *err, size_t errlen);
json_t *session_status_json(struct vssd *v, struct session *s);
void session_finish_call(struct vssd *v, struct session *s, json_t *result);
void session_fail_call(struct vssd *v, struct session *s, vss_hresult hr, const char *detail);
void method_backup(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
void sessions_shutdown(struct vssd *v);
json_t *session_event_params(struct vssd *v, struct session *s, struct writer *w, enum vss_event ev);

extern const struct set_ops session_set_ops;
