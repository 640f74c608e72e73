/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backup components document: C structs <-> versioned JSON (the format is
 * docs/backup-components.md).
 *
 * Reading is where the care goes, because a document may come back from any
 * backup medium, truncated, bit-rotted or written by someone who wants vshadow
 * to restore the wrong thing.  jansson parses with duplicate keys rejected and
 * without NUL in strings (a key given twice, or "a\u0000b", could make two
 * readers see two different documents); then every field vshadow uses is
 * checked here: its type, its range, its length, GUIDs for ids, no control
 * characters in names and paths (they end up in environment variables and on
 * lines of hook input), uniqueness of writer ids, of components within a
 * writer and of shadow copies, and the limits the protocol itself has
 * (256 KiB of backup metadata per writer, 64 volumes per set).  The first
 * failure ends the parse, with the field's path in the message.  Unknown
 * fields are ignored, so that a later version may add some without breaking
 * this reader; a later version number is refused.
 *
 * Writing is atomic: a temporary file in the same directory, fsync, rename,
 * fsync of the directory.  The temporary file is created before the snapshot
 * set is, so that a document that cannot be written fails the run before any
 * writer is frozen.
 */

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "basic/fs-util.h"
#include "basic/json-util.h"
#include "basic/names.h"
#include "bc-doc.h"

static void shadow_done(struct bc_shadow *s)
{
        free(s->original_volume);
        free(s->original_device);
        free(s->device);
        free(s->provider_name);
}

static void component_done(struct bc_component *c)
{
        for (size_t i = 0; i < c->n_files; i++) {
                free(c->files[i].path);
                free(c->files[i].filespec);
        }
        free(c->files);
        free(c->logical_path);
        free(c->name);
        free(c->caption);
        free(c->backup_metadata);
}

static void writer_done(struct bc_writer *w)
{
        for (size_t i = 0; i < w->n_components; i++)
                component_done(&w->components[i]);
        free(w->components);
        free(w->name);
        free(w->restore_method.service);
        free(w->restore_method.user_procedure);
        free(w->message);
}

void bc_doc_done(struct bc_doc *d)
{
        for (size_t i = 0; i < d->n_shadows; i++)
                shadow_done(&d->shadows[i]);
        free(d->shadows);
        for (size_t i = 0; i < d->n_writers; i++)
                writer_done(&d->writers[i]);
        free(d->writers);
        free(d->host);
        *d = (struct bc_doc){ 0 };
}

/* Grows *array (of n elements of 'size') by one zeroed element. */
static void *grow(void *array_p, size_t *n, size_t size)
{
        void **a = array_p;
        char *p = reallocarray(*a, *n + 1, size);

        if (!p)
                return NULL;
        *a = p;
        memset(p + *n * size, 0, size);
        return p + (*n)++ * size;
}

struct bc_shadow *bc_doc_add_shadow(struct bc_doc *d)
{
        return grow(&d->shadows, &d->n_shadows, sizeof(struct bc_shadow));
}

struct bc_writer *bc_doc_add_writer(struct bc_doc *d)
{
        return grow(&d->writers, &d->n_writers, sizeof(struct bc_writer));
}

struct bc_component *bc_writer_add_component(struct bc_writer *w)
{
        return grow(&w->components, &w->n_components, sizeof(struct bc_component));
}

struct bc_file *bc_component_add_file(struct bc_component *c)
{
        return grow(&c->files, &c->n_files, sizeof(struct bc_file));
}

/* ---- writing ---- */

static json_t *str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

