/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backup components document (src/tools/vshadow/bc-doc.c): a document written
 * and read back is the same document, byte for byte the second time; every way a
 * document can be corrupt (not JSON) or invalid (JSON that is not a valid version 1
 * document) gives the right HRESULT and names the field; saving is atomic and a
 * save that is not committed leaves nothing behind.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "tools/vshadow/bc-doc.h"

static char *xstrdup(const char *s)
{
        char *r = strdup(s);

        assert_non_null(r);
        return r;
}

static void sample(struct bc_doc *d)
{
        struct bc_shadow *s;
        struct bc_writer *w;
        struct bc_component *c;
        struct bc_file *f;

        *d = (struct bc_doc){ .version = 1, .created_us = 1767225600000000, .context = 9,
                              .backup_type = VSS_BT_FULL, .host = xstrdup("backup-host") };
        assert_int_equal(vss_id_parse("{11111111-2222-4333-8444-555555555555}", &d->set_id), VSS_S_OK);
        s = bc_doc_add_shadow(d);
        assert_non_null(s);
        assert_int_equal(vss_id_parse("{aaaaaaaa-2222-4333-8444-555555555555}", &s->shadow_id), VSS_S_OK);
        assert_int_equal(vss_id_parse("{2f766f55-e365-48e4-a471-956372f96e2d}", &s->provider_id), VSS_S_OK);
        s->original_volume = xstrdup("/srv/data");
        s->original_device = xstrdup("/dev/loop3");
        s->device = xstrdup("/srv/data/.openvss/{aaaaaaaa-2222-4333-8444-555555555555}");
        s->provider_name = xstrdup("openvss btrfs provider");
        s->attributes = (int32_t)0x8002000D;
        s->creation_time_us = 1767225600000001;

        w = bc_doc_add_writer(d);
        assert_non_null(w);
        assert_int_equal(vss_id_parse("{bbbbbbbb-2222-4333-8444-555555555555}", &w->writer_id), VSS_S_OK);
        assert_int_equal(vss_id_parse("{cccccccc-2222-4333-8444-555555555555}", &w->instance_id), VSS_S_OK);
        w->name = xstrdup("PostgreSQL Writer");
        w->restore_method = (struct bc_restore_method){ .method = VSS_RME_STOP_RESTORE_START,
                                                        .service = xstrdup("postgresql"),
                                                        .user_procedure = xstrdup(""),
                                                        .writer_restore = VSS_WRE_ALWAYS,
                                                        .reboot_required = true };
        w->state = VSS_WS_STABLE;
        w->failure = VSS_S_OK;
        c = bc_writer_add_component(w);
        assert_non_null(c);
        c->type = VSS_CT_DATABASE;
        c->logical_path = xstrdup("15");
        c->name = xstrdup("main");
        c->caption = xstrdup("Cluster \"main\" — ünïcödé");
        c->selectable = true;
        c->backup_metadata = xstrdup("START WAL LOCATION: 0/2000028\nCHECKPOINT LOCATION: 0/2000060\n\t\"quoted\"");
        f = bc_component_add_file(c);
        assert_non_null(f);
        f->path = xstrdup("/srv/data/pg");
        f->filespec = xstrdup("*");
        f->recursive = true;
        c = bc_writer_add_component(w);
        assert_non_null(c);
        c->type = VSS_CT_FILEGROUP;
        c->logical_path = xstrdup("");
        c->name = xstrdup("wal");

        w = bc_doc_add_writer(d);
        assert_non_null(w);
        assert_int_equal(vss_id_parse("{dddddddd-2222-4333-8444-555555555555}", &w->writer_id), VSS_S_OK);
        w->name = xstrdup("Failed Writer");
        w->restore_method = (struct bc_restore_method){ .method = VSS_RME_RESTORE_IF_CAN_REPLACE,
                                                        .service = xstrdup(""), .user_procedure = xstrdup(""),
                                                        .writer_restore = VSS_WRE_NEVER };
        w->state = VSS_WS_FAILED_AT_THAW;
        w->failure = VSS_E_WRITERERROR_TIMEOUT;
        w->message = xstrdup("hook killed after 1000 ms");
}

