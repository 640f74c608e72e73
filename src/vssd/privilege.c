/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The privilege decision (privilege.h).  Groups are the unit of trust because
 * services run as their own users: a PostgreSQL writer as postgres, a MariaDB
 * writer as mysql, a backup program as its own account.  Putting postgres and
 * mysql in writer_group lets both register writers without letting either of
 * them delete shadow copies, which needs admin_group.
 */

#include <stdio.h>

#include "vssd/privilege.h"

const char *privilege_name(enum vssd_privilege p)
{
        switch (p) {
        case PRIV_NONE:
                return "none";
        case PRIV_WRITER:
                return "writer";
        case PRIV_ADMIN:
                return "admin";
        }
        return "?";
}

bool peer_in_group(const struct peer_identity *peer, gid_t gid)
{
        if (peer->gid == gid)
                return true;
        for (size_t i = 0; i < peer->n_groups; i++)
                if (peer->groups[i] == gid)
                        return true;
        return false;
}

bool privilege_allows(const struct vssd_config *cfg, enum vssd_privilege need, const struct peer_identity *peer,
                      const char *method, char *why, size_t whylen)
{
        const struct vssd_group *g;
        const char *key;

        if (need == PRIV_NONE || peer->uid == 0)
                return true;
        if (cfg->allowed_uid != 0 && peer->uid == cfg->allowed_uid)
                return true;
        g = need == PRIV_ADMIN ? &cfg->admin_group : &cfg->writer_group;
        key = need == PRIV_ADMIN ? "admin_group" : "writer_group";
        if (g->name[0] && g->resolved && peer_in_group(peer, g->gid))
                return true;
        if (!why || whylen == 0)
                return false;
        if (g->name[0])
                snprintf(why, whylen, "%s needs membership of group %s (uid %u is not a member)", method, g->name,
                         (unsigned)peer->uid);
        else
                snprintf(why, whylen, "%s needs root: uid %u is not root and vssd.conf names no %s "
                         "([service] %s= would allow its members)", method, (unsigned)peer->uid, key, key);
        return false;
}

bool writer_claim_allowed(uid_t owner_uid, uid_t uid)
{
        return uid == 0 || uid == owner_uid;
}
