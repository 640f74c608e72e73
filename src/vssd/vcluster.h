/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared by cluster.c (the cluster thread: membership, host records) and the cluster
 * snapshot sets: cluster-set.c (the state machines on the loop thread) and
 * cluster-set-thread.c (their etcd calls on the cluster thread).  The two threads share only what 'lock' guards: jobs go to the thread
 * (k->jobs, then cond), results come back (k->msgs, then the eventfd k->evfd).
 */

#include <pthread.h>

#include "cluster/cluster-config.h"
#include "cluster/cset-store.h"
#include "cluster/cset.h"
#include "cluster/etcd.h"
#include "vssd/vssd.h"

enum vc_job_kind {
        VC_JOB_START,           /* coordinator: grant C, T1 (spec), keep C alive */
        VC_JOB_WRITE,           /* a WRITE_/PROPOSE_/RELEASE action of either machine */
        VC_JOB_END,             /* T11: 'end' (if .end_put), then delete 'coordinator' and revoke C */
        VC_JOB_FORGET,          /* a machine is over: stop polling for it */
};

struct vc_job {
        struct vc_job *next;
        enum vc_job_kind kind;
        bool coord;                     /* the coordinator's (else the participant's) */
        struct cset_action act;
        char *spec;                     /* VC_JOB_START: the spec's JSON */
        char set_id[CSET_SET_ID_MAX];
        char hosts[CSET_MAX_HOSTS][CSET_HOST_MAX];
        size_t n_hosts;
        bool end_put;
};

enum vc_msg_kind {
        VC_MSG_EVENT,           /* feed .ev to the coordinator (.coord) or the participant */
        VC_MSG_STARTED,         /* T1's outcome: .hr, .detail */
        VC_MSG_SPEC,            /* a set whose spec names this host: .spec */
};

struct vc_msg {
        struct vc_msg *next;
        enum vc_msg_kind kind;
        bool coord;
        struct cset_event ev;
        char host[CSET_HOST_MAX];       /* what ev.host points to */
        vss_hresult hr;
        char detail[CSET_DETAIL_MAX];
        char *spec;
};

/* The cluster thread's view of the current set (one at a time per host: one cluster set
 * runs at a time in the cluster). */
struct vc_tset {
        struct cset_store st;
        char hosts[CSET_MAX_HOSTS][CSET_HOST_MAX];
        const char *host_ptrs[CSET_MAX_HOSTS];
        bool coord, part;               /* whose keys we poll */
        int64_t lease;                  /* the set lease C (coordinator), 0: none */
        uint64_t next_keepalive;
        uint64_t next_poll;
        bool unreachable;               /* the last call failed: an ETCD_OK is owed */
        unsigned seen;                  /* VC_SEEN_* bits already posted */
        uint64_t acks[3];               /* per kind (prepared, frozen, done): a bit per host posted */
};

struct vcluster {
        struct cluster_config cfg;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* on CLOCK_MONOTONIC */
        int evfd;                       /* the thread's messages are waiting */

        /* The watch thread (cluster-set-thread.c): it hands the cluster thread the keys put under
         * P/sets/ (which it turns into events without reading them again) and rings for a poll
         * at once on any other change (a delete, the lock, a host record). */
        pthread_t wthread;
        bool wstarted;
        pthread_cond_t wcond;           /* the watch thread's waits, on CLOCK_MONOTONIC */

        /* Guarded by lock. */
        bool stop;
        bool kick;                      /* the watch saw a change: poll now */
        struct etcd_range_result puts;  /* the watch's puts under P/sets/, not taken yet (kvs only) */
        char *record;                   /* newest record from the loop (no updated_us); NULL: none yet */
        uint64_t record_gen;            /* bumped with each new record, and with each job */
        json_t *view;                   /* every host, as last read; NULL before the first read */
        uint64_t view_us;               /* realtime of that read */
        char error[512];                /* the last etcd failure, "" once a call succeeds again */
        struct vc_job *jobs, *jobs_tail;
        struct vc_msg *msgs, *msgs_tail;

        /* Cluster thread only. */
        struct vc_tset ts;
        char last_lock_set[CSET_SET_ID_MAX];    /* the set the lock named at the last poll */
        struct vc_job *held_start;              /* a START waiting for this host's previous set to end */
        uint64_t held_until;
        uint64_t next_lock_poll;

        /* Loop thread only. */
        char *built;                    /* the last record handed over */
        struct timer tick;
        struct vcset *set;              /* cluster-set.c */
};

/* cluster-set-thread.c, cluster thread: run the queued jobs and the polls that are due; returns the
 * monotonic time it wants to run again. */
uint64_t vcset_thread_run(struct vcluster *k, struct etcd_client *c);
/* At the thread's end: revoke the set lease if we hold one. */
void vcset_thread_stop(struct vcluster *k, struct etcd_client *c);
/* The watch thread: started after the cluster thread; stopped (joined) once k->stop is set. */
int vcset_watch_start(struct vcluster *k);
void vcset_watch_join(struct vcluster *k);
/* cluster-set.c, loop thread. */
int vcset_init(struct vssd *v);
void vcset_free(struct vssd *v);
json_t *shadows_record_json(struct vssd *v);
