/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-only admin methods: Hello, Providers.List, Volumes.List, Events.List,
 * Service.Status and Cluster.Hosts.  Each answers at once from the loop thread
 * (Cluster.Hosts from what the cluster thread last read from etcd).
 */

#include <stdio.h>

#include "vssd/volume.h"
#include "vssd/vssd.h"

static void hello(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        json_int_t ver = VSS_PROTOCOL_VERSION;
        json_t *jv = json_object_get(params, "version");

        if (jv && !json_get_int(params, "version", &ver)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'version' must be an integer");
                return;
        }
        if (ver > VSS_PROTOCOL_VERSION) {
                reply_err(v, c->serial, id, VSS_E_NOT_SUPPORTED, "client speaks protocol version %lld, vssd only %d",
                          (long long)ver, VSS_PROTOCOL_VERSION);
                return;
        }
        reply_ok(v, c->serial, id, json_pack("{s:i, s:s}", "version", VSS_PROTOCOL_VERSION, "daemon", VSSD_VERSION));
}

json_t *providers_list_json(struct vssd *v)
{
        json_t *a = json_array();

        for (size_t i = 0; i < v->n_providers; i++) {
                const struct vss_provider_ops *o = v->providers[i].ops;
                static const char *const types[] = { "Unknown", "System", "Software", "Hardware", "FileShare" };
                vss_id pid;

                (void)vss_id_parse(o->provider_id, &pid);
                json_array_append_new(a, json_pack("{s:s, s:o, s:s, s:s, s:o, s:b}", "name", o->name, "provider_id",
                                                   json_id(&pid), "type",
                                                   (unsigned)o->type < ARRAY_SIZE(types) ? types[o->type] : "Unknown",
                                                   "version", o->version, "version_id", json_id(&pid), "running",
                                                   v->providers[i].ok));
        }
        return a;
}

static bool listed(json_t *a, const char *path)
{
        size_t i;
        json_t *o;

        json_array_foreach(a, i, o)
                if (streq(json_get_str(o, "path"), path))
                        return true;
        return false;
}

static json_t *volume_json(struct vssd *v, const char *path, const char *device, const char *fstype, int p)
{
        vss_id pid = VSS_ID_NULL;

        if (p >= 0)
                (void)vss_id_parse(provider_table[p]->provider_id, &pid);
        return json_pack("{s:s, s:s, s:s, s:o, s:o}", "path", path, "device", device, "fstype", fstype,
                         "provider_id", p >= 0 ? json_id(&pid) : json_null(), "provider_name",
                         p >= 0 ? json_string(provider_table[p]->name) : json_null());
}

int volumes_list_json(struct vssd *v, json_t **ret)
{
        _cleanup_free_ struct volume_info *m = NULL;
        json_t *a;
        size_t n = 0;
        int r;

        r = volume_list_mounts(&m, &n);
        if (r < 0)
                return r;
        a = json_array();
        for (size_t i = 0; i < n; i++) {
                vss_hresult hr;
                int p = provider_find(v, NULL, m[i].path, m[i].fstype, &hr);

                if (p < 0 || listed(a, m[i].path))
                        continue;
                json_array_append_new(a, volume_json(v, m[i].path, m[i].device, m[i].fstype, p));
        }
        /* btrfs subvolumes are volumes too, but only those with shadows are worth listing. */
        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                if (!listed(a, sh->snap.volume))
                        json_array_append_new(a, volume_json(v, sh->snap.volume, sh->snap.volume_device,
                                                             sh->snap.fstype, sh->provider));
        *ret = a;
        return 0;
}

static void volumes_list(struct vssd *v, struct conn *c, json_int_t id)
{
        json_t *a;
        int r = volumes_list_json(v, &a);

        if (r < 0) {
                reply_err(v, c->serial, id, VSS_E_UNEXPECTED, "cannot read /proc/self/mountinfo: %s", strerror(-r));
                return;
        }
        reply_ok(v, c->serial, id, json_pack("{s:o}", "volumes", a));
}

static void events_list(struct vssd *v, struct conn *c, json_int_t id, json_t *params)
{
        json_int_t limit = 100, since = 0;

        if (json_object_get(params, "limit") && (!json_get_int(params, "limit", &limit) || limit < 1 || limit > 100000)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'limit' must be an integer in 1..100000");
                return;
        }
        if (json_object_get(params, "since_us") && (!json_get_int(params, "since_us", &since) || since < 0)) {
                reply_err(v, c->serial, id, VSS_E_INVALIDARG, "field 'since_us' must be a non-negative integer");
                return;
        }
        reply_ok(v, c->serial, id, json_pack("{s:o}", "events", catalog_events(v, limit, since)));
}

static void service_status(struct vssd *v, struct conn *c, json_int_t id)
{
        size_t n_shadows = 0;

        for (struct shadow *sh = v->shadows; sh; sh = sh->next)
                n_shadows++;
        reply_ok(v, c->serial, id,
                 json_pack("{s:s, s:i, s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "version", OPENVSS_VERSION, "pid",
                           (int)getpid(), "state_dir", v->state_dir, "socket", v->socket_path, "writers",
                           (json_int_t)writers_count(v), "set_in_progress", v->set_owner != NULL, "shadows",
                           (json_int_t)n_shadows, "connections", (json_int_t)v->n_conns, "started_us", v->start_us,
                           "freeze_timeout_ms", (json_int_t)v->cfg.freeze_timeout_ms, "event_timeout_ms",
                           (json_int_t)v->cfg.event_timeout_ms));
}

void method_admin(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method)
{
        if (streq(method, "Hello"))
                hello(v, c, id, params);
        else if (streq(method, "Providers.List"))
                reply_ok(v, c->serial, id, json_pack("{s:o}", "providers", providers_list_json(v)));
        else if (streq(method, "Volumes.List"))
                volumes_list(v, c, id);
        else if (streq(method, "Events.List"))
                events_list(v, c, id, params);
        else if (streq(method, "Service.Status"))
                service_status(v, c, id);
        else if (streq(method, "Cluster.Hosts"))
                vcluster_hosts_reply(v, c, id);
        else
                reply_err(v, c->serial, id, VSS_E_NOT_SUPPORTED, "unknown method '%s'", method);
}
