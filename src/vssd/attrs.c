/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attribute words, context names and writer involvement: small pure
 * functions kept apart from the event loop so the unit tests can pin them to
 * the tables of vss-facts 5.2/5.3 and docs/protocol.md.
 */

#include <stdio.h>
#include <string.h>

#include "basic/macro.h"
#include "vss/vss.h"
#include "vssd/attrs.h"

static const struct {
        int32_t bit;
        const char *word;
} attr_words[] = {
        { VSS_VOLSNAP_ATTR_PERSISTENT, "Persistent" },
        { VSS_VOLSNAP_ATTR_NO_AUTORECOVERY, "No auto recovery" },
        { VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE, "Client-accessible" },
        { VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE, "No auto release" },
        { VSS_VOLSNAP_ATTR_NO_WRITERS, "No writers" },
        { VSS_VOLSNAP_ATTR_TRANSPORTABLE, "Transportable" },
        { VSS_VOLSNAP_ATTR_NOT_SURFACED, "Not surfaced" },
        { VSS_VOLSNAP_ATTR_NOT_TRANSACTED, "Not transacted" },
        { VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED, "Hardware assisted" },
        { VSS_VOLSNAP_ATTR_DIFFERENTIAL, "Differential" },
        { VSS_VOLSNAP_ATTR_PLEX, "Plex" },
        { VSS_VOLSNAP_ATTR_IMPORTED, "Imported" },
        { VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, "Exposed locally" },
        { VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, "Exposed remotely" },
        { VSS_VOLSNAP_ATTR_AUTORECOVER, "Auto recovered" },
        { VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY, "Rollback recovery" },
        { VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT, "Delayed post snapshot" },
        { VSS_VOLSNAP_ATTR_TXF_RECOVERY, "TxF recovery" },
        { VSS_VOLSNAP_ATTR_FILE_SHARE, "File share" },
};

void attributes_text(int32_t attributes, char *buf, size_t len)
{
        size_t off = 0;

        if (len == 0)
                return;
        buf[0] = 0;
        for (size_t i = 0; i < ARRAY_SIZE(attr_words); i++) {
                int n;

                if (!(attributes & attr_words[i].bit))
                        continue;
                n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", attr_words[i].word);
                if (n < 0 || (size_t)n >= len - off)
                        return;
                off += (size_t)n;
        }
}

const char *context_type_name(int32_t context)
{
        /* Requesters may OR DIFFERENTIAL/PLEX/... into a context: the type is the base. */
        switch (context & 0x1F) {
        case VSS_CTX_BACKUP:
                return "Backup";
        case VSS_CTX_FILE_SHARE_BACKUP:
                return "FileShareBackup";
        case VSS_CTX_NAS_ROLLBACK:
                return "DataVolumeRollback";
        case VSS_CTX_APP_ROLLBACK:
                return "ApplicationRollback";
        case VSS_CTX_CLIENT_ACCESSIBLE:
                return "ClientAccessible";
        case VSS_CTX_CLIENT_ACCESSIBLE_WRITERS:
                return "ClientAccessibleWriters";
        default:
                return NULL;
        }
}

bool context_valid(int32_t context)
{
        const int32_t extra = VSS_VOLSNAP_ATTR_DIFFERENTIAL | VSS_VOLSNAP_ATTR_PLEX |
                              VSS_VOLSNAP_ATTR_TRANSPORTABLE | VSS_VOLSNAP_ATTR_NO_AUTORECOVERY |
                              VSS_VOLSNAP_ATTR_NOT_TRANSACTED | VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY |
                              VSS_VOLSNAP_ATTR_TXF_RECOVERY;

        if (context == VSS_CTX_ALL)
                return false;
        if (context & ~(0x1F | extra))
                return false;
        if ((context & VSS_VOLSNAP_ATTR_DIFFERENTIAL) && (context & VSS_VOLSNAP_ATTR_PLEX))
                return false;
        return context_type_name(context) != NULL;
}

int32_t context_attributes(int32_t context)
{
        return context & ~(int32_t)VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY;
}

static bool contains(char *const *v, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

enum involvement involvement_compute(int32_t context, bool excluded, char *const *wvols, size_t n_wvols,
                                     char *const *svols, size_t n_svols)
{
        size_t hit = 0;

        if (excluded || (context & VSS_VOLSNAP_ATTR_NO_WRITERS))
                return INVOLVE_NO;
        /* A writer that declares no volumes takes part in every set. */
        if (n_wvols == 0)
                return INVOLVE_YES;
        for (size_t i = 0; i < n_wvols; i++)
                if (contains(svols, n_svols, wvols[i]))
                        hit++;
        if (hit == 0)
                return INVOLVE_NO;
        return hit == n_wvols ? INVOLVE_YES : INVOLVE_PARTIAL;
}