char *bc_doc_format(const struct bc_doc *d)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *shadows, *writers;
        char hex[11];

        root = json_pack("{s:s, s:i, s:o, s:I, s:i, s:s, s:o, s:[], s:[]}", "format", BC_DOC_FORMAT, "version",
                         BC_DOC_VERSION, "set_id", json_id(&d->set_id), "created_us", (json_int_t)d->created_us,
                         "context", (int)d->context, "backup_type",
                         wire_backup_type_name(d->backup_type) ?: "undefined", "host", str_or_null(d->host),
                         "shadows", "writers");
        if (!root)
                return NULL;
        shadows = json_object_get(root, "shadows");
        writers = json_object_get(root, "writers");
        for (size_t i = 0; i < d->n_shadows; i++) {
                const struct bc_shadow *s = &d->shadows[i];

                if (json_array_append_new(shadows, json_pack("{s:o, s:s, s:o, s:s, s:o, s:o, s:i, s:I}", "shadow_id",
                                                             json_id(&s->shadow_id), "original_volume",
                                                             s->original_volume ?: "", "original_device",
                                                             str_or_null(s->original_device), "device",
                                                             s->device ?: "", "provider_id", json_id(&s->provider_id),
                                                             "provider_name", str_or_null(s->provider_name),
                                                             "attributes", (int)s->attributes, "creation_time_us",
                                                             (json_int_t)s->creation_time_us)) < 0)
                        return NULL;
        }
        for (size_t i = 0; i < d->n_writers; i++) {
                const struct bc_writer *w = &d->writers[i];
                const struct bc_restore_method *rm = &w->restore_method;
                json_t *jw, *comps;

                wire_format_hresult(w->failure, hex);
                jw = json_pack("{s:o, s:o, s:s, s:{s:s, s:s, s:s, s:s, s:b}, s:[], s:{s:i, s:s, s:s, s:s, s:o}}",
                               "writer_id", json_id(&w->writer_id), "instance_id", json_id(&w->instance_id), "name",
                               w->name ?: "", "restore_method", "method",
                               vss_restore_method_name(rm->method) ?: "restore_if_can_replace", "service",
                               rm->service ?: "", "user_procedure", rm->user_procedure ?: "", "writer_restore",
                               vss_writer_restore_name(rm->writer_restore) ?: "never", "reboot_required",
                               rm->reboot_required, "components", "status", "state", (int)w->state, "state_name",
                               vss_writer_state_name(w->state), "failure", hex, "failure_name",
                               vss_hresult_name(w->failure), "message", str_or_null(w->message));
                if (!jw || json_array_append_new(writers, jw) < 0)
                        return NULL;
                comps = json_object_get(jw, "components");
                for (size_t k = 0; k < w->n_components; k++) {
                        const struct bc_component *c = &w->components[k];
                        json_t *jc, *files;

                        jc = json_pack("{s:s, s:s, s:s, s:o, s:b, s:[], s:o}", "type",
                                       c->type == VSS_CT_DATABASE ? "database" : "filegroup", "logical_path",
                                       c->logical_path ?: "", "name", c->name ?: "", "caption", str_or_null(c->caption),
                                       "selectable", c->selectable, "files", "backup_metadata",
                                       str_or_null(c->backup_metadata));
                        if (!jc || json_array_append_new(comps, jc) < 0)
                                return NULL;
                        files = json_object_get(jc, "files");
                        for (size_t f = 0; f < c->n_files; f++)
                                if (json_array_append_new(files, json_pack("{s:s, s:s, s:b}", "path",
                                                                           c->files[f].path ?: "", "filespec",
                                                                           c->files[f].filespec ?: "*", "recursive",
                                                                           c->files[f].recursive)) < 0)
                                        return NULL;
                }
        }
        _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        char *line;

        if (!text || asprintf(&line, "%s\n", text) < 0)
                return NULL;
        return line;
}

/* ---- reading ---- */

struct ctx {
        char *err;
        size_t errlen;
        vss_hresult hr;
};

static bool invalid(struct ctx *c, const char *path, const char *key, const char *fmt, ...) _printf_(4, 5);
static bool invalid(struct ctx *c, const char *path, const char *key, const char *fmt, ...)
{
        char why[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "field '%s%s%s' %s", path, *path && key ? "." : "", key ?: "", why);
        c->hr = VSS_E_INVALID_XML_DOCUMENT;
        return false;
}

static bool oom(struct ctx *c)
{
        snprintf(c->err, c->errlen, "out of memory reading the document");
        c->hr = VSS_E_OUTOFMEMORY;
        return false;
}

enum {
        S_REQUIRED = 1 << 0,    /* absent or null is an error */
        S_NONEMPTY = 1 << 1,
        S_NO_CONTROL = 1 << 2,  /* no byte below 0x20 or 0x7f: names, paths */
        S_ABSOLUTE = 1 << 3,    /* starts with '/' */
};

