/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of vssd.conf parsing: defaults, every key, and rejection of bad input. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vssd/config.h"

static void test_defaults(void **state)
{
        struct vssd_config c;

        config_defaults(&c);
        assert_int_equal(c.freeze_timeout_ms, 60000);
        assert_int_equal(c.event_timeout_ms, 120000);
        assert_int_equal(c.allowed_uid, 0);
        assert_int_equal(c.max_connections, 1024);
        assert_int_equal(c.max_connections_per_uid, 64);
        assert_string_equal(c.admin_group.name, "");
        assert_string_equal(c.writer_group.name, "");
        assert_int_equal(c.server_deadline_ms, 5000);
}

static void test_all_keys(void **state)
{
        struct vssd_config c;
        char err[256];

        config_defaults(&c);
        assert_int_equal(config_parse_string("[service]\nfreeze_timeout_ms=1000\nevent_timeout_ms = 2000\n"
                                             "allowed_uid=1000\nmax_connections=8\n", &c, err, sizeof(err)), 0);
        assert_int_equal(c.freeze_timeout_ms, 1000);
        assert_int_equal(c.event_timeout_ms, 2000);
        assert_int_equal(c.allowed_uid, 1000);
        assert_int_equal(c.max_connections, 8);

        assert_int_equal(config_parse_string("[service]\nadmin_group=openvss-admin\nwriter_group = vss.writers_1\n"
                                             "max_connections_per_uid=3\n", &c, err, sizeof(err)), 0);
        assert_string_equal(c.admin_group.name, "openvss-admin");
        assert_string_equal(c.writer_group.name, "vss.writers_1");
        assert_false(c.admin_group.resolved);  /* parsing never consults the group database */
        assert_int_equal(c.max_connections_per_uid, 3);

        assert_int_equal(config_parse_string("[cow]\nserver_deadline_ms=3000\n", &c, err, sizeof(err)), 0);
        assert_int_equal(c.server_deadline_ms, 3000);
}

static void test_bad(void **state)
{
        static const char *const bad[] = {
                "[service]\nfreeze_timeout_ms=0\n",
                "[service]\nfreeze_timeout_ms=abc\n",
                "[service]\nevent_timeout_ms=3600001\n",
                "[service]\nevent_timeout_ms=-5\n",
                "[service]\nunknown=1\n",
                "[other]\nx=1\n",
                "[service\nx=1\n",
                "[service]\nmax_connections=0\n",
                "[service]\nmax_connections_per_uid=0\n",
                "[service]\nmax_connections_per_uid=65537\n",
                "[service]\nadmin_group=\n",
                "[service]\nadmin_group=-admins\n",
                "[service]\nwriter_group=a b\n",
                "[service]\nwriter_group=a:b\n",
                "[cow]\nserver_deadline_ms=999\n",
                "[cow]\nserver_deadline_ms=20001\n",
                "[cow]\nserver_deadline_ms=5s\n",
                "[cow]\nserver_deadline_ms=\n",
                "[service]\nadmin_group=0123456789012345678901234567890123456789012345678901234567890123456789\n",
        };
        struct vssd_config c;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                config_defaults(&c);
                err[0] = 0;
                assert_true(config_parse_string(bad[i], &c, err, sizeof(err)) < 0);
                assert_true(err[0] != 0);
                /* A failed parse leaves the configuration as it was. */
                assert_int_equal(c.freeze_timeout_ms, 60000);
        }
}

static void test_cluster(void **state)
{
        struct vssd_config c;
        char err[256];

        config_defaults(&c);
        assert_int_equal(config_parse_string("[service]\nfreeze_timeout_ms=5000\n", &c, err, sizeof(err)), 0);
        assert_false(c.cluster.enabled);

        assert_int_equal(config_parse_string("[cluster]\nendpoints=http://10.0.0.1:2379,http://10.0.0.2:2379\n"
                                             "host=db1\nhost_lease_ttl_s=4\n", &c, err, sizeof(err)), 0);
        assert_true(c.cluster.enabled);
        assert_string_equal(c.cluster.host, "db1");
        assert_string_equal(c.cluster.prefix, "/openvss");
        assert_int_equal(c.cluster.host_lease_ttl_s, 4);

        /* A [cluster] without endpoints is refused, not a silent single host. */
        config_defaults(&c);
        err[0] = 0;
        assert_true(config_parse_string("[cluster]\nhost=db1\n", &c, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "endpoints"));
        assert_false(c.cluster.enabled);

        err[0] = 0;
        assert_true(config_parse_string("[cluster]\nendpoints=ftp://x\n", &c, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "[cluster]"));
        err[0] = 0;
        assert_true(config_parse_string("[cluster]\nendpoints=http://a:1\nhost=bad/name\n", &c, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "host"));
}

static void test_missing_file(void **state)
{
        struct vssd_config c;
        char err[256];

        config_defaults(&c);
        assert_int_equal(config_load("/nonexistent/vssd.conf", &c, err, sizeof(err)), 0);
        assert_int_equal(c.event_timeout_ms, 120000);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void test_groups_resolved(void **state)
{
        char dir[] = "/tmp/test-config.XXXXXX", path[64], err[512];
        struct vssd_config c;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/vssd.conf", dir);

        /* Group 0 is called "root" on every Linux system. */
        write_file(path, "[service]\nadmin_group=root\n");
        config_defaults(&c);
        assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
        assert_true(c.admin_group.resolved);
        assert_int_equal(c.admin_group.gid, 0);
        assert_false(c.writer_group.resolved);

        /* An unknown group stops vssd at start, naming the key and the group. */
        write_file(path, "[service]\nwriter_group=no-such-group-openvss-test\n");
        config_defaults(&c);
        assert_int_equal(config_load(path, &c, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "writer_group=no-such-group-openvss-test: unknown group"));
        assert_non_null(strstr(err, path));
        assert_string_equal(c.writer_group.name, "");

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_all_keys),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_cluster),
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_groups_resolved),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
