/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The provider table and the one provider worker thread.  Calls that can
 * block (begin_prepare .. abort, delete, expose, unexpose) are queued as
 * jobs; the worker runs them one at a time, in order, and posts them back on
 * an eventfd so their completion callbacks run on the loop thread.  vssd's own
 * blocking work (creating and deleting cow volumes) travels as PROV_WORK jobs
 * on the same queue: a function that sees only its job.  FIFO
 * order is what lets callers fire an abort or delete and forget it: anything
 * queued later sees its effect.
 */

#include <stdio.h>
#include <sys/eventfd.h>

#include "vssd/vssd.h"

const struct vss_provider_ops *const provider_table[] = {
#ifdef HAVE_BTRFS_PROVIDER
        &vss_provider_btrfs,
#endif
#ifdef HAVE_COW_PROVIDER
        &vss_provider_cow,
#endif
        NULL,
};

size_t providers_count(void)
{
        return ARRAY_SIZE(provider_table) - 1;
}

int provider_by_id(const char *id)
{
        vss_id a, b;

        if (vss_id_parse(id, &a) != VSS_S_OK)
                return -1;
        for (size_t i = 0; i < providers_count(); i++)
                if (vss_id_parse(provider_table[i]->provider_id, &b) == VSS_S_OK && vss_id_equal(&a, &b))
                        return (int)i;
        return -1;
}

vss_hresult provider_map_hr(vss_hresult hr)
{
        if (VSS_SUCCEEDED(hr))
                return VSS_S_OK;
        if (hr == VSS_E_PROVIDER_VETO || hr == VSS_E_OBJECT_NOT_FOUND || hr == VSS_E_INSUFFICIENT_STORAGE ||
            hr == VSS_E_OUTOFMEMORY || hr == VSS_E_INVALIDARG || hr == VSS_E_HOLD_WRITES_TIMEOUT ||
            hr == VSS_E_FLUSH_WRITES_TIMEOUT || hr == VSS_E_VOLUME_NOT_SUPPORTED ||
            /* RevertToSnapshot's own results */
            hr == VSS_E_VOLUME_IN_USE || hr == VSS_E_REVERT_IN_PROGRESS || hr == VSS_E_REVERT_VOLUME_LOST ||
            hr == VSS_E_NOTIMPL)
                return hr;
        return VSS_E_UNEXPECTED_PROVIDER_ERROR;
}

static void provider_log(void *userdata, const char *level, vss_hresult hr, const char *message)
{
        struct vssd *v = userdata;

        if (!level || (!streq(level, "info") && !streq(level, "warning") && !streq(level, "error")))
                level = "info";
        catalog_event(v, level, "provider", hr, "%s", message ? message : "");
}

int provider_find(struct vssd *v, const char *id_or_null, const char *volume, const char *fstype, vss_hresult *ret_hr)
{
        int want = -1;

        if (id_or_null) {
                want = provider_by_id(id_or_null);
                if (want < 0) {
                        *ret_hr = VSS_E_PROVIDER_NOT_REGISTERED;
                        return -1;
                }
        }
        for (size_t i = 0; i < v->n_providers; i++) {
                struct provider *p = &v->providers[i];
                bool ok = false;

                if (!p->ok || (want >= 0 && (int)i != want))
                        continue;
                if (p->ops->is_volume_supported(p->state, volume, fstype, &ok) >= 0 && ok)
                        return (int)i;
        }
        *ret_hr = want >= 0 ? VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER : VSS_E_VOLUME_NOT_SUPPORTED;
        return -1;
}

struct commit_args {
        struct provider *p;
        struct prov_job *j;
};

/* Test hook: VSSD_DEBUG_COMMIT_DELAY_MS=N makes every commit hang N ms before the provider's
 * commit is called: inside the FIFREEZE window for a provider that freezes (to exercise the hold
 * watchdog and a vssd killed while filesystems are frozen), just before a btrfs commit otherwise.
 * debug_sleep_from_env() logs first, so that a test can act while the commit hangs. */