/* A string field: *ret is a copy, or NULL when absent/null and allowed. */
static bool get_str(struct ctx *c, json_t *o, const char *path, const char *key, size_t max, unsigned flags,
                    char **ret)
{
        json_t *v = json_object_get(o, key);
        const char *s;
        size_t n;

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (flags & S_REQUIRED)
                        return invalid(c, path, key, "is missing");
                return true;
        }
        if (!json_is_string(v))
                return invalid(c, path, key, "must be a string");
        s = json_string_value(v);
        n = json_string_length(v);
        if (n > max)
                return invalid(c, path, key, "is longer than %zu bytes", max);
        if ((flags & S_NONEMPTY) && n == 0)
                return invalid(c, path, key, "must not be empty");
        if ((flags & S_ABSOLUTE) && s[0] != '/')
                return invalid(c, path, key, "must be an absolute path");
        if (flags & S_NO_CONTROL)
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                                return invalid(c, path, key, "holds a control character");
        *ret = strdup(s);
        return *ret ? true : oom(c);
}

static bool get_id(struct ctx *c, json_t *o, const char *path, const char *key, vss_id *ret)
{
        json_t *v = json_object_get(o, key);

        if (!v)
                return invalid(c, path, key, "is missing");
        /* Only the braced form vshadow writes: a document is not typed by hand. */
        if (!json_is_string(v) || json_string_length(v) != VSS_ID_STRING_MAX - 1 ||
            json_string_value(v)[0] != '{' || VSS_FAILED(vss_id_parse(json_string_value(v), ret)))
                return invalid(c, path, key, "must be a GUID in braces");
        return true;
}

static bool get_int(struct ctx *c, json_t *o, const char *path, const char *key, json_int_t min, json_int_t max,
                    json_int_t *ret)
{
        json_t *v = json_object_get(o, key);

        if (!v)
                return invalid(c, path, key, "is missing");
        if (!json_is_integer(v))
                return invalid(c, path, key, "must be an integer");
        *ret = json_integer_value(v);
        if (*ret < min || *ret > max)
                return invalid(c, path, key, "must be in %lld..%lld", (long long)min, (long long)max);
        return true;
}

static bool get_bool(struct ctx *c, json_t *o, const char *path, const char *key, bool *ret)
{
        json_t *v = json_object_get(o, key);

        if (!v)
                return invalid(c, path, key, "is missing");
        if (!json_is_boolean(v))
                return invalid(c, path, key, "must be true or false");
        *ret = json_is_true(v);
        return true;
}

static json_t *get_array(struct ctx *c, json_t *o, const char *path, const char *key, size_t max)
{
        json_t *v = json_object_get(o, key);

        if (!v) {
                invalid(c, path, key, "is missing");
                return NULL;
        }
        if (!json_is_array(v)) {
                invalid(c, path, key, "must be an array");
                return NULL;
        }
        if (json_array_size(v) > max) {
                invalid(c, path, key, "has more than %zu entries", max);
                return NULL;
        }
        return v;
}

static bool need_object(struct ctx *c, json_t *o, const char *path)
{
        return json_is_object(o) ? true : invalid(c, path, NULL, "must be an object");
}

static bool read_shadow(struct ctx *c, json_t *o, const char *path, struct bc_shadow *s)
{
        json_int_t v;

        if (!need_object(c, o, path) || !get_id(c, o, path, "shadow_id", &s->shadow_id) ||
            !get_str(c, o, path, "original_volume", 4096, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL | S_ABSOLUTE,
                     &s->original_volume) ||
            !get_str(c, o, path, "original_device", 4096, S_NO_CONTROL, &s->original_device) ||
            !get_str(c, o, path, "device", 4096, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL, &s->device) ||
            !get_id(c, o, path, "provider_id", &s->provider_id) ||
            !get_str(c, o, path, "provider_name", 255, S_NO_CONTROL, &s->provider_name))
                return false;
        if (!get_int(c, o, path, "attributes", INT32_MIN, UINT32_MAX, &v))
                return false;
        s->attributes = (int32_t)(uint32_t)v;
        if (!get_int(c, o, path, "creation_time_us", 0, INT64_MAX, &v))
                return false;
        s->creation_time_us = v;
        return true;
}

