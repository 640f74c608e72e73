/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The requester API of include/vss/requester.h.
 *
 * A vss_backup is a thin, stateful wrapper around one vss_client: each call
 * maps to one Backup.* or Shadows.* method.  What the replies carry is kept as
 * JSON (the writer metadata of GatherWriterMetadata, the writer status list of
 * the last stage, the backup metadata writers attached) and the public
 * structs are views into it, which is why their pointers live until the next
 * call.  Backup metadata is accumulated across stages, keyed by writer id,
 * logical path and name, because writers may attach it at any event from
 * PrepareForBackup to PostSnapshot and the last value wins.
 *
 * The order of the sequence (vss-facts 3.1) is also checked locally, so a
 * program calling DoSnapshotSet before StartSnapshotSet gets VSS_E_BAD_STATE
 * with a detail saying which call was expected, without a round trip.  The
 * daemon stays the authority: the local check only refuses what can never
 * be right.
 */

#include <stdio.h>

#include "basic/wire.h"
#include "client-internal.h"
#include "vss/requester.h"

enum backup_stage {
        STAGE_INIT,             /* nothing yet, or only metadata / settings */
        STAGE_STARTED,          /* StartSnapshotSet done */
        STAGE_PREPARED,         /* PrepareForBackup done */
        STAGE_SNAPSHOT_DONE,    /* DoSnapshotSet succeeded */
        STAGE_SNAPSHOT_FAILED,  /* DoSnapshotSet failed: only AbortBackup is left */
        STAGE_FINISHED,         /* BackupComplete or AbortBackup (or PostRestore) done */
        STAGE_RESTORING,        /* PreRestore done: only PostRestore is left */
};

struct wmd_view {
        const char **volumes;   /* NULL-terminated, pointing into the JSON */
};

struct vss_backup {
        vss_client *client;
        enum backup_stage stage;
        bool used;              /* a Backup.* method was called: End it on free */
        bool gathered;
        vss_id set_id;
        json_t *metadata;       /* writers of GatherWriterMetadata */
        struct wmd_view *views;
        json_t *status;         /* writers of the last stage */
        json_t *backup_metadata; /* "{writer id}\nlogical path\nname" -> text */
        json_t *restore;        /* components selected for restore, in Backup.PreRestore form */
        char detail[2048];
};

static const char *const stage_names[] = {
        [STAGE_INIT] = "before StartSnapshotSet",
        [STAGE_STARTED] = "after StartSnapshotSet",
        [STAGE_PREPARED] = "after PrepareForBackup",
        [STAGE_SNAPSHOT_DONE] = "after DoSnapshotSet",
        [STAGE_SNAPSHOT_FAILED] = "after a failed DoSnapshotSet (only AbortBackup is possible)",
        [STAGE_FINISHED] = "after BackupComplete/AbortBackup/PostRestore (the session is single-use)",
        [STAGE_RESTORING] = "after PreRestore (only PostRestore is possible)",
};

static vss_hresult set_detail(vss_backup *b, vss_hresult hr, const char *fmt, ...) _printf_(3, 4);
static vss_hresult set_detail(vss_backup *b, vss_hresult hr, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(b->detail, sizeof(b->detail), fmt, ap);
        va_end(ap);
        return hr;
}

static vss_hresult bad_stage(vss_backup *b, const char *call)
{
        return set_detail(b, VSS_E_BAD_STATE, "%s is not possible %s", call, stage_names[b->stage]);
}

vss_hresult vss_backup_new(const char *socket_path, vss_backup **ret)
{
        vss_backup *b;
        vss_hresult hr;

        if (!ret)
                return VSS_E_INVALIDARG;
        b = calloc(1, sizeof(*b));
        if (!b)
                return VSS_E_OUTOFMEMORY;
        b->backup_metadata = json_object();
        if (!b->backup_metadata) {
                free(b);
                return VSS_E_OUTOFMEMORY;
        }
        hr = vss__client_connect(socket_path, false, &b->client);
        if (VSS_FAILED(hr)) {
                vss_backup_free(b);
                return hr;
        }
        *ret = b;
        return VSS_S_OK;
}

