/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Moving a cow volume's diff area: an association added or deleted for a
 * volume that has no shadows (storage.c) puts its diff area on the new
 * on-volume, or back in the state directory.  The volume goes offline for a
 * moment: unmount, detach the loop device, stop the server, start it on a
 * freshly formatted diff area at the new place, attach and mount again.
 * Nothing is lost, since without shadows the diff area holds nothing the
 * origin lacks; a server that does not start on the new diff area is started
 * on the old one again, which it closed cleanly.
 *
 * The checks that need the daemon's state run on the loop; the rest (the
 * server's own count of shadows, the unmount, the server's stop and start,
 * the mount) is a job on the provider worker, each step with its deadline.
 * The volume leaves v->cowvols while the job has it, so that nothing on the
 * loop reads what the worker changes, and comes back when it is done.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/exec-util.h"
#include "basic/string-util.h"
#include "providers/cow/volsrv-client.h"
#include "vssd/cowvol-server.h"
#include "vssd/volume.h"
#include "vssd/vssd.h"

static vss_hresult fail_oom(struct cowvol_op *op)
{
        fmt_trunc(op->msg, sizeof(op->msg), "out of memory");
        return VSS_E_OUTOFMEMORY;
}

/* Started again on the old diff area after the new one failed: it was closed cleanly and is intact. */
static void back_on_old(struct cowvol_op *op, const char *mnt)
{
        struct cowvol *cv = op->cv;
        char e2[512], e3[512];

        cowvol_diff_remove(op->a_on ? cv->diff : NULL);
        free(cv->diff);
        cv->diff = TAKE_PTR(op->olddiff);
        if (VSS_FAILED(cowvol_server_start(op->bin, cv, false, -1, e2, sizeof(e2))) ||
            VSS_FAILED(cowvol_attach(cv, mnt, false, e3, sizeof(e3)))) {
                op->note_level = "error";
                op->note_hr = VSS_E_UNEXPECTED;
                fmt_trunc(op->note, sizeof(op->note), "cow volume %s is offline: it could not come back on its diff "
                          "area %s", cv->name, cv->diff);
        }
}

static vss_hresult move_work(struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;
        struct cowvol *cv = op->cv;
        _cleanup_free_ char *newdiff = NULL, *mnt = NULL;
        const char *for_vol = op->a_for, *on_vol = op->a_on;
        char e2[512] = "";
        json_int_t nsnap = 0;
        json_t *st = NULL;
        vss_hresult hr;

        hr = volsrv_call(cv->rundir, "Storage.Stats", NULL, VOLSRV_CALL_TIMEOUT_MS, &st, e2, sizeof(e2));
        if (VSS_FAILED(hr)) {
                fmt_trunc(op->msg, sizeof(op->msg), "the volume server of %s does not answer, so its diff area "
                          "cannot be moved: %s", for_vol, e2);
                return VSS_E_PROVIDER_VETO;
        }
        (void)json_get_int(st, "snapshots", &nsnap);
        json_decref(st);
        if (op->n_shadows > 0 || nsnap > 0) {
                fmt_trunc(op->msg, sizeof(op->msg), "cow volume %s (%s) has %zu shadow copies in its diff area %s: a "
                          "diff area moves only while it holds none (vssadmin delete shadows /for=%s /all, then retry)",
                          cv->name, for_vol, op->n_shadows > (size_t)nsnap ? op->n_shadows : (size_t)nsnap, cv->diff,
                          for_vol);
                return VSS_E_VOLUME_IN_USE;
        }
        if (on_vol) {
                hr = cowvol_diff_create_on(on_vol, cv->name, &newdiff, op->msg, sizeof(op->msg));
                if (VSS_FAILED(hr))
                        return hr;
        } else if (asprintf(&newdiff, "%s/diff.area", op->dir) < 0) {
                newdiff = NULL;
                return fail_oom(op);
        }
        mnt = strdup(cv->mountpoint);
        if (!mnt) {
                cowvol_diff_remove(on_vol ? newdiff : NULL);
                return fail_oom(op);
        }

        /* Offline: the unmount is what may fail (a busy filesystem), so it goes first. */
        if (run_command((char *const[]){ "umount", mnt, NULL }, UMOUNT_SYNC_TIMEOUT_MS, e2, sizeof(e2)) != 0) {
                cowvol_diff_remove(on_vol ? newdiff : NULL);
                fmt_trunc(op->msg, sizeof(op->msg), "cannot unmount %s to move its diff area to %s: %s (stop what uses "
                          "it and retry)", mnt, newdiff, e2);
                return VSS_E_VOLUME_IN_USE;
        }
        op->offline = true;
        (void)run_command((char *const[]){ "losetup", "-d", cv->loopdev, NULL }, LOSETUP_TIMEOUT_MS, e2, sizeof(e2));
        cv->loopdev[0] = 0;
        cv->mountpoint[0] = 0;
        cowvol_server_stop(cv);

        op->olddiff = cv->diff;
        cv->diff = TAKE_PTR(newdiff);
        hr = cowvol_server_start(op->bin, cv, true, op->a_max, op->msg, sizeof(op->msg));
        if (VSS_FAILED(hr)) {
                back_on_old(op, mnt);
                return hr;
        }
        hr = cowvol_attach(cv, mnt, false, e2, sizeof(e2));
        cowvol_diff_remove(op->olddiff);
        if (VSS_FAILED(hr)) {
                fmt_trunc(op->msg, sizeof(op->msg), "the diff area of cow volume %s moved to %s, but the volume could "
                          "not be mounted again on %s: %s", cv->name, cv->diff, mnt, e2);
                op->note_level = "error";
                op->note_hr = hr;
                fmt_trunc(op->note, sizeof(op->note), "%s", op->msg);
                return hr;
        }
        op->note_level = "info";
        op->note_hr = VSS_S_OK;
        fmt_trunc(op->note, sizeof(op->note), "the diff area of cow volume %s (%s) moved from %s to %s", cv->name,
                  cv->mountpoint, op->olddiff, cv->diff);
        return VSS_S_OK;
}