static bool read_component(struct ctx *c, json_t *o, const char *path, struct bc_component *comp, size_t *md_total)
{
        char fpath[192];
        _cleanup_free_ char *t = NULL;
        json_t *files, *f;
        size_t i;

        if (!need_object(c, o, path) || !get_str(c, o, path, "type", 16, S_REQUIRED, &t))
                return false;
        if (streq(t, "database"))
                comp->type = VSS_CT_DATABASE;
        else if (streq(t, "filegroup"))
                comp->type = VSS_CT_FILEGROUP;
        else
                return invalid(c, path, "type", "must be database or filegroup");
        if (!get_str(c, o, path, "logical_path", 1024, S_REQUIRED | S_NO_CONTROL, &comp->logical_path) ||
            !get_str(c, o, path, "name", 1024, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL, &comp->name) ||
            !get_str(c, o, path, "caption", 1024, 0, &comp->caption) ||
            !get_bool(c, o, path, "selectable", &comp->selectable) ||
            !get_str(c, o, path, "backup_metadata", BC_DOC_METADATA_MAX, 0, &comp->backup_metadata))
                return false;
        if (comp->backup_metadata) {
                *md_total += strlen(comp->backup_metadata);
                if (*md_total > BC_DOC_METADATA_MAX)
                        return invalid(c, path, "backup_metadata",
                                       "brings the writer's backup metadata beyond %d bytes", BC_DOC_METADATA_MAX);
        }
        files = get_array(c, o, path, "files", BC_DOC_MAX_FILES);
        if (!files)
                return false;
        json_array_foreach(files, i, f) {
                struct bc_file *bf = bc_component_add_file(comp);

                if (!bf)
                        return oom(c);
                snprintf(fpath, sizeof(fpath), "%s.files[%zu]", path, i);
                if (!need_object(c, f, fpath) ||
                    !get_str(c, f, fpath, "path", 4096, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL | S_ABSOLUTE, &bf->path) ||
                    !get_str(c, f, fpath, "filespec", 4096, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL, &bf->filespec) ||
                    !get_bool(c, f, fpath, "recursive", &bf->recursive))
                        return false;
        }
        return true;
}

static bool read_writer(struct ctx *c, json_t *o, const char *path, struct bc_writer *w)
{
        _cleanup_free_ char *method = NULL, *wr = NULL, *failure = NULL;
        char rpath[96], cpath[128];
        json_t *rm, *st, *comps, *x;
        json_int_t state;
        size_t i, md_total = 0;
        int v;

        if (!need_object(c, o, path) || !get_id(c, o, path, "writer_id", &w->writer_id) ||
            !get_id(c, o, path, "instance_id", &w->instance_id) ||
            !get_str(c, o, path, "name", 255, S_REQUIRED | S_NONEMPTY | S_NO_CONTROL, &w->name))
                return false;

        snprintf(rpath, sizeof(rpath), "%s.restore_method", path);
        rm = json_object_get(o, "restore_method");
        if (!need_object(c, rm, rpath) || !get_str(c, rm, rpath, "method", 64, S_REQUIRED, &method) ||
            !get_str(c, rm, rpath, "service", 255, S_REQUIRED | S_NO_CONTROL, &w->restore_method.service) ||
            !get_str(c, rm, rpath, "user_procedure", 4096, S_REQUIRED, &w->restore_method.user_procedure) ||
            !get_str(c, rm, rpath, "writer_restore", 64, S_REQUIRED, &wr) ||
            !get_bool(c, rm, rpath, "reboot_required", &w->restore_method.reboot_required))
                return false;
        v = vss_restore_method_from_name(method);
        if (v < 0)
                return invalid(c, rpath, "method", "names no restore method");
        w->restore_method.method = (enum vss_restore_method_type)v;
        v = vss_writer_restore_from_name(wr);
        if (v < 0)
                return invalid(c, rpath, "writer_restore", "must be never, if_replace_fails, always or undefined");
        w->restore_method.writer_restore = (enum vss_writer_restore_type)v;

        comps = get_array(c, o, path, "components", BC_DOC_MAX_COMPONENTS);
        if (!comps)
                return false;
        json_array_foreach(comps, i, x) {
                struct bc_component *comp = bc_writer_add_component(w);

                if (!comp)
                        return oom(c);
                snprintf(cpath, sizeof(cpath), "%s.components[%zu]", path, i);
                if (!read_component(c, x, cpath, comp, &md_total))
                        return false;
                for (size_t k = 0; k + 1 < w->n_components; k++)
                        if (streq(w->components[k].logical_path, comp->logical_path) &&
                            streq(w->components[k].name, comp->name))
                                return invalid(c, cpath, "name", "repeats component %zu of the writer", k);
        }

        snprintf(rpath, sizeof(rpath), "%s.status", path);
        st = json_object_get(o, "status");
        if (!need_object(c, st, rpath) || !get_int(c, st, rpath, "state", 0, VSS_WS_COUNT - 1, &state) ||
            !get_str(c, st, rpath, "failure", 10, S_REQUIRED | S_NONEMPTY, &failure) ||
            !get_str(c, st, rpath, "message", 4096, 0, &w->message))
                return false;
        w->state = (enum vss_writer_state)state;
        json_t *jf = json_string(failure);
        bool ok = jf && wire_parse_hresult(jf, &w->failure) && strncasecmp(failure, "0x", 2) == 0;
        json_decref(jf);
        if (!ok)
                return invalid(c, rpath, "failure", "must be an HRESULT in hex (0x...)");
        return true;
}