static void test_round_trip(void **state)
{
        struct bc_doc d, back;
        _cleanup_free_ char *text = NULL, *again = NULL;
        char err[512] = "";

        sample(&d);
        text = bc_doc_format(&d);
        assert_non_null(text);
        assert_true(text[strlen(text) - 1] == '\n');
        assert_int_equal(bc_doc_parse(text, strlen(text), &back, err, sizeof(err)), VSS_S_OK);

        assert_int_equal(back.version, 1);
        assert_true(vss_id_equal(&back.set_id, &d.set_id));
        assert_int_equal(back.created_us, d.created_us);
        assert_int_equal(back.context, 9);
        assert_int_equal(back.backup_type, VSS_BT_FULL);
        assert_string_equal(back.host, "backup-host");
        assert_int_equal(back.n_shadows, 1);
        assert_true(vss_id_equal(&back.shadows[0].shadow_id, &d.shadows[0].shadow_id));
        assert_true(vss_id_equal(&back.shadows[0].provider_id, &d.shadows[0].provider_id));
        assert_string_equal(back.shadows[0].original_volume, "/srv/data");
        assert_string_equal(back.shadows[0].original_device, "/dev/loop3");
        assert_string_equal(back.shadows[0].device, d.shadows[0].device);
        assert_string_equal(back.shadows[0].provider_name, "openvss btrfs provider");
        assert_int_equal(back.shadows[0].attributes, (int32_t)0x8002000D);
        assert_int_equal(back.shadows[0].creation_time_us, 1767225600000001);
        assert_int_equal(back.n_writers, 2);
        struct bc_writer *w = &back.writers[0];
        assert_string_equal(w->name, "PostgreSQL Writer");
        assert_true(vss_id_equal(&w->instance_id, &d.writers[0].instance_id));
        assert_int_equal(w->restore_method.method, VSS_RME_STOP_RESTORE_START);
        assert_string_equal(w->restore_method.service, "postgresql");
        assert_int_equal(w->restore_method.writer_restore, VSS_WRE_ALWAYS);
        assert_true(w->restore_method.reboot_required);
        assert_int_equal(w->n_components, 2);
        assert_int_equal(w->components[0].type, VSS_CT_DATABASE);
        assert_string_equal(w->components[0].logical_path, "15");
        assert_string_equal(w->components[0].caption, d.writers[0].components[0].caption);
        assert_string_equal(w->components[0].backup_metadata, d.writers[0].components[0].backup_metadata);
        assert_int_equal(w->components[0].n_files, 1);
        assert_string_equal(w->components[0].files[0].path, "/srv/data/pg");
        assert_true(w->components[0].files[0].recursive);
        assert_null(w->components[1].backup_metadata);
        assert_null(w->components[1].caption);
        assert_int_equal(back.writers[1].state, VSS_WS_FAILED_AT_THAW);
        assert_int_equal(back.writers[1].failure, VSS_E_WRITERERROR_TIMEOUT);
        assert_string_equal(back.writers[1].message, "hook killed after 1000 ms");
        assert_true(vss_id_is_null(&back.writers[1].instance_id));

        /* Written again, the same bytes. */
        again = bc_doc_format(&back);
        assert_string_equal(text, again);
        bc_doc_done(&back);
        bc_doc_done(&d);
}

/* Parses 'text', expecting 'hr' and an error containing 'want'. */
static void expect(const char *text, vss_hresult hr, const char *want)
{
        struct bc_doc d;
        char err[512] = "";
        vss_hresult got = bc_doc_parse(text, strlen(text), &d, err, sizeof(err));

        if (got != hr || !strstr(err, want))
                fail_msg("parse gave 0x%08X '%s', expected 0x%08X with '%s'\n  document: %.300s", (uint32_t)got, err,
                         (uint32_t)hr, want, text);
        assert_int_equal(d.n_writers, 0);
        assert_null(d.writers);
}

