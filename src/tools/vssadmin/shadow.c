/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The commands that create, delete and mount shadow copies.
 *
 * `create shadow` is not an admin method: like Windows vssadmin it is a
 * requester, running the whole backup sequence (vss-facts 3.1) through libvss
 * with a persistent, client-accessible context with writers, so that the
 * writers are frozen and the shadow copy outlives the session.  /autoretry
 * repeats the whole session while another set is being created
 * (0x80042316), once a second, for up to the given minutes.
 *
 * `delete shadows` first computes the list (Shadows.Query), asks, and then
 * deletes the copies one by one by id, so that what is deleted is exactly
 * what the admin was asked about.
 */

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "tools/vssadmin/vssadmin.h"
#include "vss/requester.h"

DEFINE_FREE_FUNC(vss_backup, vss_backup_free);

static vss_hresult create_once(struct vssadmin *va, const char *volume, struct vss_snapshot_prop *ret,
                               char **ret_detail)
{
        _cleanup_(vss_backup_freep) vss_backup *b = NULL;
        vss_id set, shadow;
        vss_hresult hr;

        *ret_detail = NULL;
        hr = vss_backup_new(va->socket, &b);
        if (VSS_FAILED(hr)) {
                if (asprintf(ret_detail, "Cannot reach vssd at %s (is vssd running?).",
                             va->socket ?: vss_default_socket_path()) < 0)
                        *ret_detail = NULL;
                return hr;
        }

#define STEP(call) do {                                                         \
                hr = (call);                                                    \
                if (VSS_FAILED(hr))                                             \
                        goto fail;                                              \
        } while (0)

        STEP(vss_backup_set_context(b, VSS_CTX_CLIENT_ACCESSIBLE_WRITERS));
        STEP(vss_backup_set_backup_state(b, false, false, VSS_BT_FULL));
        STEP(vss_backup_gather_writer_metadata(b));
        STEP(vss_backup_start_snapshot_set(b, &set));
        STEP(vss_backup_add_to_snapshot_set(b, volume, NULL, &shadow));
        STEP(vss_backup_prepare_for_backup(b));
        STEP(vss_backup_do_snapshot_set(b));
        STEP(vss_backup_get_snapshot_properties(b, &shadow, ret));
        hr = vss_backup_backup_complete(b, true);
        if (VSS_FAILED(hr)) {
                vss_snapshot_prop_clear(ret);
                goto fail;
        }
        return VSS_S_OK;
#undef STEP

fail:
        *ret_detail = strdup(vss_backup_get_error_detail(b));
        return hr;
}

static bool parse_minutes(const char *text, unsigned *ret)
{
        char *end;
        unsigned long v;

        if (!text || !*text || *text == '-' || *text == '+')
                return false;
        errno = 0;
        v = strtoul(text, &end, 10);
        if (errno || *end || v > 7 * 24 * 60)
                return false;
        *ret = (unsigned)v;
        return true;
}

int verb_create_shadow(struct vssadmin *va)
{
        const char *volume = tool_args_value(&va->args, OPT_FOR), *retry = tool_args_value(&va->args, OPT_AUTORETRY);
        struct vss_snapshot_prop prop = {};
        unsigned minutes = 0;
        time_t deadline;
        char id[VSS_ID_STRING_MAX];
        vss_hresult hr;

        if (retry && !parse_minutes(retry, &minutes)) {
                tool_print_errorf(VSS_E_INVALIDARG, "/autoretry=%s is not a number of minutes (0..10080).",
                                  retry);
                return TOOL_EXIT_USAGE;
        }
        deadline = time(NULL) + (time_t)minutes * 60;

        for (;;) {
                _cleanup_free_ char *detail = NULL;

                hr = create_once(va, volume, &prop, &detail);
                if (VSS_SUCCEEDED(hr))
                        break;
                if (hr != VSS_E_SNAPSHOT_SET_IN_PROGRESS || time(NULL) >= deadline)
                        return tool_print_error(hr, detail);
                sleep(1);
        }

        printf("Successfully created shadow copy for '%s'\n"
               "    Shadow Copy ID: %s\n"
               "    Shadow Copy Volume Name: %s\n",
               volume, vss_id_format(&prop.snapshot_id, id), prop.snapshot_device ?: "");
        vss_snapshot_prop_clear(&prop);
        return 0;
}