vss_hresult bc_doc_parse(const char *text, size_t len, struct bc_doc *ret, char *err, size_t errlen)
{
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct ctx c = { .err = err, .errlen = errlen, .hr = VSS_S_OK };
        _cleanup_free_ char *format = NULL, *bt = NULL;
        struct bc_doc d = { 0 };
        json_t *shadows, *writers, *x;
        json_error_t jerr;
        json_int_t v;
        char path[64];
        size_t i;
        int b;

        *ret = (struct bc_doc){ 0 };
        if (!text || len > BC_DOC_MAX_BYTES) {
                snprintf(err, errlen, "the document is larger than %d bytes", BC_DOC_MAX_BYTES);
                return VSS_E_INVALID_XML_DOCUMENT;
        }
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                snprintf(err, errlen, "not a JSON document: %s at line %d, column %d", jerr.text, jerr.line,
                         jerr.column);
                return VSS_E_CORRUPT_XML_DOCUMENT;
        }
        if (!json_is_object(root)) {
                snprintf(err, errlen, "not a backup components document: the top level is not an object");
                return VSS_E_INVALID_XML_DOCUMENT;
        }
        if (!get_str(&c, root, "", "format", 64, S_REQUIRED, &format))
                goto fail;
        if (!streq(format, BC_DOC_FORMAT)) {
                invalid(&c, "", "format", "must be \"%s\": this is not a backup components document", BC_DOC_FORMAT);
                goto fail;
        }
        if (!get_int(&c, root, "", "version", 1, INT32_MAX, &v))
                goto fail;
        if (v != BC_DOC_VERSION) {
                invalid(&c, "", "version", "is %lld; this vshadow reads version %d", (long long)v, BC_DOC_VERSION);
                goto fail;
        }
        d.version = (unsigned)v;
        if (!get_id(&c, root, "", "set_id", &d.set_id))
                goto fail;
        if (vss_id_is_null(&d.set_id)) {
                invalid(&c, "", "set_id", "must not be the null GUID");
                goto fail;
        }
        if (!get_int(&c, root, "", "created_us", 0, INT64_MAX, &v))
                goto fail;
        d.created_us = v;
        if (!get_int(&c, root, "", "context", INT32_MIN, UINT32_MAX, &v))
                goto fail;
        d.context = (int32_t)(uint32_t)v;
        if (!get_str(&c, root, "", "backup_type", 32, S_REQUIRED, &bt))
                goto fail;
        b = wire_backup_type_from_name(bt);
        if (b < 0) {
                invalid(&c, "", "backup_type", "must be full|incremental|differential|log|copy|other");
                goto fail;
        }
        d.backup_type = (enum vss_backup_type)b;
        if (!get_str(&c, root, "", "host", 255, S_NO_CONTROL, &d.host))
                goto fail;

        shadows = get_array(&c, root, "", "shadows", VSS_MAX_VOLUMES_PER_SET);
        if (!shadows)
                goto fail;
        json_array_foreach(shadows, i, x) {
                struct bc_shadow *s = bc_doc_add_shadow(&d);

                if (!s) {
                        oom(&c);
                        goto fail;
                }
                snprintf(path, sizeof(path), "shadows[%zu]", i);
                if (!read_shadow(&c, x, path, s))
                        goto fail;
                for (size_t k = 0; k + 1 < d.n_shadows; k++)
                        if (vss_id_equal(&d.shadows[k].shadow_id, &s->shadow_id) ||
                            streq(d.shadows[k].original_volume, s->original_volume)) {
                                invalid(&c, path, NULL, "repeats the shadow copy or the volume of shadows[%zu]", k);
                                goto fail;
                        }
        }

        writers = get_array(&c, root, "", "writers", BC_DOC_MAX_WRITERS);
        if (!writers)
                goto fail;
        json_array_foreach(writers, i, x) {
                struct bc_writer *w = bc_doc_add_writer(&d);

                if (!w) {
                        oom(&c);
                        goto fail;
                }
                snprintf(path, sizeof(path), "writers[%zu]", i);
                if (!read_writer(&c, x, path, w))
                        goto fail;
                for (size_t k = 0; k + 1 < d.n_writers; k++)
                        if (vss_id_equal(&d.writers[k].writer_id, &w->writer_id)) {
                                invalid(&c, path, "writer_id", "repeats the writer of writers[%zu]", k);
                                goto fail;
                        }
        }
        *ret = d;
        return VSS_S_OK;

