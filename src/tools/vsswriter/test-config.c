/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of config.c: [writer] sections, repeated keys, errors with line numbers. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "basic/macro.h"
#include "config.h"

static void test_two_writers(void **state)
{
        struct writer_list l = { 0 };
        char err[512] = "";
        const char *text = "# comment\n"
                           "\n"
                           "[writer]\n"
                           "name = PostgreSQL\n"
                           "volume = /srv/pg\n"
                           "volume = /srv/wal\n"
                           "freeze_timeout_ms = 5000\n"
                           "on_freeze = /usr/local/bin/pg-freeze\n"
                           "[writer]\n"
                           "name = Files\n"
                           "id = {3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}\n"
                           "on_post_restore = true\n";

        assert_int_equal(config_parse_string(text, "t.conf", &l, err, sizeof(err)), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.items[0]->name, "PostgreSQL");
        assert_int_equal(l.items[0]->n_volumes, 2);
        assert_string_equal(l.items[0]->volumes[1], "/srv/wal");
        assert_null(l.items[0]->volumes[2]);
        assert_int_equal(l.items[0]->freeze_timeout_ms, 5000);
        assert_string_equal(l.items[0]->hooks[VSS_EVENT_FREEZE], "/usr/local/bin/pg-freeze");
        assert_null(l.items[0]->hooks[VSS_EVENT_THAW]);
        assert_false(l.items[0]->has_id);
        assert_string_equal(l.items[0]->origin, "t.conf:3");
        assert_string_equal(l.items[1]->name, "Files");
        assert_true(l.items[1]->has_id);
        assert_string_equal(l.items[1]->hooks[VSS_EVENT_POST_RESTORE], "true");
        writer_list_done(&l);
}

static void test_restore_and_components(void **state)
{
        struct writer_list l = { 0 };
        char err[512] = "";
        const char *text = "[writer]\n"
                           "name = PostgreSQL\n"
                           "component = cluster\n"
                           "component = wal\n"
                           "restore_method = stop_restore_start\n"
                           "restore_service = postgresql\n"
                           "writer_restore = always\n"
                           "reboot_required = no\n"
                           "no_reconnect = yes\n"
                           "[writer]\n"
                           "name = Plain\n";

        assert_int_equal(config_parse_string(text, "t.conf", &l, err, sizeof(err)), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.items[0]->n_components, 2);
        assert_string_equal(l.items[0]->components[1], "wal");
        assert_true(l.items[0]->has_restore_method);
        assert_int_equal(l.items[0]->restore_method, VSS_RME_STOP_RESTORE_START);
        assert_string_equal(l.items[0]->restore_service, "postgresql");
        assert_int_equal(l.items[0]->writer_restore, VSS_WRE_ALWAYS);
        assert_false(l.items[0]->reboot_required);
        assert_true(l.items[0]->no_reconnect);
        assert_false(l.items[1]->has_restore_method);
        assert_false(l.items[1]->no_reconnect);
        assert_int_equal(l.items[1]->n_components, 0);
        writer_list_done(&l);
}

static void expect_error(const char *text, const char *want)
{
        struct writer_list l = { 0 };
        char err[512] = "";

        assert_int_equal(config_parse_string(text, "t.conf", &l, err, sizeof(err)), -EINVAL);
        if (!strstr(err, want))
                fail_msg("error '%s' does not contain '%s'", err, want);
        writer_list_done(&l);
}

static void test_errors(void **state)
{
        expect_error("name = x\n", "t.conf:1: key outside a [writer] section");
        expect_error("[writer]\nvolume = /a\n", "t.conf:1: a writer needs a name");
        expect_error("[writer]\nname = a\n[writer]\nname = b\nbogus = 1\n", "t.conf:5: unknown key 'bogus'");
        expect_error("[writer]\nname = a\nid = nope\n", "t.conf:3: id 'nope' is not a GUID");
        expect_error("[writer]\nname = a\nfreeze_timeout_ms = 0\n", "must be 1..3600000");
        expect_error("[writer]\nname = a\nfreeze_timeout_ms = 99999999999\n", "must be 1..3600000");
        expect_error("[service]\nx = 1\n", "unknown section [service]");
        expect_error("[writer]\nname = a\nrestore_method = restore_sometimes\n",
                     "t.conf:3: restore method 'restore_sometimes' must be one of");
        expect_error("[writer]\nname = a\nwriter_restore = maybe\n", "0x80070057 VSS_E_INVALIDARG");
        expect_error("[writer]\nname = a\nno_reconnect = perhaps\n", "must be yes|no");
        expect_error("[writer]\nname = a\ncomponent = x\ncomponent = x\n", "t.conf:4: component 'x' given twice");
}

static void test_keys(void **state)
{
        assert_int_equal(hook_key_to_event("on_identify"), VSS_EVENT_IDENTIFY);
        assert_int_equal(hook_key_to_event("on_backup_shutdown"), VSS_EVENT_BACKUP_SHUTDOWN);
        assert_int_equal(hook_key_to_event("on_post_restore"), VSS_EVENT_POST_RESTORE);
        assert_int_equal(hook_key_to_event("on_nothing"), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_two_writers),
                cmocka_unit_test(test_restore_and_components),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
