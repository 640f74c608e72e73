/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Previous Versions publications: a volume's shadow copies mounted read-only
 * as DIR/@GMT-YYYY.MM.DD-HH.MM.SS, for Samba's vfs_shadow_copy2
 * (docs/previous-versions.md).  vssd keeps them in step with the shadow
 * copies; these commands only add, delete and list publications.
 */

#include <stdio.h>

#include "tools/vssadmin/vssadmin.h"

int verb_add_previousversions(struct vssadmin *va)
{
        const char *for_vol = tool_args_value(&va->args, OPT_FOR), *at = tool_args_value(&va->args, OPT_AT);
        json_t *params = json_pack("{s:s}", "volume", for_vol), *result = NULL;

        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (at)
                json_object_set_new(params, "dir", json_string(at));
        if (VSS_FAILED(vssadmin_call(va, "PreviousVersions.Add", params, &result)))
                return TOOL_EXIT_FAILURE;
        printf("Successfully published the previous versions of %s at '%s' (%zu shadow copies).\n",
               json_get_str(result, "volume") ?: for_vol, json_get_str(result, "dir") ?: "",
               json_array_size(json_object_get(result, "shadows")));
        json_decref(result);
        return 0;
}

int verb_delete_previousversions(struct vssadmin *va)
{
        const char *for_vol = tool_args_value(&va->args, OPT_FOR);
        json_t *params = json_pack("{s:s}", "volume", for_vol), *result = NULL;

        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (VSS_FAILED(vssadmin_call(va, "PreviousVersions.Delete", params, &result)))
                return TOOL_EXIT_FAILURE;
        printf("Successfully deleted the previous versions publication of %s.\n",
               json_get_str(result, "volume") ?: for_vol);
        json_decref(result);
        return 0;
}