/* The sample document with 'from' replaced by 'to' (which must occur in it). */
static char *variant(const char *from, const char *to)
{
        struct bc_doc d;
        _cleanup_free_ char *text = NULL;
        char *p, *r;

        sample(&d);
        text = bc_doc_format(&d);
        bc_doc_done(&d);
        p = strstr(text, from);
        if (!p)
                fail_msg("'%s' is not in the sample document", from);
        assert_true(asprintf(&r, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from)) > 0);
        return r;
}

static void expect_variant(const char *from, const char *to, vss_hresult hr, const char *want)
{
        _cleanup_free_ char *t = variant(from, to);

        expect(t, hr, want);
}

static void test_corrupt(void **state)
{
        struct bc_doc d;
        _cleanup_free_ char *good = NULL;
        char err[512];

        sample(&d);
        good = bc_doc_format(&d);
        bc_doc_done(&d);
        /* Cut at every length: never accepted, never a crash. */
        for (size_t n = 0; n + 2 < strlen(good); n++) {
                vss_hresult hr = bc_doc_parse(good, n, &d, err, sizeof(err));
                if (hr != VSS_E_CORRUPT_XML_DOCUMENT)
                        fail_msg("a document cut at %zu bytes gave 0x%08X (%s)", n, (uint32_t)hr, err);
        }
        expect("", VSS_E_CORRUPT_XML_DOCUMENT, "not a JSON document");
        expect("this is not json", VSS_E_CORRUPT_XML_DOCUMENT, "not a JSON document");
        expect("{} trailing", VSS_E_CORRUPT_XML_DOCUMENT, "not a JSON document");
        expect("{\"format\": \"a\", \"format\": \"b\"}", VSS_E_CORRUPT_XML_DOCUMENT, "duplicate");
        expect("{\"format\": \"openvss\\u0000-backup-components\"}", VSS_E_CORRUPT_XML_DOCUMENT, "not a JSON document");
        expect("{\"format\": \"\xff\xfe\"}", VSS_E_CORRUPT_XML_DOCUMENT, "not a JSON document");
        /* A NUL byte inside the text. */
        assert_int_equal(bc_doc_parse("{\"a\":\0}", 7, &d, err, sizeof(err)), VSS_E_CORRUPT_XML_DOCUMENT);
}

