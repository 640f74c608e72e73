/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may call what: the privilege each method needs and the decision for one
 * caller.  Pure (no I/O, no user database): the caller's groups are gathered by
 * conn.c (SO_PEERCRED, SO_PEERGROUPS, getgrouplist) and passed in, so the unit
 * test can cover every case.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vssd/config.h"

enum vssd_privilege {
        PRIV_NONE,      /* everyone: listing, status, events */
        PRIV_WRITER,    /* writer_group: Writer.Register */
        PRIV_ADMIN,     /* admin_group: backups, shadow copies, storage, volumes */
};

struct peer_identity {
        uid_t uid;
        gid_t gid;                      /* SO_PEERCRED's gid */
        const gid_t *groups;            /* supplementary groups (process's and the user database's) */
        size_t n_groups;
};

const char *privilege_name(enum vssd_privilege p);

/* true when the peer is a member of gid (its primary gid or a supplementary one). */
bool peer_in_group(const struct peer_identity *peer, gid_t gid);

/*
 * true when 'peer' may call 'method', which needs 'need'.  Root always may, as may
 * [service] allowed_uid (the older, single-uid setting, with every privilege).
 * Otherwise 'why' (if not NULL) gets the refusal's text, which names the method,
 * the uid and the group that would allow it, e.g. "Shadows.Delete needs
 * membership of group openvss-admin (uid 1001 is not a member)".
 */
bool privilege_allows(const struct vssd_config *cfg, enum vssd_privilege need, const struct peer_identity *peer,
                      const char *method, char *why, size_t whylen);

/* A writer id or name already registered in this run by owner_uid: may 'uid' register it too?
 * Root may (it may do anything); otherwise only the owner. */
bool writer_claim_allowed(uid_t owner_uid, uid_t uid);
