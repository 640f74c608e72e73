/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wire names of the enums writers and requesters exchange; one table each, shared by
 * the daemon and libvss so both ends always agree; and the text form of HRESULTs. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/names.h"

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

static const char *const restore_methods[] = {
        [VSS_RME_UNDEFINED] = "undefined",
        [VSS_RME_RESTORE_IF_NOT_THERE] = "restore_if_not_there",
        [VSS_RME_RESTORE_IF_CAN_REPLACE] = "restore_if_can_replace",
        [VSS_RME_STOP_RESTORE_START] = "stop_restore_start",
        [VSS_RME_RESTORE_TO_ALTERNATE_LOCATION] = "restore_to_alternate_location",
        [VSS_RME_RESTORE_AT_REBOOT] = "restore_at_reboot",
        [VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE] = "restore_at_reboot_if_cannot_replace",
        [VSS_RME_CUSTOM] = "custom",
        [VSS_RME_RESTORE_STOP_START] = "restore_stop_start",
};

static const char *const writer_restores[] = {
        [VSS_WRE_UNDEFINED] = "undefined",
        [VSS_WRE_NEVER] = "never",
        [VSS_WRE_IF_REPLACE_FAILS] = "if_replace_fails",
        [VSS_WRE_ALWAYS] = "always",
};

static const char *const file_restore_statuses[] = {
        [VSS_RS_UNDEFINED] = "undefined",
        [VSS_RS_NONE] = "none",
        [VSS_RS_ALL] = "all",
        [VSS_RS_FAILED] = "failed",
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

/* These three are public (vss.h): libvss exports every vss_* function of src/basic. */
const char *vss_restore_method_name(enum vss_restore_method_type m)
{
        return name_of(restore_methods, ARRAY_SIZE(restore_methods), (unsigned)m);
}

int vss_restore_method_from_name(const char *name)
{
        return index_of(restore_methods, ARRAY_SIZE(restore_methods), name);
}

const char *vss_writer_restore_name(enum vss_writer_restore_type t)
{
        return name_of(writer_restores, ARRAY_SIZE(writer_restores), (unsigned)t);
}

int vss_writer_restore_from_name(const char *name)
{
        return index_of(writer_restores, ARRAY_SIZE(writer_restores), name);
}

const char *vss_file_restore_status_name(enum vss_file_restore_status s)
{
        return name_of(file_restore_statuses, ARRAY_SIZE(file_restore_statuses), (unsigned)s);
}

int vss_file_restore_status_from_name(const char *name)
{
        return index_of(file_restore_statuses, ARRAY_SIZE(file_restore_statuses), name);
}

void wire_format_hresult(vss_hresult hr, char buf[11])
{
        snprintf(buf, 11, "0x%08X", (uint32_t)hr);
}

bool wire_parse_hresult(const json_t *v, vss_hresult *ret)
{
        const struct vss_hresult_info *info;
        const char *s, *p;
        char *end;
        unsigned long x;

        if (!v)
                return false;
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i < INT32_MIN || i > (json_int_t)UINT32_MAX)
                        return false;
                *ret = VSS_HR((uint32_t)i);
                return true;
        }
        if (!json_is_string(v))
                return false;
        s = json_string_value(v);
        info = vss_hresult_parse(s);
        if (info) {
                *ret = info->value;
                return true;
        }
        /* Unknown but well-formed hex values are still values. */
        p = s;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                p += 2;
        if (!*p || strlen(p) > 8 || strspn(p, "0123456789abcdefABCDEF") != strlen(p))
                return false;
        errno = 0;
        x = strtoul(p, &end, 16);
        if (errno || *end)
                return false;
        *ret = VSS_HR(x);
        return true;
}