static void test_invalid(void **state)
{
        const vss_hresult I = VSS_E_INVALID_XML_DOCUMENT;

        expect("[]", I, "top level is not an object");
        expect("{}", I, "field 'format' is missing");
        expect("{\"format\": 1}", I, "field 'format' must be a string");
        expect_variant("openvss-backup-components", "openvss-backup-somethings", I, "field 'format' must be");
        expect_variant("\"version\": 1", "\"version\": 2", I, "field 'version' is 2; this vshadow reads version 1");
        expect_variant("\"version\": 1", "\"version\": \"1\"", I, "field 'version' must be an integer");
        expect_variant("\"version\": 1", "\"version\": 0", I, "field 'version' must be in");
        expect_variant("{11111111-2222-4333-8444-555555555555}", "{00000000-0000-0000-0000-000000000000}", I,
                       "field 'set_id' must not be the null GUID");
        expect_variant("{11111111-2222-4333-8444-555555555555}", "11111111-2222-4333-8444-555555555555", I,
                       "field 'set_id' must be a GUID in braces");
        expect_variant("{11111111-2222-4333-8444-555555555555}", "{11111111-2222-4333-8444-55555555555x}", I,
                       "field 'set_id' must be a GUID");
        expect_variant("\"created_us\": 1767225600000000", "\"created_us\": -1", I, "field 'created_us' must be in");
        expect_variant("\"backup_type\": \"full\"", "\"backup_type\": \"fullest\"", I, "field 'backup_type' must be");
        expect_variant("\"host\": \"backup-host\"", "\"host\": \"a\\nb\"", I, "field 'host' holds a control character");
        expect_variant("\"shadows\": [", "\"shadows\": 7, \"x\": [", I, "field 'shadows' must be an array");
        expect_variant("\"original_volume\": \"/srv/data\"", "\"original_volume\": \"srv/data\"", I,
                       "field 'shadows[0].original_volume' must be an absolute path");
        expect_variant("\"original_volume\": \"/srv/data\"", "\"original_volume\": \"\"", I,
                       "field 'shadows[0].original_volume' must not be empty");
        expect_variant("\"attributes\": -2147352563", "\"attributes\": 4294967296", I,
                       "field 'shadows[0].attributes' must be in");
        expect_variant("\"name\": \"PostgreSQL Writer\"", "\"name\": \"\"", I, "field 'writers[0].name' must not be empty");
        expect_variant("\"name\": \"PostgreSQL Writer\"", "\"name\": \"a\\u001bb\"", I,
                       "field 'writers[0].name' holds a control character");
        expect_variant("\"stop_restore_start\"", "\"stop_and_hope\"", I,
                       "field 'writers[0].restore_method.method' names no restore method");
        expect_variant("\"writer_restore\": \"always\"", "\"writer_restore\": \"sometimes\"", I,
                       "field 'writers[0].restore_method.writer_restore' must be");
        expect_variant("\"reboot_required\": true", "\"reboot_required\": 1", I,
                       "field 'writers[0].restore_method.reboot_required' must be true or false");
        expect_variant("\"type\": \"database\"", "\"type\": \"table\"", I,
                       "field 'writers[0].components[0].type' must be database or filegroup");
        expect_variant("\"logical_path\": \"\",\n          \"name\": \"wal\"", "\"logical_path\": \"15\",\n          \"name\": \"main\"", I,
                       "field 'writers[0].components[1].name' repeats component 0 of the writer");
        expect_variant("\"path\": \"/srv/data/pg\"", "\"path\": \"pg\"", I,
                       "field 'writers[0].components[0].files[0].path' must be an absolute path");
        expect_variant("\"recursive\": true", "\"recursive\": \"yes\"", I,
                       "field 'writers[0].components[0].files[0].recursive' must be true or false");
        expect_variant("\"state\": 10", "\"state\": 16", I, "field 'writers[1].status.state' must be in 0..15");
        expect_variant("\"failure\": \"0x800423F2\"", "\"failure\": \"800423F2\"", I,
                       "field 'writers[1].status.failure' must be an HRESULT in hex");
        expect_variant("{dddddddd-2222-4333-8444-555555555555}", "{bbbbbbbb-2222-4333-8444-555555555555}", I,
                       "field 'writers[1].writer_id' repeats the writer of writers[0]");
        expect_variant("\"status\": {\n        \"state\": 1", "\"status\": [{\n        \"state\": 1}], \"x\": {\"a\": 1", I,
                       "field 'writers[0].status' must be an object");
}

