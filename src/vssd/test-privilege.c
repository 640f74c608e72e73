/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the privilege decision (privilege.c): who may call what, and the refusal's words. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vssd/privilege.h"

static void cfg_groups(struct vssd_config *c, gid_t admin, gid_t writer)
{
        config_defaults(c);
        memcpy(c->admin_group.name, "openvss-admin", sizeof("openvss-admin"));
        c->admin_group.gid = admin;
        c->admin_group.resolved = true;
        memcpy(c->writer_group.name, "openvss-writer", sizeof("openvss-writer"));
        c->writer_group.gid = writer;
        c->writer_group.resolved = true;
}

static void test_everyone_lists(void **state)
{
        struct vssd_config c;
        struct peer_identity p = { .uid = 1001, .gid = 1001 };
        char why[256] = "";

        config_defaults(&c);
        assert_true(privilege_allows(&c, PRIV_NONE, &p, "Shadows.Query", why, sizeof(why)));
        assert_string_equal(why, "");
        cfg_groups(&c, 900, 901);
        assert_true(privilege_allows(&c, PRIV_NONE, &p, "Writers.List", why, sizeof(why)));
}

static void test_root_always(void **state)
{
        struct vssd_config c;
        struct peer_identity p = { .uid = 0, .gid = 0 };

        config_defaults(&c);
        assert_true(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Delete", NULL, 0));
        assert_true(privilege_allows(&c, PRIV_WRITER, &p, "Writer.Register", NULL, 0));
        cfg_groups(&c, 900, 901);
        assert_true(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Delete", NULL, 0));
}

static void test_groups(void **state)
{
        struct vssd_config c;
        gid_t admin_sup[] = { 5, 900 }, writer_sup[] = { 901 };
        struct peer_identity admin = { .uid = 1001, .gid = 1001, .groups = admin_sup, .n_groups = 2 };
        struct peer_identity writer = { .uid = 1002, .gid = 1002, .groups = writer_sup, .n_groups = 1 };
        struct peer_identity primary = { .uid = 1003, .gid = 900 };     /* admin by its primary gid */
        struct peer_identity nobody = { .uid = 65534, .gid = 65534 };
        char why[256];

        cfg_groups(&c, 900, 901);
        assert_true(privilege_allows(&c, PRIV_ADMIN, &admin, "Shadows.Delete", why, sizeof(why)));
        assert_true(privilege_allows(&c, PRIV_ADMIN, &primary, "Volumes.Create", why, sizeof(why)));
        assert_true(privilege_allows(&c, PRIV_WRITER, &writer, "Writer.Register", why, sizeof(why)));

        /* Least privilege: the groups do not imply each other. */
        assert_false(privilege_allows(&c, PRIV_WRITER, &admin, "Writer.Register", why, sizeof(why)));
        assert_string_equal(why, "Writer.Register needs membership of group openvss-writer (uid 1001 is not a member)");
        assert_false(privilege_allows(&c, PRIV_ADMIN, &writer, "Shadows.Delete", why, sizeof(why)));
        assert_string_equal(why, "Shadows.Delete needs membership of group openvss-admin (uid 1002 is not a member)");
        assert_false(privilege_allows(&c, PRIV_ADMIN, &nobody, "Backup.StartSnapshotSet", why, sizeof(why)));
        assert_string_equal(why, "Backup.StartSnapshotSet needs membership of group openvss-admin "
                                 "(uid 65534 is not a member)");
        /* NULL why: only the decision. */
        assert_false(privilege_allows(&c, PRIV_ADMIN, &nobody, "Shadows.Delete", NULL, 0));
}

static void test_no_group_configured(void **state)
{
        struct vssd_config c;
        struct peer_identity p = { .uid = 1001, .gid = 0 };     /* gid 0 is no privilege by itself */
        char why[256];

        config_defaults(&c);
        assert_false(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Expose", why, sizeof(why)));
        assert_string_equal(why, "Shadows.Expose needs root: uid 1001 is not root and vssd.conf names no admin_group "
                                 "([service] admin_group= would allow its members)");
        assert_false(privilege_allows(&c, PRIV_WRITER, &p, "Writer.Register", why, sizeof(why)));
        assert_non_null(strstr(why, "writer_group"));
        /* A group named but not resolved (the lookup failed) allows nobody. */
        memcpy(c.admin_group.name, "x", 2);
        c.admin_group.gid = 0;
        assert_false(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Expose", why, sizeof(why)));
}

static void test_allowed_uid(void **state)
{
        struct vssd_config c;
        struct peer_identity p = { .uid = 1000, .gid = 1000 }, other = { .uid = 1001, .gid = 1001 };

        config_defaults(&c);
        c.allowed_uid = 1000;
        assert_true(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Delete", NULL, 0));
        assert_true(privilege_allows(&c, PRIV_WRITER, &p, "Writer.Register", NULL, 0));
        assert_false(privilege_allows(&c, PRIV_ADMIN, &other, "Shadows.Delete", NULL, 0));
        /* allowed_uid=0 (the default) means "nobody besides root", not "everyone with uid 0 in it". */
        c.allowed_uid = 0;
        assert_false(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Delete", NULL, 0));
}

static void test_truncated_why(void **state)
{
        struct vssd_config c;
        struct peer_identity p = { .uid = 1001, .gid = 1001 };
        char why[8];

        cfg_groups(&c, 900, 901);
        assert_false(privilege_allows(&c, PRIV_ADMIN, &p, "Shadows.Delete", why, sizeof(why)));
        assert_int_equal(strlen(why), sizeof(why) - 1);
}

static void test_writer_claims(void **state)
{
        assert_true(writer_claim_allowed(1001, 1001));
        assert_true(writer_claim_allowed(1001, 0));
        assert_false(writer_claim_allowed(1001, 1002));
        assert_false(writer_claim_allowed(0, 1002));
}

static void test_names(void **state)
{
        assert_string_equal(privilege_name(PRIV_NONE), "none");
        assert_string_equal(privilege_name(PRIV_WRITER), "writer");
        assert_string_equal(privilege_name(PRIV_ADMIN), "admin");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_everyone_lists),
                cmocka_unit_test(test_root_always),
                cmocka_unit_test(test_groups),
                cmocka_unit_test(test_no_group_configured),
                cmocka_unit_test(test_allowed_uid),
                cmocka_unit_test(test_truncated_why),
                cmocka_unit_test(test_writer_claims),
                cmocka_unit_test(test_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