static void move_done(struct vssd *v, struct prov_job *j)
{
        struct cowvol_op *op = j->userdata;
        struct cowvol *cv = TAKE_PTR(op->cv);

        cowvol_op_unlink(v, op);
        cv->next = v->cowvols;
        v->cowvols = cv;
        if (op->offline && cowvol_put(v, cv) < 0)
                log_warn("cow volume %s: cannot record its diff area %s: %s", cv->name, cv->diff,
                         sqlite3_errmsg(v->db));
        if (op->note_level)
                catalog_event(v, op->note_level, "cow", op->note_hr, "%s", op->note);
        /* The event connection was closed for the move; a server that is gone is the supervision's. */
        if (cowvol_ev_open(v, cv) < 0) {
                cv->retry.cb = cowvol_retry_cb;
                cv->retry.userdata = cv;
                timer_arm(v, &cv->retry, clock_monotonic_us());
        }
        op->moved(v, j->hr, op->msg, op->moved_userdata);
        cowvol_op_free(op);
}

void cowvol_move_diff(struct vssd *v, const char *for_vol, const char *on_vol, int64_t max,
                      void (*moved)(struct vssd *v, vss_hresult hr, const char *err, void *userdata), void *userdata)
{
        char here[VSS_PATH_MAX], there[VSS_PATH_MAX], err[512], *slash;
        struct cowvol *cv;
        struct cowvol_op *op;
        bool oom = false;

        for (cv = v->cowvols; cv && !streq(cv->mountpoint, for_vol); cv = cv->next)
                ;
        if (!cv) {
                moved(v, VSS_S_OK, "", userdata);
                return;
        }
        fmt_trunc(here, sizeof(here), "%s", cv->diff);
        slash = strrchr(here, '/');
        if (slash && slash != here)
                *slash = 0;
        if (on_vol)
                fmt_trunc(there, sizeof(there), "%s", on_vol);
        else
                fmt_trunc(there, sizeof(there), "%s/volumes/%s", v->state_dir, cv->name);
        /* Already on that filesystem (e.g. the state directory lies on the
         * on-volume): the diff area is where it belongs. */
        if (volume_same_fs(here, there)) {
                moved(v, VSS_S_OK, "", userdata);
                return;
        }
        if (v->set_owner || v->provider_calls_in_flight) {
                fmt_trunc(err, sizeof(err), "a shadow copy set is being created: move the diff area of %s when it is "
                          "done", for_vol);
                moved(v, VSS_E_SNAPSHOT_SET_IN_PROGRESS, err, userdata);
                return;
        }
        op = calloc(1, sizeof(*op));
        if (!op) {
                moved(v, VSS_E_OUTOFMEMORY, "out of memory", userdata);
                return;
        }
        op->kind = COWVOL_MOVE;
        op->name = cowvol_strdup(cv->name, &oom);
        op->a_for = cowvol_strdup(for_vol, &oom);
        op->a_on = cowvol_strdup(on_vol, &oom);
        op->a_max = max;
        op->n_shadows = shadows_on_volume(v, for_vol);
        fmt_trunc(op->dir, sizeof(op->dir), "%s/volumes/%s", v->state_dir, cv->name);
        cowvol_volsrv_binary(v, op->bin, sizeof(op->bin));
        op->keep[0] = cowvol_strdup(cv->diff, &oom);
        op->keep[1] = cowvol_strdup(here, &oom);
        op->keep[2] = cowvol_strdup(cv->rundir, &oom);
        op->keep[3] = cowvol_strdup(cv->image, &oom);
        if (on_vol && !(op->keep[4] = cowvol_diff_dir(on_vol)))
                oom = true;
        op->moved = moved;
        op->moved_userdata = userdata;
        if (oom) {
                cowvol_op_free(op);
                moved(v, VSS_E_OUTOFMEMORY, "out of memory", userdata);
                return;
        }
        /* The worker has the volume from now on: no timer, no event connection, not in the list. */
        cowvol_hand_over(v, cv);
        op->cv = cv;
        op->next = v->cowvol_ops;
        v->cowvol_ops = op;
        if (prov_submit_work(v, move_work, move_done, op) < 0) {
                struct prov_job j = { .hr = VSS_E_OUTOFMEMORY, .userdata = op };

                /* Back as it was, with the event connection again. */
                fmt_trunc(op->msg, sizeof(op->msg), "out of memory");
                move_done(v, &j);
        }
}