static void drop_metadata(vss_backup *b)
{
        for (size_t i = 0; b->views && i < json_array_size(b->metadata); i++)
                free(b->views[i].volumes);
        free(b->views);
        b->views = NULL;
        json_decref(b->metadata);
        b->metadata = NULL;
}

vss_backup *vss_backup_free(vss_backup *b)
{
        if (!b)
                return NULL;
        if (b->used && vss__client_is_connected(b->client))
                (void)vss__client_call_json(b->client, "Backup.End", NULL, NULL);
        b->client = vss_client_free(b->client);
        drop_metadata(b);
        json_decref(b->status);
        json_decref(b->backup_metadata);
        json_decref(b->restore);
        free(b);
        return NULL;
}

const char *vss_backup_get_error_detail(vss_backup *b)
{
        return b ? b->detail : "";
}

static void keep_status(vss_backup *b, json_t *result)
{
        json_t *writers = json_object_get(result, "writers"), *w, *c;
        size_t i, j;

        if (!json_is_array(writers))
                return;
        json_decref(b->status);
        b->status = json_incref(writers);

        json_array_foreach(writers, i, w) {
                const char *id = json_get_str(w, "writer_id");
                vss_id wid;
                char buf[VSS_ID_STRING_MAX];

                if (!id || VSS_FAILED(vss_id_parse(id, &wid)))
                        continue;
                json_array_foreach(json_object_get(w, "components"), j, c) {
                        const char *lp = json_get_str(c, "logical_path"), *name = json_get_str(c, "name");
                        const char *md = json_get_str(c, "backup_metadata");
                        _cleanup_free_ char *key = NULL;

                        if (!name || !md)
                                continue;
                        if (asprintf(&key, "%s\n%s\n%s", vss_id_format(&wid, buf), lp ? lp : "", name) < 0) {
                                key = NULL;
                                continue;
                        }
                        json_object_set_new(b->backup_metadata, key, json_string(md));
                }
        }
}

/* One method call: keeps the daemon's detail and any writer status in the reply. */
static vss_hresult backup_call(vss_backup *b, const char *method, json_t *params, json_t **ret_result)
{
        _cleanup_json_ json_t *result = NULL;
        vss_hresult hr;

        b->detail[0] = 0;
        if (!params)
                params = json_object();
        if (!params)
                return VSS_E_OUTOFMEMORY;
        if (strncmp(method, "Backup.", 7) == 0)
                b->used = true;
        hr = vss__client_call_json(b->client, method, params, &result);
        if (VSS_FAILED(hr)) {
                return set_detail(b, hr, "%s: %s (%s)", method, vss_client_get_error_detail(b->client),
                                  vss_hresult_name(hr));
        }
        keep_status(b, result);
        if (ret_result)
                *ret_result = TAKE_PTR(result);
        return hr;
}

vss_hresult vss_backup_set_context(vss_backup *b, int32_t context)
{
        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "SetContext");
        return backup_call(b, "Backup.SetContext", json_pack("{s:i}", "context", (int)context), NULL);
}

vss_hresult vss_backup_set_backup_state(vss_backup *b, bool select_components, bool bootable_system_state,
                                        enum vss_backup_type type)
{
        if (!b || !wire_backup_type_name(type) || type == VSS_BT_UNDEFINED)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "SetBackupState");
        return backup_call(b, "Backup.SetBackupState",
                           json_pack("{s:b, s:b, s:s}", "select_components", select_components,
                                     "bootable_system_state", bootable_system_state, "backup_type",
                                     wire_backup_type_name(type)),
                           NULL);
}

static vss_hresult build_views(vss_backup *b)
{
        size_t n = json_array_size(b->metadata), i, j;
        json_t *w, *v;

        b->views = calloc(n ? n : 1, sizeof(*b->views));
        if (!b->views)
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(b->metadata, i, w) {
                json_t *vols = json_object_get(w, "volumes");
                size_t k = 0;

                b->views[i].volumes = calloc(json_array_size(vols) + 1, sizeof(char *));
                if (!b->views[i].volumes)
                        return VSS_E_OUTOFMEMORY;
                json_array_foreach(vols, j, v)
                        if (json_is_string(v))
                                b->views[i].volumes[k++] = json_string_value(v);
        }
        return VSS_S_OK;
}