int verb_delete_shadows(struct vssadmin *va)
{
        const char *volume = tool_args_value(&va->args, OPT_FOR), *sid = tool_args_value(&va->args, OPT_SHADOW);
        bool oldest = tool_args_flag(&va->args, OPT_OLDEST), all = tool_args_flag(&va->args, OPT_ALL);
        bool quiet = tool_args_flag(&va->args, OPT_QUIET);
        json_t *result = NULL, *shadows, *victims = NULL;
        char question[128];
        json_int_t deleted = 0;
        size_t n;
        int r = TOOL_EXIT_FAILURE;

        if ((oldest ? 1 : 0) + (all ? 1 : 0) + (sid ? 1 : 0) > 1) {
                tool_print_error(VSS_E_INVALIDARG, "Give only one of /oldest, /all and /shadow.");
                return TOOL_EXIT_USAGE;
        }
        if (!volume && !all && !sid) {
                tool_print_error(VSS_E_INVALIDARG,
                                 "Missing required option /for (or /all, or /shadow). Syntax: vssadmin delete "
                                 "shadows /For=VOL [/Oldest | /All | /Shadow=ID] [/Quiet]");
                return TOOL_EXIT_USAGE;
        }

        r = vssadmin_query_shadows(va, volume, sid, &result);
        if (r != EXIT_SUCCESS)
                return r;
        r = TOOL_EXIT_FAILURE;

        shadows = json_object_get(result, "shadows");
        n = json_array_size(shadows);
        victims = json_array();
        if (!victims) {
                r = tool_print_error(VSS_E_OUTOFMEMORY, NULL);
                goto out;
        }
        if (oldest && n > 0) {
                json_t *best = NULL;
                json_int_t best_t = INT64_MAX;

                for (size_t i = 0; i < n; i++) {
                        json_t *s = json_array_get(shadows, i);
                        json_int_t t = INT64_MAX;

                        json_get_int(s, "creation_time_us", &t);
                        if (!best || t < best_t) {
                                best = s;
                                best_t = t;
                        }
                }
                json_array_append(victims, best);
        } else
                json_array_extend(victims, shadows);

        n = json_array_size(victims);
        if (n == 0) {
                if (!quiet)
                        printf("No items found that satisfy the query.\n");
                r = 0;
                goto out;
        }

        if (!quiet) {
                snprintf(question, sizeof(question),
                         "Do you really want to delete %zu shadow copies (Y/N): [N]? ", n);
                if (!vssadmin_confirm(question)) {
                        printf("\n");
                        r = 0;
                        goto out;
                }
                printf("\n");
        }

        for (size_t i = 0; i < n; i++) {
                json_t *del = NULL, *p = json_object();
                const char *shadow_id = json_get_str(json_array_get(victims, i), "shadow_id");
                json_int_t d = 0;

                if (!p || !shadow_id) {
                        json_decref(p);
                        r = tool_print_error(VSS_E_UNEXPECTED, "vssd listed a shadow copy without an id.");
                        goto out;
                }
                json_object_set_new(p, "shadow_id", json_string(shadow_id));
                if (VSS_FAILED(vssadmin_call(va, "Shadows.Delete", p, &del))) {
                        if (deleted > 0)
                                fprintf(stderr, "%" JSON_INTEGER_FORMAT " of %zu shadow copies were deleted before the failure.\n",
                                        deleted, n);
                        goto out;
                }
                if (!json_get_int(del, "deleted", &d))
                        d = 1;
                deleted += d;
                json_decref(del);
        }

        if (!quiet)
                printf("Successfully deleted %" JSON_INTEGER_FORMAT " shadow copies.\n", deleted);
        r = 0;
out:
        json_decref(victims);
        json_decref(result);
        return r;
}

