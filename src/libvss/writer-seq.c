/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-set bookkeeping behind libvss's writer guarantees (writer-seq.h has the
 * model).  A writer takes part in one set at a time, so one "set in progress" with a
 * phase is enough; what must outlive it is the list of sets whose on_abort already
 * ran, because vssd may send Abort for a set more than once (the freeze timer and the
 * end of the set each send one, vss-facts 3.2 "Writers may receive multiple Aborts")
 * and the writer must release its lock only once.  A small ring does: vssd never
 * talks about a set older than the one before the current.
 */

#include "basic/macro.h"
#include "writer-seq.h"

void writer_seq_init(struct writer_seq *s)
{
        *s = (struct writer_seq){ .phase = SEQ_IDLE };
}

static bool has_set(const vss_id *set)
{
        return set && !vss_id_is_null(set);
}

static bool is_current(const struct writer_seq *s, const vss_id *set)
{
        return s->phase != SEQ_IDLE && has_set(set) && vss_id_equal(&s->set, set);
}

bool writer_seq_was_aborted(const struct writer_seq *s, const vss_id *set, enum vss_abort_reason *ret_reason)
{
        if (!has_set(set))
                return false;
        for (unsigned i = 0; i < s->n_aborted; i++)
                if (vss_id_equal(&s->aborted[i].set, set)) {
                        if (ret_reason)
                                *ret_reason = s->aborted[i].reason;
                        return true;
                }
        return false;
}

static void remember_aborted(struct writer_seq *s, const vss_id *set, enum vss_abort_reason reason)
{
        if (!has_set(set) || writer_seq_was_aborted(s, set, NULL))
                return;
        s->aborted[s->next_aborted].set = *set;
        s->aborted[s->next_aborted].reason = reason;
        s->next_aborted = (s->next_aborted + 1) % SEQ_ABORTED_KEEP;
        if (s->n_aborted < SEQ_ABORTED_KEEP)
                s->n_aborted++;
}

static void end_set(struct writer_seq *s)
{
        s->phase = SEQ_IDLE;
        s->deadline_armed = false;
        s->deadline_us = 0;
}

bool writer_seq_holds(const struct writer_seq *s)
{
        return s->phase == SEQ_PREPARED || s->phase == SEQ_FROZEN;
}

bool writer_seq_must_abort_before(const struct writer_seq *s, enum vss_event ev, const vss_id *set)
{
        if (!writer_seq_holds(s))
                return false;
        switch (ev) {
        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PREPARE_SNAPSHOT:
        case VSS_EVENT_FREEZE:
                /* A new set while the old one is held: the old one can never be thawed. */
                return has_set(set) && !vss_id_equal(set, &s->set);
        case VSS_EVENT_BACKUP_SHUTDOWN:
                /* The session ended without Thaw or Abort for what we hold. */
                return !has_set(set) || vss_id_equal(set, &s->set);
        default:
                return false;
        }
}

enum seq_verdict writer_seq_event(struct writer_seq *s, enum vss_event ev, const vss_id *set, uint64_t now_us,
                                  uint64_t freeze_window_us, vss_hresult *ret_failure)
{
        enum vss_abort_reason why = VSS_ABORT_REQUESTED;
        bool aborted = writer_seq_was_aborted(s, set, &why);

        *ret_failure = VSS_S_OK;
        switch (ev) {
        case VSS_EVENT_ABORT:
                if (!has_set(set) && writer_seq_holds(s))
                        set = &s->set;  /* an Abort without a set id is about what we hold */
                if (writer_seq_was_aborted(s, set, NULL))
                        return SEQ_ANSWER_OK;
                remember_aborted(s, set, VSS_ABORT_REQUESTED);
                if (is_current(s, set))
                        end_set(s);
                return SEQ_RUN;

        case VSS_EVENT_PREPARE_BACKUP:
        case VSS_EVENT_PREPARE_SNAPSHOT:
        case VSS_EVENT_FREEZE:
        case VSS_EVENT_THAW:
        case VSS_EVENT_POST_SNAPSHOT:
        case VSS_EVENT_BACKUP_COMPLETE:
                if (aborted) {
                        /* Too late: on_abort ran for this set.  Say why, and never run a
                         * handler that would act on a sequence the writer has left. */
                        *ret_failure = why == VSS_ABORT_FREEZE_DEADLINE ? VSS_E_WRITERERROR_TIMEOUT
                                                                        : VSS_E_WRITERERROR_NONRETRYABLE;
                        return SEQ_ANSWER_FAILED;
                }
                break;
        default:
                break;
        }

        switch (ev) {
        case VSS_EVENT_PREPARE_BACKUP:
                if (has_set(set)) {
                        end_set(s);
                        s->set = *set;
                        s->phase = SEQ_BACKUP;
                }
                break;
        case VSS_EVENT_PREPARE_SNAPSHOT:
                if (has_set(set)) {
                        if (!is_current(s, set))
                                end_set(s);
                        s->set = *set;
                        s->phase = SEQ_PREPARED;
                }
                break;
        case VSS_EVENT_FREEZE:
                /* Armed before on_freeze runs, so whatever on_freeze does is covered. */
                if (!is_current(s, set))
                        end_set(s);
                s->set = has_set(set) ? *set : VSS_ID_NULL;
                s->phase = SEQ_FROZEN;
                s->deadline_armed = true;
                s->deadline_us = now_us + freeze_window_us;
                break;
        case VSS_EVENT_THAW:
                /* Cancelled before on_thaw runs: from here on nothing can abort this set
                 * but vssd itself. */
                if (is_current(s, set) || (!has_set(set) && s->phase == SEQ_FROZEN)) {
                        s->deadline_armed = false;
                        s->phase = SEQ_THAWED;
                }
                break;
        case VSS_EVENT_BACKUP_COMPLETE:
        case VSS_EVENT_BACKUP_SHUTDOWN:
                if (is_current(s, set) || (!has_set(set) && !writer_seq_holds(s)))
                        end_set(s);
                break;
        default:
                break;
        }
        return SEQ_RUN;
}

bool writer_seq_deadline_passed(const struct writer_seq *s, uint64_t now_us)
{
        return s->phase == SEQ_FROZEN && s->deadline_armed && now_us >= s->deadline_us;
}

uint64_t writer_seq_deadline(const struct writer_seq *s)
{
        return s->phase == SEQ_FROZEN && s->deadline_armed ? s->deadline_us : UINT64_MAX;
}

bool writer_seq_abort_local(struct writer_seq *s, enum vss_abort_reason reason, vss_id *ret_set)
{
        if (!writer_seq_holds(s))
                return false;
        remember_aborted(s, &s->set, reason);
        if (ret_set)
                *ret_set = s->set;
        end_set(s);
        return true;
}