vss_hresult vss_backup_gather_writer_metadata(vss_backup *b)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *writers;
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT && b->stage != STAGE_STARTED)
                return bad_stage(b, "GatherWriterMetadata");
        hr = backup_call(b, "Backup.GatherWriterMetadata", NULL, &result);
        if (VSS_FAILED(hr))
                return hr;
        writers = json_object_get(result, "writers");
        drop_metadata(b);
        b->metadata = json_is_array(writers) ? json_incref(writers) : json_array();
        b->gathered = true;
        return build_views(b);
}

size_t vss_backup_get_writer_metadata_count(vss_backup *b)
{
        return b ? json_array_size(b->metadata) : 0;
}

vss_hresult vss_backup_get_writer_metadata(vss_backup *b, size_t i, struct vss_writer_metadata *ret)
{
        json_t *w;
        json_int_t v;

        if (!b || !ret)
                return VSS_E_INVALIDARG;
        w = json_array_get(b->metadata, i);
        if (!w)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no writer metadata #%zu (have %zu)", i,
                                  json_array_size(b->metadata));
        *ret = (struct vss_writer_metadata){
                .name = json_get_str(w, "name"),
                .volume_count = json_array_size(json_object_get(w, "volumes")),
                .volumes = b->views[i].volumes,
                .component_count = json_array_size(json_object_get(w, "components")),
        };
        json_get_id(w, "writer_id", &ret->writer_id);
        json_get_id(w, "instance_id", &ret->instance_id);
        if (json_get_int(w, "freeze_timeout_ms", &v))
                ret->freeze_timeout_ms = (uint32_t)v;
        if (json_get_int(w, "pid", &v))
                ret->pid = (int32_t)v;
        return VSS_S_OK;
}

vss_hresult vss_backup_get_writer_component(vss_backup *b, size_t writer, size_t component,
                                            struct vss_component_info *ret)
{
        json_t *c;
        const char *type;

        if (!b || !ret)
                return VSS_E_INVALIDARG;
        c = json_array_get(json_object_get(json_array_get(b->metadata, writer), "components"), component);
        if (!c)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no component #%zu of writer #%zu", component,
                                  writer);
        type = json_get_str(c, "type");
        *ret = (struct vss_component_info){
                .type = streq_ptr(type, "database") ? VSS_CT_DATABASE :
                        streq_ptr(type, "filegroup") ? VSS_CT_FILEGROUP : VSS_CT_UNDEFINED,
                .logical_path = json_get_str(c, "logical_path") ?: "",
                .name = json_get_str(c, "name") ?: "",
                .caption = json_get_str(c, "caption"),
                .selectable = json_get_bool(c, "selectable", true),
        };
        return VSS_S_OK;
}

vss_hresult vss_backup_get_writer_restore_method(vss_backup *b, size_t i, struct vss_restore_method *ret)
{
        json_t *w, *rm;
        int m, wr;

        if (!b || !ret)
                return VSS_E_INVALIDARG;
        w = json_array_get(b->metadata, i);
        if (!w)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no writer metadata #%zu (have %zu)", i,
                                  json_array_size(b->metadata));
        rm = json_object_get(w, "restore_method");
        m = vss_restore_method_from_name(json_get_str(rm, "method"));
        wr = vss_writer_restore_from_name(json_get_str(rm, "writer_restore"));
        *ret = (struct vss_restore_method){
                .method = m > VSS_RME_UNDEFINED ? (enum vss_restore_method_type)m : VSS_RME_RESTORE_IF_CAN_REPLACE,
                .service = json_get_str(rm, "service") ?: "",
                .user_procedure = json_get_str(rm, "user_procedure") ?: "",
                .writer_restore = wr > VSS_WRE_UNDEFINED ? (enum vss_writer_restore_type)wr : VSS_WRE_NEVER,
                .reboot_required = json_get_bool(rm, "reboot_required", false),
        };
        return VSS_S_OK;
}