/* Windows Server's `vssadmin revert shadow`: asks unless /quiet, as delete does, naming the volume
 * and what the revert costs (the newer shadow copies), then waits for the revert to end. */
int verb_revert_shadow(struct vssadmin *va)
{
        const char *sid = tool_args_value(&va->args, OPT_SHADOW), *volume;
        bool quiet = tool_args_flag(&va->args, OPT_QUIET);
        json_t *result = NULL, *shadows, *all = NULL, *x, *done = NULL;
        json_int_t t = 0, ti = 0;
        char id[VSS_ID_STRING_MAX], question[4096 + 256];
        size_t newer = 0, i;
        int r;

        if (VSS_FAILED(vssadmin_parse_id("shadow", sid, id)))
                return TOOL_EXIT_USAGE;
        r = vssadmin_query_shadows(va, NULL, id, &result);
        if (r != EXIT_SUCCESS)
                return r;
        shadows = json_object_get(result, "shadows");
        if (json_array_size(shadows) == 0) {
                json_decref(result);
                tool_print_errorf(VSS_E_OBJECT_NOT_FOUND, "There is no shadow copy %s.", id);
                return TOOL_EXIT_FAILURE;
        }
        volume = json_get_str(json_array_get(shadows, 0), "original_volume") ?: "?";
        json_get_int(json_array_get(shadows, 0), "creation_time_us", &t);
        r = TOOL_EXIT_FAILURE;
        if (!quiet) {
                if (vssadmin_query_shadows(va, volume, NULL, &all) != EXIT_SUCCESS)
                        goto out;
                json_array_foreach(json_object_get(all, "shadows"), i, x)
                        if (json_get_int(x, "creation_time_us", &ti) && ti > t)
                                newer++;
                snprintf(question, sizeof(question),
                         "Do you really want to revert the volume %s to shadow copy %s? Its current content and "
                         "%zu newer shadow copies are lost (Y/N): [N]? ", volume, id, newer);
                if (!vssadmin_confirm(question)) {
                        printf("\n");
                        r = 0;
                        goto out;
                }
                printf("\n");
        }
        if (VSS_FAILED(vssadmin_call(va, "Shadows.Revert", json_pack("{s:s}", "shadow_id", id), &done)))
                goto out;
        if (!quiet)
                printf("Successfully reverted the volume %s to shadow copy %s (%zu newer shadow copies deleted).\n",
                       volume, id, json_array_size(json_object_get(done, "deleted")));
        r = 0;
out:
        json_decref(done);
        json_decref(all);
        json_decref(result);
        return r;
}

int verb_expose_shadow(struct vssadmin *va)
{
        const char *sid = tool_args_value(&va->args, OPT_SHADOW), *at = tool_args_value(&va->args, OPT_AT);
        json_t *result = NULL, *params;
        char id[VSS_ID_STRING_MAX];

        if (VSS_FAILED(vssadmin_parse_id("shadow", sid, id)))
                return TOOL_EXIT_USAGE;
        params = json_pack("{s:s, s:s}", "shadow_id", id, "path", at);
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (VSS_FAILED(vssadmin_call(va, "Shadows.Expose", params, &result)))
                return TOOL_EXIT_FAILURE;
        printf("Successfully exposed shadow copy %s at '%s'\n", id,
               json_get_str(result, "exposed_path") ?: at);
        json_decref(result);
        return 0;
}

int verb_unexpose_shadow(struct vssadmin *va)
{
        const char *sid = tool_args_value(&va->args, OPT_SHADOW);
        json_t *params;
        char id[VSS_ID_STRING_MAX];

        if (VSS_FAILED(vssadmin_parse_id("shadow", sid, id)))
                return TOOL_EXIT_USAGE;
        params = json_pack("{s:s}", "shadow_id", id);
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (VSS_FAILED(vssadmin_call(va, "Shadows.Unexpose", params, NULL)))
                return TOOL_EXIT_FAILURE;
        printf("Successfully unexposed shadow copy %s\n", id);
        return 0;
}
