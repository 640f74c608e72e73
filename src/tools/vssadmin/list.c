/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The `vssadmin list ...` commands.  Each is one read-only admin call; the
 * result is printed in the layout of Windows vssadmin (vss-facts 1.3 and
 * 6.1) with Linux names in place of drive letters and volume GUID paths, or
 * verbatim with --json.  Fields the daemon leaves out print as empty rather
 * than failing: an older or newer vssd must never crash the tool.
 */

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "tools/vssadmin/vssadmin.h"

#define NO_ITEMS "No items found that satisfy the query.\n"

static const char *str(const json_t *o, const char *key)
{
        const char *s = json_get_str(o, key);
        return s ?: "";
}

/* --json: the daemon's result as it came. */
static int print_json_and_free(json_t *result)
{
        int r = vssadmin_print_json(result);

        json_decref(result);
        return r;
}

static json_t *array_of(const json_t *result, const char *key)
{
        json_t *a = json_object_get(result, key);
        return json_is_array(a) ? a : NULL;
}

/* One writer in Windows' layout; 'host' (cluster view) adds the line that says where it runs. */
static void print_writer(const json_t *w, const char *host)
{
        json_int_t state = 0;
        const char *label = json_get_str(w, "state_label");
        const char *last = json_get_str(w, "last_error");

        if (!label) {
                json_get_int(w, "state", &state);
                label = vss_writer_state_label((enum vss_writer_state)state);
        }
        printf("Writer name: '%s'\n", str(w, "name"));
        if (host)
                printf("   Host: %s\n", host);
        printf("   Writer Id: %s\n"
               "   Writer Instance Id: %s\n"
               "   State: %s\n"
               "   Last error: %s\n",
               str(w, "writer_id"), str(w, "instance_id"), label, last ?: "No error");
}

/* Cluster.Hosts; a view older than one read (etcd unreachable) is said on stderr. */
static int call_hosts(struct vssadmin *va, json_t **ret)
{
        const char *error;

        if (VSS_FAILED(vssadmin_call(va, "Cluster.Hosts", NULL, ret)))
                return TOOL_EXIT_FAILURE;
        error = json_get_str(*ret, "error");
        if (error && !va->json) {
                json_int_t read_us = 0;
                char when[64];

                json_get_int(*ret, "read_us", &read_us);
                fprintf(stderr, "Warning: etcd did not answer (%s); the view below was read at %s.\n", error,
                        vssadmin_format_time(read_us, when, sizeof(when)));
        }
        return 0;
}

static int list_cluster_writers(struct vssadmin *va)
{
        json_t *result = NULL, *h, *w;
        bool first = true;
        size_t i, j;

        if (call_hosts(va, &result) != 0)
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);
        json_array_foreach(array_of(result, "hosts"), i, h) {
                const char *host = str(h, "name");

                if (!streq(str(h, "state"), "present")) {
                        if (!first)
                                printf("\n");
                        first = false;
                        printf("Host %s: gone (no host record; its writers are unknown)\n", host);
                        continue;
                }
                json_array_foreach(array_of(json_object_get(h, "record"), "writers"), j, w) {
                        if (!first)
                                printf("\n");
                        first = false;
                        print_writer(w, host);
                }
        }
        json_decref(result);
        return 0;
}