static json_t *component_files(vss_backup *b, size_t writer, size_t component)
{
        json_t *f = json_object_get(
                json_array_get(json_object_get(json_array_get(b->metadata, writer), "components"), component),
                "files");

        return json_is_array(f) ? f : NULL;
}

size_t vss_backup_get_writer_component_file_count(vss_backup *b, size_t writer, size_t component)
{
        return b ? json_array_size(component_files(b, writer, component)) : 0;
}

vss_hresult vss_backup_get_writer_component_file(vss_backup *b, size_t writer, size_t component, size_t file,
                                                 struct vss_component_file *ret)
{
        json_t *f;

        if (!b || !ret)
                return VSS_E_INVALIDARG;
        f = json_array_get(component_files(b, writer, component), file);
        if (!f || !json_get_str(f, "path"))
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no file #%zu in component #%zu of writer #%zu", file,
                                  component, writer);
        *ret = (struct vss_component_file){
                .path = json_get_str(f, "path"),
                .filespec = json_get_str(f, "filespec") ?: "*",
                .recursive = json_get_bool(f, "recursive", false),
        };
        return VSS_S_OK;
}

vss_hresult vss_backup_add_component(vss_backup *b, const vss_id *instance_id, const vss_id *writer_id,
                                     enum vss_component_type type, const char *logical_path, const char *name)
{
        if (!b || !writer_id || !name || (type != VSS_CT_DATABASE && type != VSS_CT_FILEGROUP))
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT && b->stage != STAGE_STARTED)
                return bad_stage(b, "AddComponent");
        return backup_call(b, "Backup.AddComponent",
                           json_pack("{s:o, s:o, s:s, s:s, s:s}", "instance_id",
                                     instance_id ? json_id(instance_id) : json_null(), "writer_id",
                                     json_id(writer_id), "type", type == VSS_CT_DATABASE ? "database" : "filegroup",
                                     "logical_path", logical_path ? logical_path : "", "name", name),
                           NULL);
}

vss_hresult vss_backup_exclude_writer(vss_backup *b, const char *writer)
{
        if (!b || !writer || !*writer)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT && b->stage != STAGE_STARTED)
                return bad_stage(b, "ExcludeWriters");
        return backup_call(b, "Backup.ExcludeWriters", json_pack("{s:[s]}", "writers", writer), NULL);
}

vss_hresult vss_backup_start_snapshot_set(vss_backup *b, vss_id *ret_set_id)
{
        _cleanup_json_ json_t *result = NULL;
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "StartSnapshotSet");
        hr = backup_call(b, "Backup.StartSnapshotSet", NULL, &result);
        if (VSS_FAILED(hr))
                return hr;
        if (!json_get_id(result, "set_id", &b->set_id))
                return set_detail(b, VSS_E_UNEXPECTED, "Backup.StartSnapshotSet: reply has no valid 'set_id'");
        b->stage = STAGE_STARTED;
        if (ret_set_id)
                *ret_set_id = b->set_id;
        return hr;
}

static vss_hresult add_to_set(vss_backup *b, const char *host, const char *volume, const vss_id *provider_id,
                              vss_id *ret_snapshot_id)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *params;
        vss_id id;
        vss_hresult hr;

        if (!b || !volume || !*volume)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_STARTED && b->stage != STAGE_PREPARED)
                return bad_stage(b, "AddToSnapshotSet");
        params = json_pack("{s:s, s:o}", "volume", volume, "provider_id",
                           provider_id && !vss_id_is_null(provider_id) ? json_id(provider_id) : json_null());
        if (params && host)
                json_object_set_new(params, "host", json_string(host));
        hr = backup_call(b, "Backup.AddToSnapshotSet", params, &result);
        if (VSS_FAILED(hr))
                return hr;
        if (!json_get_id(result, "shadow_id", &id))
                return set_detail(b, VSS_E_UNEXPECTED, "Backup.AddToSnapshotSet: reply has no valid 'shadow_id'");
        if (ret_snapshot_id)
                *ret_snapshot_id = id;
        return hr;
}

