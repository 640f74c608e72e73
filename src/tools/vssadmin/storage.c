/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shadow storage associations and openvss copy-on-write volumes.  The size
 * options are parsed here (tools/common/size.c) so that a typo is reported
 * as E_INVALIDARG naming the option before the daemon is asked; the limits
 * that depend on configuration (minimum storage size) are the daemon's to
 * check.  /maxsize travels as {"max_bytes": N}, {"max_percent": N} or
 * {"max_bytes": null} for UNBOUNDED.
 */

#include <stdio.h>
#include <strings.h>

#include "tools/vssadmin/vssadmin.h"

static vss_hresult add_maxsize(json_t *params, const char *text)
{
        struct tool_size sz;

        if (!text) {
                /* No /maxsize: unbounded, as on Windows. */
                json_object_set_new(params, "max_bytes", json_null());
                return VSS_S_OK;
        }
        if (VSS_FAILED(tool_parse_size(text, &sz))) {
                tool_print_errorf(VSS_E_INVALIDARG,
                                  "/maxsize=%s is not a size: give N[B|KB|MB|GB|TB|PB|EB] (or B,K,M,G,T,P,E), "
                                  "UNBOUNDED or N%% (1..100).", text);
                return VSS_E_INVALIDARG;
        }
        switch (sz.kind) {
        case TOOL_SIZE_BYTES:
                if (sz.bytes > INT64_MAX) {
                        tool_print_errorf(VSS_E_INVALIDARG, "/maxsize=%s is too large.", text);
                        return VSS_E_INVALIDARG;
                }
                json_object_set_new(params, "max_bytes", json_integer((json_int_t)sz.bytes));
                break;
        case TOOL_SIZE_UNBOUNDED:
                json_object_set_new(params, "max_bytes", json_null());
                break;
        case TOOL_SIZE_PERCENT:
                json_object_set_new(params, "max_percent", json_integer(sz.percent));
                break;
        }
        return VSS_S_OK;
}

static int storage_change(struct vssadmin *va, const char *method, const char *done)
{
        json_t *params = json_pack("{s:s, s:s}", "for", tool_args_value(&va->args, OPT_FOR),
                                   "on", tool_args_value(&va->args, OPT_ON));

        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (VSS_FAILED(add_maxsize(params, tool_args_value(&va->args, OPT_MAXSIZE)))) {
                json_decref(params);
                return TOOL_EXIT_USAGE;
        }
        if (VSS_FAILED(vssadmin_call(va, method, params, NULL)))
                return TOOL_EXIT_FAILURE;
        printf("%s\n", done);
        return 0;
}

int verb_add_shadowstorage(struct vssadmin *va)
{
        return storage_change(va, "Storage.Add", "Successfully added the shadow copy storage association");
}

int verb_resize_shadowstorage(struct vssadmin *va)
{
        return storage_change(va, "Storage.Resize", "Successfully resized the shadow copy storage association");
}

int verb_delete_shadowstorage(struct vssadmin *va)
{
        const char *on = tool_args_value(&va->args, OPT_ON);
        bool quiet = tool_args_flag(&va->args, OPT_QUIET);
        json_t *params;

        if (!quiet && !vssadmin_confirm("Do you really want to delete the shadow copy storage association(s) "
                                        "and the shadow copies stored there (Y/N): [N]? ")) {
                printf("\n");
                return 0;
        }
        if (!quiet)
                printf("\n");

        params = json_pack("{s:s}", "for", tool_args_value(&va->args, OPT_FOR));
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (on)
                json_object_set_new(params, "on", json_string(on));
        if (VSS_FAILED(vssadmin_call(va, "Storage.Delete", params, NULL)))
                return TOOL_EXIT_FAILURE;
        if (!quiet)
                printf("Successfully deleted the shadow copy storage association(s)\n");
        return 0;
}

int verb_create_volume(struct vssadmin *va)
{
        const char *size = tool_args_value(&va->args, OPT_SIZE), *fs = tool_args_value(&va->args, OPT_FS);
        const char *image = tool_args_value(&va->args, OPT_IMAGE), *mount = tool_args_value(&va->args, OPT_MOUNT);
        const char *name = tool_args_value(&va->args, OPT_NAME), *device = tool_args_value(&va->args, OPT_DEVICE);
        json_t *params, *result = NULL;
        struct tool_size sz = { 0 };

        if (image && device) {
                tool_print_error(VSS_E_INVALIDARG, "Give /image= or /device=, not both.");
                return TOOL_EXIT_USAGE;
        }
        if (!size && !image && !device) {
                tool_print_error(VSS_E_INVALIDARG, "/size= is needed for a new volume (an existing /image= or "
                                 "/device= may leave it out).");
                return TOOL_EXIT_USAGE;
        }
        if (size && (VSS_FAILED(tool_parse_size(size, &sz)) || sz.kind != TOOL_SIZE_BYTES || sz.bytes == 0 ||
                     sz.bytes > INT64_MAX)) {
                tool_print_errorf(VSS_E_INVALIDARG, "/size=%s is not a size: give N[B|KB|MB|GB|TB] (or B,K,M,G,T).",
                                  size);
                return TOOL_EXIT_USAGE;
        }
        if (fs && strcasecmp(fs, "ext4") != 0 && strcasecmp(fs, "xfs") != 0) {
                tool_print_errorf(VSS_E_INVALIDARG, "/fs=%s is not supported: give ext4 or xfs.", fs);
                return TOOL_EXIT_USAGE;
        }

        params = json_pack("{s:s}", "name", name);
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (size)
                json_object_set_new(params, "size_bytes", json_integer((json_int_t)sz.bytes));
        if (image)
                json_object_set_new(params, "image", json_string(image));
        if (device)
                json_object_set_new(params, "device", json_string(device));
        if (fs)
                json_object_set_new(params, "fs", json_string(strcasecmp(fs, "xfs") == 0 ? "xfs" : "ext4"));
        if (mount)
                json_object_set_new(params, "mount", json_string(mount));

        if (VSS_FAILED(vssadmin_call(va, "Volumes.Create", params, &result)))
                return TOOL_EXIT_FAILURE;
        if (json_is_true(json_object_get(result, "adopted")))
                printf("Successfully adopted '%s' as volume '%s' (%s filesystem kept)\n", image ?: device, name,
                       json_get_str(result, "fs") ?: "its");
        else
                printf("Successfully created volume '%s'\n", name);
        if (json_get_str(result, "path"))
                printf("    Volume path: %s\n", json_get_str(result, "path"));
        if (json_get_str(result, "device"))
                printf("    Volume name: %s\n", json_get_str(result, "device"));
        json_decref(result);
        return 0;
}

int verb_delete_volume(struct vssadmin *va)
{
        const char *name = tool_args_value(&va->args, OPT_NAME);
        json_t *params = json_pack("{s:s}", "name", name);

        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (VSS_FAILED(vssadmin_call(va, "Volumes.Delete", params, NULL)))
                return TOOL_EXIT_FAILURE;
        printf("Successfully deleted volume '%s'\n", name);
        return 0;
}