int verb_list_writers(struct vssadmin *va)
{
        json_t *result = NULL, *w;
        bool first = true;
        size_t i;

        if (tool_args_flag(&va->args, OPT_CLUSTER))
                return list_cluster_writers(va);
        if (VSS_FAILED(vssadmin_call(va, "Writers.List", NULL, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);
        json_array_foreach(array_of(result, "writers"), i, w) {
                if (!first)
                        printf("\n");
                first = false;
                print_writer(w, NULL);
        }
        json_decref(result);
        return 0;
}

int verb_list_hosts(struct vssadmin *va)
{
        json_t *result = NULL, *h;
        bool first = true;
        size_t i;

        if (call_hosts(va, &result) != 0)
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);
        json_array_foreach(array_of(result, "hosts"), i, h) {
                json_t *rec = json_object_get(h, "record");
                json_int_t updated = 0;
                char when[64];

                if (!first)
                        printf("\n");
                first = false;
                printf("Host name: '%s'%s\n", str(h, "name"),
                       streq(str(h, "name"), str(result, "host")) ? " (this host)" : "");
                if (!streq(str(h, "state"), "present")) {
                        printf("   State: Gone (no host record: its lease expired or its vssd stopped)\n");
                        continue;
                }
                json_get_int(rec, "updated_us", &updated);
                printf("   State: Present\n"
                       "   Version: %s\n"
                       "   Volumes: %zu\n"
                       "   Providers: %zu\n"
                       "   Writers: %zu\n"
                       "   Record updated: %s\n",
                       str(rec, "version"), json_array_size(array_of(rec, "volumes")),
                       json_array_size(array_of(rec, "providers")), json_array_size(array_of(rec, "writers")),
                       vssadmin_format_time(updated, when, sizeof(when)));
        }
        if (first)
                printf(NO_ITEMS);
        json_decref(result);
        return 0;
}

int verb_list_providers(struct vssadmin *va)
{
        json_t *result = NULL, *p;
        bool first = true;
        size_t i;

        if (VSS_FAILED(vssadmin_call(va, "Providers.List", NULL, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);

        json_array_foreach(array_of(result, "providers"), i, p) {
                if (!first)
                        printf("\n");
                first = false;
                printf("Provider name: '%s'\n"
                       "   Provider type: %s\n"
                       "   Provider Id: %s\n"
                       "   Version: %s\n",
                       str(p, "name"), json_get_str(p, "type") ?: "System", str(p, "provider_id"),
                       str(p, "version"));
        }
        json_decref(result);
        return 0;
}

static const char *context_type(json_int_t context)
{
        /* The words of the VSS_SNAPSHOT_CONTEXT values, for a daemon that sends no "type". */
        switch (context) {
        case VSS_CTX_BACKUP:                    return "Backup";
        case VSS_CTX_FILE_SHARE_BACKUP:         return "FileShareBackup";
        case VSS_CTX_NAS_ROLLBACK:              return "DataVolumeRollback";
        case VSS_CTX_APP_ROLLBACK:              return "ApplicationRollback";
        case VSS_CTX_CLIENT_ACCESSIBLE:         return "ClientAccessible";
        case VSS_CTX_CLIENT_ACCESSIBLE_WRITERS: return "ClientAccessibleWriters";
        default:                                return "Unknown";
        }
}

static void print_shadow(const json_t *s, const char *hostname)
{
        json_int_t context = 0;
        const char *type = json_get_str(s, "type");

        if (!type) {
                json_get_int(s, "context", &context);
                type = context_type(context);
        }

        printf("      Shadow Copy ID: %s\n"
               "         Original Volume: (%s)%s\n"
               "         Shadow Copy Volume: %s\n"
               "         Originating Machine: %s\n"
               "         Service Machine: %s\n"
               "         Provider: '%s'\n"
               "         Type: %s\n"
               "         Attributes: %s\n",
               str(s, "shadow_id"), str(s, "original_volume"),
               json_get_str(s, "original_device") ?: str(s, "original_volume"), str(s, "device"),
               json_get_str(s, "originating_machine") ?: hostname,
               json_get_str(s, "service_machine") ?: hostname, str(s, "provider_name"), type,
               str(s, "attributes_text"));
}

int verb_list_shadows(struct vssadmin *va)
{
        const char *vol = tool_args_value(&va->args, OPT_FOR), *sid = tool_args_value(&va->args, OPT_SHADOW);
        const char *set_filter = tool_args_value(&va->args, OPT_SET);
        _cleanup_free_ bool *done = NULL;
        json_t *result = NULL, *shadows;
        char host[256] = "";
        size_t n;
        int r;

        if (set_filter) {
                char setid[VSS_ID_STRING_MAX];
                json_t *params;

                /* A cluster set's shadow copies on every host (vssd adds the other hosts'). */
                if (VSS_FAILED(vssadmin_parse_id("set", set_filter, setid)))
                        return TOOL_EXIT_USAGE;
                params = json_pack("{s:s}", "set_id", setid);
                if (vol)
                        json_object_set_new(params, "volume", json_string(vol));
                if (sid)
                        json_object_set_new(params, "shadow_id", json_string(sid));
                if (VSS_FAILED(vssadmin_call(va, "Shadows.Query", params, &result)))
                        return TOOL_EXIT_FAILURE;
        } else {
                r = vssadmin_query_shadows(va, vol, sid, &result);
                if (r != EXIT_SUCCESS)
                        return r;
        }
        if (va->json) {
                r = vssadmin_print_json(result);
                json_decref(result);
                return r;
        }

        shadows = array_of(result, "shadows");
        n = json_array_size(shadows);
        if (n == 0) {
                printf(NO_ITEMS);
                json_decref(result);
                return 0;
        }
        if (gethostname(host, sizeof(host) - 1) < 0)
                host[0] = 0;

        /* Shadows of one set print under one set header, in the daemon's order. */
        done = calloc(n, sizeof(bool));
        if (!done) {
                json_decref(result);
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        }
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(shadows, i);
                const char *set = str(s, "set_id");
                json_int_t count = 0, created = 0;
                char when[64];

                if (done[i])
                        continue;
                json_get_int(s, "creation_time_us", &created);
                if (!json_get_int(s, "snapshots_count", &count) || count <= 0)
                        for (size_t j = i; j < n; j++)
                                count += streq(str(json_array_get(shadows, j), "set_id"), set);

                printf("Contents of shadow copy set ID: %s\n"
                       "   Contained %" JSON_INTEGER_FORMAT " shadow copies at creation time: %s\n",
                       set, count, vssadmin_format_time(created, when, sizeof(when)));
                for (size_t j = i; j < n; j++) {
                        json_t *t = json_array_get(shadows, j);

                        if (done[j] || !streq(str(t, "set_id"), set))
                                continue;
                        done[j] = true;
                        print_shadow(t, host);
                }
                printf("\n");
        }
        json_decref(result);
        return 0;
}

static bool get_u64(const json_t *o, const char *key, uint64_t *ret)
{
        json_int_t v;

        if (!json_get_int(o, key, &v) || v < 0)
                return false;
        *ret = (uint64_t)v;
        return true;
}

/* "2.06 GB (1%)"; the share is of the volume the storage is taken from. */
static void print_space(const char *what, const json_t *a, const char *bytes_key, const char *pct_key,
                        uint64_t volume_size)
{
        char size[32];
        uint64_t bytes, pct;

        if (!get_u64(a, bytes_key, &bytes)) {
                printf("   %s Shadow Copy Storage space: UNBOUNDED\n", what);
                return;
        }
        if (!get_u64(a, pct_key, &pct))
                pct = volume_size ? (uint64_t)((unsigned __int128)bytes * 100 / volume_size) : 0;
        printf("   %s Shadow Copy Storage space: %s (%" PRIu64 "%%)\n", what,
               tool_format_size(bytes, size, sizeof(size)), pct);
}

int verb_list_shadowstorage(struct vssadmin *va)
{
        const char *for_vol = tool_args_value(&va->args, OPT_FOR), *on_vol = tool_args_value(&va->args, OPT_ON);
        json_t *result = NULL, *params, *a, *assocs;
        bool first = true;
        size_t i;

        params = json_object();
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (for_vol)
                json_object_set_new(params, "for", json_string(for_vol));
        if (on_vol)
                json_object_set_new(params, "on", json_string(on_vol));

        if (VSS_FAILED(vssadmin_call(va, "Storage.List", params, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);

        assocs = array_of(result, "associations");
        if (json_array_size(assocs) == 0)
                printf(NO_ITEMS);
        json_array_foreach(assocs, i, a) {
                uint64_t vsize = 0;
                json_t *max = json_object_get(a, "max_bytes");

                get_u64(a, "on_size_bytes", &vsize);
                if (!first)
                        printf("\n");
                first = false;
                printf("Shadow Copy Storage association\n"
                       "   For volume: (%s)%s\n"
                       "   Shadow Copy Storage volume: (%s)%s\n",
                       str(a, "for"), json_get_str(a, "for_device") ?: str(a, "for"),
                       str(a, "on"), json_get_str(a, "on_device") ?: str(a, "on"));
                print_space("Used", a, "used_bytes", "used_percent", vsize);
                print_space("Allocated", a, "allocated_bytes", "allocated_percent", vsize);
                if (!max || json_is_null(max))
                        printf("   Maximum Shadow Copy Storage space: UNBOUNDED\n");
                else
                        print_space("Maximum", a, "max_bytes", "max_percent", vsize);
        }
        json_decref(result);
        return 0;
}

int verb_list_volumes(struct vssadmin *va)
{
        json_t *result = NULL, *v;
        size_t i;

        if (VSS_FAILED(vssadmin_call(va, "Volumes.List", NULL, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);

        json_array_foreach(array_of(result, "volumes"), i, v)
                printf("Volume path: %s\n"
                       "    Volume name: %s\n",
                       str(v, "path"), json_get_str(v, "device") ?: str(v, "path"));
        json_decref(result);
        return 0;
}

int verb_list_events(struct vssadmin *va)
{
        json_t *result = NULL, *e;
        size_t i;

        if (VSS_FAILED(vssadmin_call(va, "Events.List", NULL, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json)
                return print_json_and_free(result);

        json_array_foreach(array_of(result, "events"), i, e) {
                json_int_t t = 0;
                vss_hresult hr;
                char when[64], hex[11];

                json_get_int(e, "time_us", &t);
                printf("%s %s %s ", vssadmin_format_time(t, when, sizeof(when)), str(e, "level"),
                       str(e, "source"));
                if (wire_parse_hresult(json_object_get(e, "hresult"), &hr))
                        printf("%s %s ", tool_format_hresult(hr, hex), vss_hresult_name(hr));
                printf("%s\n", str(e, "message"));
        }
        json_decref(result);
        return 0;
}

int verb_list_previousversions(struct vssadmin *va)
{
        const char *for_vol = tool_args_value(&va->args, OPT_FOR);
        json_t *result = NULL, *params = json_object(), *p, *sh;
        size_t i, k;

        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (for_vol)
                json_object_set_new(params, "volume", json_string(for_vol));
        if (VSS_FAILED(vssadmin_call(va, "PreviousVersions.List", params, &result)))
                return TOOL_EXIT_FAILURE;
        if (va->json) {
                int r = vssadmin_print_json(result);
                json_decref(result);
                return r;
        }

        if (json_array_size(array_of(result, "publications")) == 0)
                printf(NO_ITEMS);
        json_array_foreach(array_of(result, "publications"), i, p) {
                json_t *shadows = array_of(p, "shadows");
                json_int_t since = 0;
                char when[64];

                json_get_int(p, "created_us", &since);
                if (i > 0)
                        printf("\n");
                printf("Previous Versions of volume: %s\n"
                       "   Published at: %s\n"
                       "   Published since: %s\n"
                       "   Shadow copies published: %zu\n",
                       str(p, "volume"), str(p, "dir"), vssadmin_format_time(since, when, sizeof(when)),
                       json_array_size(shadows));
                json_array_foreach(shadows, k, sh) {
                        json_int_t created = 0;

                        json_get_int(sh, "creation_time_us", &created);
                        printf("      %s: Shadow Copy ID: %s, created %s\n", str(sh, "name"), str(sh, "shadow_id"),
                               vssadmin_format_time(created, when, sizeof(when)));
                }
        }
        json_decref(result);
        return 0;
}