vss_hresult vss_backup_add_to_snapshot_set(vss_backup *b, const char *volume, const vss_id *provider_id,
                                           vss_id *ret_snapshot_id)
{
        return add_to_set(b, NULL, volume, provider_id, ret_snapshot_id);
}

vss_hresult vss_backup_add_to_cluster_set(vss_backup *b, const char *host, const char *volume,
                                          vss_id *ret_snapshot_id)
{
        if (!host)
                return VSS_E_INVALIDARG;
        return add_to_set(b, host, volume, NULL, ret_snapshot_id);
}

vss_hresult vss_backup_prepare_for_backup(vss_backup *b)
{
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_STARTED)
                return bad_stage(b, "PrepareForBackup");
        hr = backup_call(b, "Backup.PrepareForBackup", NULL, NULL);
        if (VSS_SUCCEEDED(hr))
                b->stage = STAGE_PREPARED;
        return hr;
}

vss_hresult vss_backup_do_snapshot_set(vss_backup *b)
{
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_STARTED && b->stage != STAGE_PREPARED)
                return bad_stage(b, "DoSnapshotSet");
        hr = backup_call(b, "Backup.DoSnapshotSet", NULL, NULL);
        if (VSS_FAILED(hr)) {
                b->stage = STAGE_SNAPSHOT_FAILED;
                /* The failing reply has no status: fetch it so the caller sees who vetoed. */
                if (hr != VSS_E_WRITER_INFRASTRUCTURE) {
                        char saved[sizeof(b->detail)];
                        memcpy(saved, b->detail, sizeof(saved));
                        (void)backup_call(b, "Backup.GatherWriterStatus", NULL, NULL);
                        memcpy(b->detail, saved, sizeof(saved));
                }
                return hr;
        }
        b->stage = STAGE_SNAPSHOT_DONE;
        return hr;
}

vss_hresult vss_backup_gather_writer_status(vss_backup *b)
{
        if (!b)
                return VSS_E_INVALIDARG;
        return backup_call(b, "Backup.GatherWriterStatus", NULL, NULL);
}

size_t vss_backup_get_writer_status_count(vss_backup *b)
{
        return b ? json_array_size(b->status) : 0;
}

vss_hresult vss_backup_get_writer_status(vss_backup *b, size_t i, struct vss_writer_status *ret)
{
        json_t *w;
        json_int_t state = 0;
        vss_hresult failure = VSS_S_OK;

        if (!b || !ret)
                return VSS_E_INVALIDARG;
        w = json_array_get(b->status, i);
        if (!w)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no writer status #%zu (have %zu)", i,
                                  json_array_size(b->status));
        json_get_int(w, "state", &state);
        if (!wire_parse_hresult(json_object_get(w, "failure"), &failure))
                failure = VSS_S_OK;
        *ret = (struct vss_writer_status){
                .name = json_get_str(w, "name") ?: "",
                .state = state >= 0 && state < VSS_WS_COUNT ? (enum vss_writer_state)state : VSS_WS_UNKNOWN,
                .failure = failure,
                .message = json_get_str(w, "message"),
                .involved = json_get_bool(w, "involved", false),
        };
        json_get_id(w, "writer_id", &ret->writer_id);
        json_get_id(w, "instance_id", &ret->instance_id);
        return VSS_S_OK;
}

const char *vss_backup_get_backup_metadata(vss_backup *b, const vss_id *writer_id, const char *logical_path,
                                           const char *name)
{
        _cleanup_free_ char *key = NULL;
        char buf[VSS_ID_STRING_MAX];

        if (!b || !writer_id || !name)
                return NULL;
        if (asprintf(&key, "%s\n%s\n%s", vss_id_format(writer_id, buf), logical_path ? logical_path : "", name) < 0)
                return NULL;
        return json_string_value(json_object_get(b->backup_metadata, key));
}

vss_hresult vss_backup_backup_complete(vss_backup *b, bool succeeded)
{
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_SNAPSHOT_DONE)
                return bad_stage(b, "BackupComplete");
        hr = backup_call(b, "Backup.BackupComplete", json_pack("{s:b}", "succeeded", succeeded), NULL);
        if (VSS_SUCCEEDED(hr))
                b->stage = STAGE_FINISHED;
        return hr;
}