static void commit_debug_delay(void)
{
        (void)debug_sleep_from_env("VSSD_DEBUG_COMMIT_DELAY_MS");
}

static vss_hresult commit_cb(void *userdata)
{
        struct commit_args *a = userdata;

        commit_debug_delay();
        return a->p->ops->commit(a->p->state, a->j->snaps, a->j->n);
}

/* Every provider that keeps diff areas, until one serves the volume; its result as it gave it. */
static vss_hresult run_diff_area(struct vssd *v, struct prov_job *j)
{
        vss_hresult hr = VSS_E_OBJECT_NOT_FOUND;

        j->error[0] = 0;
        for (size_t i = 0; i < v->n_providers && hr == VSS_E_OBJECT_NOT_FOUND; i++) {
                struct provider *p = &v->providers[i];

                if (!p->ok)
                        continue;
                p->ctx.error[0] = 0;
                if (j->op == PROV_DIFF_QUERY && p->ops->diff_area_query)
                        hr = p->ops->diff_area_query(p->state, j->path, &j->diff_area);
                else if (j->op == PROV_DIFF_SET_MAX && p->ops->diff_area_set_max)
                        hr = p->ops->diff_area_set_max(p->state, j->path, j->max_bytes);
                else
                        continue;
                snprintf(j->error, sizeof(j->error), "%s", p->ctx.error);
        }
        return hr;
}

static void run_job(struct vssd *v, struct prov_job *j)
{
        struct provider *p;
        const struct vss_provider_ops *o;
        vss_hresult hr = VSS_E_NOTIMPL;

        if (j->op == PROV_WORK) {
                j->error[0] = 0;
                j->raw_hr = j->hr = j->work(j);
                return;
        }
        if (j->op == PROV_DIFF_QUERY || j->op == PROV_DIFF_SET_MAX) {
                j->raw_hr = j->hr = run_diff_area(v, j);
                return;
        }
        p = &v->providers[j->provider];
        o = p->ops;
        p->ctx.error[0] = 0;
        switch (j->op) {
        case PROV_BEGIN_PREPARE:
                hr = o->begin_prepare(p->state, j->snaps);
                break;
        case PROV_END_PREPARE:
                hr = o->end_prepare(p->state, j->snaps, j->n);
                break;
        case PROV_PRE_COMMIT:
                hr = o->pre_commit(p->state, j->snaps, j->n);
                break;
        case PROV_COMMIT:
                if (j->freeze && !j->protect) {
                        snprintf(p->ctx.error, sizeof(p->ctx.error), "out of memory listing protected filesystems");
                        hr = VSS_E_OUTOFMEMORY;
                } else if (j->freeze) {
                        struct commit_args a = { p, j };
                        char *paths[VSS_MAX_VOLUMES_PER_SET];
                        size_t n = MIN(j->n, (size_t)VSS_MAX_VOLUMES_PER_SET);

                        for (size_t i = 0; i < n; i++)
                                paths[i] = j->snaps[i].volume;
                        hr = freeze_around(paths, n, j->protect, j->n_protect, VSS_HOLD_WRITES_TIMEOUT_MS,
                                           commit_cb, &a, p->ctx.error, sizeof(p->ctx.error));
                } else {
                        commit_debug_delay();
                        hr = o->commit(p->state, j->snaps, j->n);
                }
                break;
        case PROV_POST_COMMIT:
                hr = o->post_commit(p->state, j->snaps, j->n);
                break;
        case PROV_ABORT:
                hr = o->abort(p->state, j->snaps, j->n);
                break;
        case PROV_DELETE:
                hr = o->delete_snapshot(p->state, j->snaps);
                break;
        case PROV_EXPOSE:
                hr = o->expose(p->state, j->snaps, j->path);
                break;
        case PROV_UNEXPOSE:
                hr = o->unexpose(p->state, j->snaps, j->path);
                break;
        case PROV_REVERT:
                /* Test hook: a revert that takes its time, so that tests can run into it
                 * (VSS_E_REVERT_IN_PROGRESS, VSS_E_SNAPSHOT_SET_IN_PROGRESS). */
                (void)debug_sleep_from_env("VSSD_DEBUG_REVERT_DELAY_MS");
                hr = o->revert ? o->revert(p->state, j->snaps) : VSS_E_NOTIMPL;
                break;
        case PROV_WORK:
        case PROV_DIFF_QUERY:
        case PROV_DIFF_SET_MAX:
                break;
        }
        j->raw_hr = hr;
        j->hr = provider_map_hr(hr);
        snprintf(j->error, sizeof(j->error), "%s", p->ctx.error);
}

