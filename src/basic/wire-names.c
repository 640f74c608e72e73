/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wire names of the enums writers and requesters exchange; one table each, shared by
 * the daemon and libvss so both ends always agree. */

#include "basic/macro.h"
#include "basic/wire.h"

static const char *const backup_types[] = {
        [VSS_BT_UNDEFINED] = "undefined",
        [VSS_BT_FULL] = "full",
        [VSS_BT_INCREMENTAL] = "incremental",
        [VSS_BT_DIFFERENTIAL] = "differential",
        [VSS_BT_LOG] = "log",
        [VSS_BT_COPY] = "copy",
        [VSS_BT_OTHER] = "other",
};

static const char *const usages[] = {
        [VSS_UT_UNDEFINED] = "undefined",
        [VSS_UT_BOOTABLESYSTEMSTATE] = "bootable_system_state",
        [VSS_UT_SYSTEMSERVICE] = "system_service",
        [VSS_UT_USERDATA] = "user_data",
        [VSS_UT_OTHER] = "other",
};

static const char *const sources[] = {
        [VSS_ST_UNDEFINED] = "undefined",
        [VSS_ST_TRANSACTEDDB] = "transacted_db",
        [VSS_ST_NONTRANSACTEDDB] = "nontransacted_db",
        [VSS_ST_OTHER] = "other",
};

static const char *name_of(const char *const *table, size_t n, unsigned v)
{
        return v < n ? table[v] : NULL;
}

static int index_of(const char *const *table, size_t n, const char *name)
{
        for (size_t i = 0; name && i < n; i++)
                if (streq(table[i], name))
                        return (int)i;
        return -1;
}

const char *wire_backup_type_name(enum vss_backup_type t)
{
        return name_of(backup_types, ARRAY_SIZE(backup_types), (unsigned)t);
}

int wire_backup_type_from_name(const char *name)
{
        return index_of(backup_types, ARRAY_SIZE(backup_types), name);
}

const char *wire_usage_name(enum vss_usage_type u)
{
        return name_of(usages, ARRAY_SIZE(usages), (unsigned)u);
}

int wire_usage_from_name(const char *name)
{
        return index_of(usages, ARRAY_SIZE(usages), name);
}

const char *wire_source_name(enum vss_source_type s)
{
        return name_of(sources, ARRAY_SIZE(sources), (unsigned)s);
}

int wire_source_from_name(const char *name)
{
        return index_of(sources, ARRAY_SIZE(sources), name);
}