vss_hresult vss_backup_abort_backup(vss_backup *b)
{
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage == STAGE_INIT || b->stage == STAGE_FINISHED)
                return bad_stage(b, "AbortBackup");
        hr = backup_call(b, "Backup.AbortBackup", NULL, NULL);
        if (VSS_SUCCEEDED(hr))
                b->stage = STAGE_FINISHED;
        return hr;
}

/* The selected restore components that (writer_id, logical_path, name) designates; NULL parts match all. */
static bool restore_matches(json_t *c, const vss_id *writer_id, const char *logical_path, const char *name)
{
        vss_id id;

        if (!writer_id)
                return true;
        if (!json_get_id(c, "writer_id", &id) || !vss_id_equal(&id, writer_id))
                return false;
        if (!name)
                return true;
        return streq(json_get_str(c, "logical_path") ?: "", logical_path ?: "") &&
               streq_ptr(json_get_str(c, "name"), name);
}

vss_hresult vss_backup_add_restore_component(vss_backup *b, const vss_id *writer_id, const char *writer_name,
                                             const char *logical_path, const char *name,
                                             const char *backup_metadata)
{
        json_t *c, *x;
        size_t i;

        if (!b || !writer_id || !name || !*name)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "AddRestoreComponent");
        if (!b->restore && !(b->restore = json_array()))
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(b->restore, i, x)
                if (restore_matches(x, writer_id, logical_path, name))
                        return set_detail(b, VSS_E_OBJECT_ALREADY_EXISTS, "component '%s' of writer '%s' is already "
                                          "selected for restore", name, writer_name ?: "?");
        c = json_pack("{s:o, s:s?, s:s, s:s, s:o, s:[]}", "writer_id", json_id(writer_id), "writer_name",
                      writer_name, "logical_path", logical_path ?: "", "name", name, "backup_metadata",
                      json_str_or_null(backup_metadata), "new_targets");
        if (!c || json_array_append_new(b->restore, c) < 0)
                return VSS_E_OUTOFMEMORY;
        return VSS_S_OK;
}

vss_hresult vss_backup_add_new_target(vss_backup *b, const vss_id *writer_id, const char *logical_path,
                                      const char *name, const char *path, const char *target)
{
        size_t i, n = 0;
        json_t *c;

        if (!b || !path || !*path || !target || !*target)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "AddNewTarget");
        json_array_foreach(b->restore, i, c) {
                if (!restore_matches(c, writer_id, logical_path, name))
                        continue;
                if (json_array_append_new(json_object_get(c, "new_targets"),
                                          json_pack("{s:s, s:s}", "path", path, "target", target)) < 0)
                        return VSS_E_OUTOFMEMORY;
                n++;
        }
        if (n == 0)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "AddNewTarget: no component selected for restore "
                                  "matches");
        return VSS_S_OK;
}

vss_hresult vss_backup_set_file_restore_status(vss_backup *b, const vss_id *writer_id, const char *logical_path,
                                               const char *name, enum vss_file_restore_status status)
{
        size_t i, n = 0;
        json_t *c;

        if (!b || !vss_file_restore_status_name(status))
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_RESTORING)
                return bad_stage(b, "SetFileRestoreStatus");
        json_array_foreach(b->restore, i, c)
                if (restore_matches(c, writer_id, logical_path, name)) {
                        json_object_set_new(c, "file_restore_status",
                                            json_string(vss_file_restore_status_name(status)));
                        n++;
                }
        if (n == 0)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "SetFileRestoreStatus: no component selected for "
                                  "restore matches");
        return VSS_S_OK;
}