fail:
        bc_doc_done(&d);
        return c.hr;
}

vss_hresult bc_doc_load(const char *path, struct bc_doc *ret, char *err, size_t errlen)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t done = 0;
        char why[256];

        *ret = (struct bc_doc){ 0 };
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int e = errno;
                snprintf(err, errlen, "cannot read the backup components document %s: %s", path, strerror(e));
                return e == ENOENT ? VSS_E_OBJECT_NOT_FOUND : e == EACCES ? VSS_E_ACCESSDENIED : VSS_E_FAIL;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > BC_DOC_MAX_BYTES) {
                snprintf(err, errlen, "%s is not a regular file of at most %d bytes", path, BC_DOC_MAX_BYTES);
                return VSS_E_INVALID_XML_DOCUMENT;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return VSS_E_OUTOFMEMORY;
        while (done < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errlen, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
                        return VSS_E_FAIL;
                }
                done += (size_t)n;
        }
        vss_hresult hr = bc_doc_parse(buf, done, ret, why, sizeof(why));
        if (VSS_FAILED(hr))
                snprintf(err, errlen, "%s: %s", path, why);
        return hr;
}

/* ---- saving atomically ---- */

int bc_doc_save_begin(struct bc_save *s, const char *path, char *err, size_t errlen)
{
        *s = (struct bc_save){ .fd = -EBADF };
        s->path = strdup(path);
        if (!s->path || asprintf(&s->tmp_path, "%s.tmp.XXXXXX", path) < 0) {
                s->tmp_path = NULL;
                bc_doc_save_abort(s);
                return -ENOMEM;
        }
        s->fd = mkostemp(s->tmp_path, O_CLOEXEC);
        if (s->fd < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot create a file beside %s: %s", path, strerror(errno));
                free(s->tmp_path);
                s->tmp_path = NULL;
                bc_doc_save_abort(s);
                return r;
        }
        return 0;
}

void bc_doc_save_abort(struct bc_save *s)
{
        if (s->fd >= 0)
                close(s->fd);
        if (s->tmp_path)
                (void)unlink(s->tmp_path);
        free(s->tmp_path);
        free(s->path);
        *s = (struct bc_save){ .fd = -EBADF };
}

int bc_doc_save_commit(struct bc_save *s, const struct bc_doc *d, char *err, size_t errlen)
{
        _cleanup_free_ char *text = bc_doc_format(d), *dir_copy = NULL;
        _cleanup_close_ int dfd = -EBADF;
        int r;

        if (!text)
                return -ENOMEM;
        r = write_all(s->fd, text, strlen(text));
        if (r < 0 || fsync(s->fd) < 0) {
                r = r < 0 ? r : -errno;
                snprintf(err, errlen, "cannot write %s: %s", s->tmp_path, strerror(-r));
                return r;
        }
        if (close(s->fd) < 0) {
                s->fd = -EBADF;
                r = -errno;
                snprintf(err, errlen, "cannot write %s: %s", s->tmp_path, strerror(-r));
                return r;
        }
        s->fd = -EBADF;
        if (rename(s->tmp_path, s->path) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot rename %s to %s: %s", s->tmp_path, s->path, strerror(-r));
                return r;
        }
        free(s->tmp_path);
        s->tmp_path = NULL;
        /* The rename itself must survive a crash too. */
        dir_copy = strdup(s->path);
        if (dir_copy) {
                dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        bc_doc_save_abort(s);
        return 0;
}
