/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* provider-host.c: the provider table and the provider worker thread's jobs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vss/provider.h"

struct vssd;

struct provider {
        const struct vss_provider_ops *ops;
        void *state;
        struct vss_provider_ctx ctx;
        bool ok;
};

enum prov_op {
        PROV_BEGIN_PREPARE,
        PROV_END_PREPARE,
        PROV_PRE_COMMIT,
        PROV_COMMIT,
        PROV_POST_COMMIT,
        PROV_ABORT,
        PROV_DELETE,
        PROV_EXPOSE,
        PROV_UNEXPOSE,
        PROV_REVERT,
        PROV_WORK,                      /* j->work: vssd's own blocking work (no provider call) */
        PROV_DIFF_QUERY,                /* diff_area_query of j->path, into j->diff_area */
        PROV_DIFF_SET_MAX,              /* diff_area_set_max of j->path to j->max_bytes */
};

struct prov_job {
        struct prov_job *next;
        enum prov_op op;
        int provider;
        struct vss_provider_snapshot *snaps;
        size_t n;
        char path[VSS_PATH_MAX];
        bool freeze;                    /* PROV_COMMIT: syncfs+FIFREEZE around it */
        char state_dir[VSS_PATH_MAX];
        int64_t max_bytes;              /* PROV_DIFF_SET_MAX */
        struct vss_provider_diff_area diff_area;        /* PROV_DIFF_QUERY's result */
        char **protect;                 /* PROV_COMMIT: filesystems that must not be frozen */
        size_t n_protect;
        vss_hresult hr;                 /* mapped */
        vss_hresult raw_hr;
        char error[600];
        /* PROV_WORK: runs on the worker thread with no access to struct vssd; it reads and
         * writes only what userdata points to, and leaves its reason in j->error. */
        vss_hresult (*work)(struct prov_job *j);
        void (*done)(struct vssd *v, struct prov_job *j);
        void *userdata;
        uint64_t tag;
};

extern const struct vss_provider_ops *const provider_table[];
int providers_init(struct vssd *v);
void providers_done(struct vssd *v);
size_t providers_count(void);
int provider_find(struct vssd *v, const char *id_or_null, const char *volume, const char *fstype,
                  vss_hresult *ret_hr);
int provider_by_id(const char *id);
struct prov_job *prov_job_new(enum prov_op op, int provider, const struct vss_provider_snapshot *snaps, size_t n);
void prov_job_free(struct prov_job *j);
/* Queues work(j) for the worker thread (behind any provider call queued before it); done(v, j)
 * runs on the loop afterwards, with j->hr from work.  Returns -ENOMEM (nothing queued). */
/* Queues a PROV_DIFF_QUERY or PROV_DIFF_SET_MAX of 'volume' for the providers that keep diff
 * areas; j->hr is VSS_E_OBJECT_NOT_FOUND when none serves it.  -ENOMEM, or -ENOENT when no
 * provider keeps diff areas (nothing queued either way). */
int prov_submit_diff_area(struct vssd *v, enum prov_op op, const char *volume, int64_t max_bytes,
                          void (*done)(struct vssd *v, struct prov_job *j), void *userdata, uint64_t tag);
int prov_submit_work(struct vssd *v, vss_hresult (*work)(struct prov_job *j),
                     void (*done)(struct vssd *v, struct prov_job *j), void *userdata);
void prov_submit(struct vssd *v, struct prov_job *j);
void prov_dispatch_done(struct vssd *v);
vss_hresult provider_map_hr(vss_hresult hr);