vss_hresult vss_backup_pre_restore(vss_backup *b)
{
        _cleanup_json_ json_t *comps = NULL;
        json_t *c;
        size_t i;
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_INIT)
                return bad_stage(b, "PreRestore");
        if (json_array_size(b->restore) == 0)
                return set_detail(b, VSS_E_BAD_STATE, "PreRestore: no component is selected for restore");
        /* PreRestore carries no file restore status: nothing is restored yet. */
        comps = json_deep_copy(b->restore);
        if (!comps)
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(comps, i, c)
                json_object_del(c, "file_restore_status");
        hr = backup_call(b, "Backup.PreRestore", json_pack("{s:O}", "components", comps), NULL);
        if (VSS_SUCCEEDED(hr))
                b->stage = STAGE_RESTORING;
        return hr;
}

static bool failed_pre_restore(vss_backup *b, json_t *component)
{
        vss_id cid, wid;
        json_t *w;
        size_t i;
        json_int_t state;

        if (!json_get_id(component, "writer_id", &cid))
                return false;
        json_array_foreach(b->status, i, w)
                if (json_get_id(w, "writer_id", &wid) && vss_id_equal(&wid, &cid) && json_get_int(w, "state", &state) &&
                    state == VSS_WS_FAILED_AT_PRE_RESTORE)
                        return true;
        return false;
}

vss_hresult vss_backup_post_restore(vss_backup *b)
{
        json_t *c;
        size_t i;
        vss_hresult hr;

        if (!b)
                return VSS_E_INVALIDARG;
        if (b->stage != STAGE_RESTORING)
                return bad_stage(b, "PostRestore");
        _cleanup_json_ json_t *comps = json_array();
        if (!comps)
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(b->restore, i, c) {
                /* Components nobody reported on: nothing is known to have been restored. */
                if (!json_object_get(c, "file_restore_status"))
                        json_object_set_new(c, "file_restore_status", json_string("none"));
                /* A writer that vetoed PreRestore prepared nothing: it gets no PostRestore,
                 * and its [13] Failed stays what the admin sees. */
                if (!failed_pre_restore(b, c))
                        json_array_append(comps, c);
        }
        /* Sent even when it is empty: it ends the restore (vssd's turn is free again). */
        hr = backup_call(b, "Backup.PostRestore", json_pack("{s:O}", "components", comps), NULL);
        if (VSS_SUCCEEDED(hr))
                b->stage = STAGE_FINISHED;
        return hr;
}

static char *dup_str(const json_t *o, const char *key)
{
        const char *s = json_get_str(o, key);
        return s ? strdup(s) : NULL;
}

void vss_snapshot_prop_clear(struct vss_snapshot_prop *p)
{
        if (!p)
                return;
        free(p->snapshot_device);
        free(p->original_volume);
        free(p->original_device);
        free(p->originating_machine);
        free(p->service_machine);
        free(p->exposed_name);
        free(p->exposed_path);
        free(p->provider_name);
        *p = (struct vss_snapshot_prop){ 0 };
}

static void prop_from_json(const json_t *o, struct vss_snapshot_prop *p)
{
        json_int_t v;

        *p = (struct vss_snapshot_prop){
                .snapshot_device = dup_str(o, "device"),
                .original_volume = dup_str(o, "original_volume"),
                .original_device = dup_str(o, "original_device"),
                .originating_machine = dup_str(o, "originating_machine"),
                .service_machine = dup_str(o, "service_machine"),
                .exposed_name = dup_str(o, "exposed_name"),
                .exposed_path = dup_str(o, "exposed_path"),
                .provider_name = dup_str(o, "provider_name"),
        };
        json_get_id(o, "shadow_id", &p->snapshot_id);
        json_get_id(o, "set_id", &p->snapshot_set_id);
        json_get_id(o, "provider_id", &p->provider_id);
        if (json_get_int(o, "snapshots_count", &v))
                p->snapshots_count = (int32_t)v;
        if (json_get_int(o, "attributes", &v))
                p->attributes = (int32_t)v;
        if (json_get_int(o, "context", &v))
                p->context = (int32_t)v;
        if (json_get_int(o, "creation_time_us", &v))
                p->creation_time_us = v;
        if (json_get_int(o, "state", &v))
                p->state = (int32_t)v;
}