static void test_limits(void **state)
{
        struct bc_doc d, back;
        _cleanup_free_ char *text = NULL, *big = NULL;
        char err[512] = "";

        /* 256 KiB of metadata per writer: exactly the limit passes, one byte more does not. */
        sample(&d);
        big = malloc(BC_DOC_METADATA_MAX + 2);
        assert_non_null(big);
        memset(big, 'x', BC_DOC_METADATA_MAX + 1);
        big[BC_DOC_METADATA_MAX + 1] = 0;
        free(d.writers[0].components[0].backup_metadata);
        d.writers[0].components[0].backup_metadata = xstrdup(big + 101);
        free(d.writers[0].components[1].backup_metadata);
        d.writers[0].components[1].backup_metadata = xstrdup(big + BC_DOC_METADATA_MAX - 99);
        text = bc_doc_format(&d);
        assert_int_equal(bc_doc_parse(text, strlen(text), &back, err, sizeof(err)), VSS_S_OK);
        bc_doc_done(&back);
        free(text);
        free(d.writers[0].components[1].backup_metadata);
        d.writers[0].components[1].backup_metadata = xstrdup(big + BC_DOC_METADATA_MAX - 100);
        text = bc_doc_format(&d);
        assert_int_equal(bc_doc_parse(text, strlen(text), &back, err, sizeof(err)), VSS_E_INVALID_XML_DOCUMENT);
        assert_non_null(strstr(err, "writers[0].components[1].backup_metadata' brings the writer's backup metadata"));
        free(text);

        /* 64 shadow copies at most, each volume once. */
        for (int i = 0; i < VSS_MAX_VOLUMES_PER_SET; i++) {
                struct bc_shadow *s = bc_doc_add_shadow(&d);
                assert_non_null(s);
                vss_id_generate(&s->shadow_id);
                assert_true(asprintf(&s->original_volume, "/vol/%d", i) > 0);
                s->device = xstrdup("/dev/x");
        }
        text = bc_doc_format(&d);
        assert_int_equal(bc_doc_parse(text, strlen(text), &back, err, sizeof(err)), VSS_E_INVALID_XML_DOCUMENT);
        assert_non_null(strstr(err, "field 'shadows' has more than 64 entries"));
        free(text);
        free(d.shadows[2].original_volume);
        d.shadows[2].original_volume = xstrdup("/srv/data");
        d.n_shadows = 3;
        text = bc_doc_format(&d);
        d.n_shadows = 1 + VSS_MAX_VOLUMES_PER_SET;
        assert_int_equal(bc_doc_parse(text, strlen(text), &back, err, sizeof(err)), VSS_E_INVALID_XML_DOCUMENT);
        assert_non_null(strstr(err, "field 'shadows[2]' repeats the shadow copy or the volume of shadows[0]"));
        bc_doc_done(&d);

        /* The size cap comes first. */
        assert_int_equal(bc_doc_parse("{}", BC_DOC_MAX_BYTES + 1, &back, err, sizeof(err)), VSS_E_INVALID_XML_DOCUMENT);
}

static void test_save(void **state)
{
        char dir[] = "/tmp/test-bc-doc.XXXXXX", path[128], err[512] = "";
        struct bc_save s;
        struct bc_doc d, back;
        struct stat st;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/doc.json", dir);

        /* An existing document stays as it is until the commit. */
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("old", f);
        fclose(f);
        sample(&d);
        assert_int_equal(bc_doc_save_begin(&s, path, err, sizeof(err)), 0);
        assert_int_equal(stat(s.tmp_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 3);
        assert_int_equal(bc_doc_save_commit(&s, &d, err, sizeof(err)), 0);
        assert_null(s.tmp_path);
        assert_int_equal(bc_doc_load(path, &back, err, sizeof(err)), VSS_S_OK);
        assert_string_equal(back.writers[0].name, "PostgreSQL Writer");
        bc_doc_done(&back);

        /* Not committed: nothing left, the document untouched. */
        assert_int_equal(bc_doc_save_begin(&s, path, err, sizeof(err)), 0);
        char tmp[128];
        snprintf(tmp, sizeof(tmp), "%s", s.tmp_path);
        bc_doc_save_abort(&s);
        assert_int_equal(stat(tmp, &st), -1);
        assert_int_equal(bc_doc_load(path, &back, err, sizeof(err)), VSS_S_OK);
        bc_doc_done(&back);

        /* Where it cannot be written, it fails before anything else. */
        snprintf(tmp, sizeof(tmp), "%s/no/such/dir/doc.json", dir);
        assert_int_equal(bc_doc_save_begin(&s, tmp, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "cannot create a file beside"));

        /* Loading. */
        assert_int_equal(bc_doc_load(tmp, &back, err, sizeof(err)), VSS_E_OBJECT_NOT_FOUND);
        assert_int_equal(bc_doc_load(dir, &back, err, sizeof(err)), VSS_E_INVALID_XML_DOCUMENT);
        f = fopen(path, "w");
        fputs("{\"format\":", f);
        fclose(f);
        assert_int_equal(bc_doc_load(path, &back, err, sizeof(err)), VSS_E_CORRUPT_XML_DOCUMENT);
        assert_non_null(strstr(err, path));

        bc_doc_done(&d);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_save),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