static void *worker_main(void *userdata)
{
        struct vssd *v = userdata;

        pthread_mutex_lock(&v->qlock);
        for (;;) {
                struct prov_job *j;
                uint64_t one = 1;

                while (!v->q_head && !v->worker_stop)
                        pthread_cond_wait(&v->qcond, &v->qlock);
                if (!v->q_head)
                        break;
                j = v->q_head;
                v->q_head = j->next;
                if (!v->q_head)
                        v->q_tail = NULL;
                j->next = NULL;
                pthread_mutex_unlock(&v->qlock);

                run_job(v, j);

                pthread_mutex_lock(&v->qlock);
                if (v->done_tail)
                        v->done_tail->next = j;
                else
                        v->done_head = j;
                v->done_tail = j;
                (void)write(v->prov_evfd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&v->qlock);
        return NULL;
}

struct prov_job *prov_job_new(enum prov_op op, int provider, const struct vss_provider_snapshot *snaps, size_t n)
{
        struct prov_job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->op = op;
        j->provider = provider;
        j->n = n;
        if (n > 0) {
                j->snaps = calloc(n, sizeof(*snaps));
                if (!j->snaps) {
                        free(j);
                        return NULL;
                }
                memcpy(j->snaps, snaps, n * sizeof(*snaps));
        }
        return j;
}

void prov_job_free(struct prov_job *j)
{
        if (!j)
                return;
        for (size_t i = 0; i < j->n_protect; i++)
                free(j->protect[i]);
        free(j->protect);
        free(j->snaps);
        free(j);
}

void prov_submit(struct vssd *v, struct prov_job *j)
{
        snprintf(j->state_dir, sizeof(j->state_dir), "%s", v->state_dir);
        /* The list is built here, on the loop thread, because the cow volume
         * table it comes from is not shared with the worker. */
        if (j->op == PROV_COMMIT && j->freeze && !j->protect)
                (void)freeze_protect_list(v, &j->protect, &j->n_protect);
        v->jobs_in_flight++;
        if (j->provider >= 0)
                v->provider_calls_in_flight++;
        pthread_mutex_lock(&v->qlock);
        if (v->q_tail)
                v->q_tail->next = j;
        else
                v->q_head = j;
        v->q_tail = j;
        pthread_cond_signal(&v->qcond);
        pthread_mutex_unlock(&v->qlock);
}

int prov_submit_diff_area(struct vssd *v, enum prov_op op, const char *volume, int64_t max_bytes,
                          void (*done)(struct vssd *v, struct prov_job *j), void *userdata, uint64_t tag)
{
        struct prov_job *j;
        bool any = false;

        for (size_t i = 0; i < v->n_providers; i++)
                if (v->providers[i].ok &&
                    (op == PROV_DIFF_QUERY ? !!v->providers[i].ops->diff_area_query
                                           : !!v->providers[i].ops->diff_area_set_max))
                        any = true;
        if (!any)
                return -ENOENT;
        j = prov_job_new(op, -1, NULL, 0);
        if (!j)
                return -ENOMEM;
        snprintf(j->path, sizeof(j->path), "%s", volume);
        j->max_bytes = max_bytes;
        j->done = done;
        j->userdata = userdata;
        j->tag = tag;
        prov_submit(v, j);
        return 0;
}

int prov_submit_work(struct vssd *v, vss_hresult (*work)(struct prov_job *j),
                     void (*done)(struct vssd *v, struct prov_job *j), void *userdata)
{
        struct prov_job *j = prov_job_new(PROV_WORK, -1, NULL, 0);

        if (!j)
                return -ENOMEM;
        j->work = work;
        j->done = done;
        j->userdata = userdata;
        prov_submit(v, j);
        return 0;
}

void prov_dispatch_done(struct vssd *v)
{
        struct prov_job *list;
        uint64_t x;

        (void)read(v->prov_evfd, &x, sizeof(x));
        pthread_mutex_lock(&v->qlock);
        list = v->done_head;
        v->done_head = v->done_tail = NULL;
        pthread_mutex_unlock(&v->qlock);
        while (list) {
                struct prov_job *j = list;

                list = j->next;
                v->jobs_in_flight--;
                if (j->provider >= 0)
                        v->provider_calls_in_flight--;
                if (j->provider >= 0 && VSS_FAILED(j->raw_hr) && j->hr != j->raw_hr)
                        catalog_event(v, "error", "provider", j->raw_hr,
                                      "%s returned an unexpected error, reported as VSS_E_UNEXPECTED_PROVIDER_ERROR%s%s",
                                      provider_table[j->provider]->name, j->error[0] ? ": " : "", j->error);
                if (j->done)
                        j->done(v, j);
                prov_job_free(j);
        }
}

int providers_init(struct vssd *v)
{
        int r;

        v->n_providers = providers_count();
        v->providers = calloc(v->n_providers ? v->n_providers : 1, sizeof(struct provider));
        if (!v->providers)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_providers; i++) {
                struct provider *p = &v->providers[i];
                vss_hresult hr;

                p->ops = provider_table[i];
                p->ctx.state_dir = v->state_dir;
                p->ctx.settings.min_diff_area_bytes = (uint64_t)v->cfg.min_diff_area_mb << 20;
                p->ctx.settings.cow_server_deadline_ms = v->cfg.server_deadline_ms;
                p->ctx.log_event = provider_log;
                p->ctx.log_userdata = v;
                hr = p->ops->init(&p->ctx, &p->state);
                if (VSS_FAILED(hr)) {
                        catalog_event(v, "error", "provider", hr, "provider '%s' failed to start: %s", p->ops->name,
                                      p->ctx.error);
                        continue;
                }
                p->ok = true;
                log_info("provider '%s' %s ready", p->ops->name, p->ops->provider_id);
        }
        pthread_mutex_init(&v->qlock, NULL);
        pthread_cond_init(&v->qcond, NULL);
        r = pthread_create(&v->worker, NULL, worker_main, v);
        if (r != 0) {
                log_err("cannot start the provider worker: %s", strerror(r));
                return -r;
        }
        v->worker_started = true;
        return 0;
}

void providers_done(struct vssd *v)
{
        if (v->worker_started) {
                pthread_mutex_lock(&v->qlock);
                v->worker_stop = true;
                pthread_cond_signal(&v->qcond);
                pthread_mutex_unlock(&v->qlock);
                pthread_join(v->worker, NULL);
                v->worker_started = false;
                /* Jobs finished after the last dispatch have no one waiting any more. */
                while (v->done_head) {
                        struct prov_job *j = v->done_head;
                        v->done_head = j->next;
                        prov_job_free(j);
                }
                /* The worker finished the revert (it runs every queued job before it stops). */
                shadows_revert_free(v->reverting);
                v->reverting = NULL;
        }
        for (size_t i = 0; i < v->n_providers; i++)
                if (v->providers[i].ok && v->providers[i].ops->done)
                        v->providers[i].ops->done(v->providers[i].state);
        free(v->providers);
        v->providers = NULL;
}