vss_hresult vss_backup_get_snapshot_properties(vss_backup *b, const vss_id *snapshot_id,
                                               struct vss_snapshot_prop *ret)
{
        _cleanup_json_ json_t *result = NULL;
        json_t *s;
        char buf[VSS_ID_STRING_MAX];
        vss_hresult hr;

        if (!b || !snapshot_id || !ret)
                return VSS_E_INVALIDARG;
        hr = backup_call(b, "Shadows.Query", json_pack("{s:o}", "shadow_id", json_id(snapshot_id)), &result);
        if (VSS_FAILED(hr))
                return hr;
        s = json_array_get(json_object_get(result, "shadows"), 0);
        if (!s)
                return set_detail(b, VSS_E_OBJECT_NOT_FOUND, "no shadow copy %s", vss_id_format(snapshot_id, buf));
        prop_from_json(s, ret);
        return VSS_S_OK;
}

vss_hresult vss_backup_query(vss_backup *b, const char *volume, struct vss_snapshot_prop **ret, size_t *ret_count)
{
        _cleanup_json_ json_t *result = NULL;
        struct vss_snapshot_prop *props;
        json_t *shadows, *s;
        size_t i;
        vss_hresult hr;

        if (!b || !ret || !ret_count)
                return VSS_E_INVALIDARG;
        hr = backup_call(b, "Shadows.Query", volume ? json_pack("{s:s}", "volume", volume) : NULL, &result);
        if (VSS_FAILED(hr))
                return hr;
        shadows = json_object_get(result, "shadows");
        props = calloc(json_array_size(shadows) + 1, sizeof(*props));
        if (!props)
                return VSS_E_OUTOFMEMORY;
        json_array_foreach(shadows, i, s)
                prop_from_json(s, &props[i]);
        *ret = props;
        *ret_count = json_array_size(shadows);
        return VSS_S_OK;
}

void vss_snapshot_prop_array_free(struct vss_snapshot_prop *props, size_t count)
{
        for (size_t i = 0; props && i < count; i++)
                vss_snapshot_prop_clear(&props[i]);
        free(props);
}

vss_hresult vss_backup_delete_snapshots(vss_backup *b, const vss_id *id, bool is_set, int32_t *ret_deleted)
{
        _cleanup_json_ json_t *result = NULL;
        json_int_t n = 0;
        vss_hresult hr;

        if (!b || !id)
                return VSS_E_INVALIDARG;
        hr = backup_call(b, "Shadows.Delete", json_pack("{s:o}", is_set ? "set_id" : "shadow_id", json_id(id)),
                         &result);
        if (VSS_FAILED(hr))
                return hr;
        json_get_int(result, "deleted", &n);
        if (ret_deleted)
                *ret_deleted = (int32_t)n;
        return hr;
}

vss_hresult vss_backup_expose_snapshot(vss_backup *b, const vss_id *snapshot_id, const char *path,
                                       char **ret_path)
{
        _cleanup_json_ json_t *result = NULL;
        const char *p;
        vss_hresult hr;

        if (!b || !snapshot_id)
                return VSS_E_INVALIDARG;
        hr = backup_call(b, "Shadows.Expose",
                         json_pack("{s:o, s:s?}", "shadow_id", json_id(snapshot_id), "path", path), &result);
        if (VSS_FAILED(hr))
                return hr;
        p = json_get_str(result, "exposed_path");
        if (ret_path) {
                *ret_path = strdup(p ? p : path ? path : "");
                if (!*ret_path)
                        return VSS_E_OUTOFMEMORY;
        }
        return hr;
}

vss_hresult vss_backup_revert_to_snapshot(vss_backup *b, const vss_id *snapshot_id)
{
        if (!b || !snapshot_id)
                return VSS_E_INVALIDARG;
        return backup_call(b, "Shadows.Revert", json_pack("{s:o}", "shadow_id", json_id(snapshot_id)), NULL);
}

vss_hresult vss_backup_unexpose_snapshot(vss_backup *b, const vss_id *snapshot_id)
{
        if (!b || !snapshot_id)
                return VSS_E_INVALIDARG;
        return backup_call(b, "Shadows.Unexpose", json_pack("{s:o}", "shadow_id", json_id(snapshot_id)), NULL);
}
