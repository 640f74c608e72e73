/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of vssd.conf [cluster] parsing (src/cluster/cluster-config.c). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/cluster-config.h"

static void test_defaults_and_keys(void **state)
{
        struct cluster_config c;
        char err[256];

        cluster_config_defaults(&c);
        assert_false(c.enabled);
        assert_string_equal(c.prefix, "/openvss");
        assert_int_equal(c.timing.hold_ms, 10000);
        assert_int_equal(c.host_lease_ttl_s, 10);
        /* No [cluster]: nothing to check, not enabled. */
        assert_int_equal(cluster_config_finish(&c, false, err, sizeof(err)), 0);
        assert_false(c.enabled);

        assert_int_equal(cluster_config_set(&c, "endpoints", "http://10.0.0.1:2379, http://10.0.0.2:2379", err,
                                            sizeof(err)),
                         0);
        assert_int_equal(cluster_config_set(&c, "host", "db-1.rack2", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "prefix", "/prod/openvss", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "hold_ms", "4000", err, sizeof(err)), 0);
        assert_int_equal(c.timing.commit_budget_ms, 1000);
        assert_int_equal(cluster_config_set(&c, "prepare_ms", "30000", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "host_lease_ttl_s", "6", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "set_lease_ttl_s", "3", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "call_timeout_ms", "500", err, sizeof(err)), 0);
        assert_int_equal(c.set_keep_s, 86400);
        assert_int_equal(cluster_config_set(&c, "set_keep_s", "0", err, sizeof(err)), 0);
        assert_int_equal(c.set_keep_s, 0);
        assert_int_equal(cluster_config_finish(&c, true, err, sizeof(err)), 0);
        assert_true(c.enabled);
        assert_string_equal(c.host, "db-1.rack2");
        assert_string_equal(c.prefix, "/prod/openvss");
}

static void test_bad_values(void **state)
{
        static const char *const bad[][2] = {
                { "endpoints", "" },
                { "endpoints", "10.0.0.1:2379" },
                { "endpoints", "http://a,ftp://b" },
                { "host", "" },
                { "host", "db:1" },
                { "host", "db/1" },
                { "host", ".db" },
                { "host", "db." },
                { "host", "a..b" },
                { "host", "-db" },
                { "host", "0123456789012345678901234567890123456789012345678901234567890123" },
                { "prefix", "openvss" },
                { "prefix", "/openvss/" },
                { "prefix", "/" },
                { "hold_ms", "50" },
                { "hold_ms", "-1" },
                { "hold_ms", "10s" },
                { "prepare_ms", "0" },
                { "host_lease_ttl_s", "1" },
                { "set_lease_ttl_s", "x" },
                { "call_timeout_ms", "10" },
                { "set_keep_s", "-1" },
                { "set_keep_s", "1d" },
                { "frobnicate", "1" },
        };
        struct cluster_config c;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cluster_config_defaults(&c);
                err[0] = '\0';
                if (cluster_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err)) != -EINVAL)
                        fail_msg("%s=%s accepted", bad[i][0], bad[i][1]);
                assert_non_null(strstr(err, bad[i][0]));
        }
}

static void test_finish_rules(void **state)
{
        struct cluster_config c;
        char err[256], host[256];

        /* [cluster] without endpoints. */
        cluster_config_defaults(&c);
        assert_int_equal(cluster_config_set(&c, "host", "a", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_finish(&c, true, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "endpoints"));

        /* host= defaults to the short hostname. */
        cluster_config_defaults(&c);
        assert_int_equal(cluster_config_set(&c, "endpoints", "http://127.0.0.1:2379", err, sizeof(err)), 0);
        assert_int_equal(gethostname(host, sizeof(host)), 0);
        host[strcspn(host, ".")] = '\0';
        if (cluster_host_name_valid(host)) {
                assert_int_equal(cluster_config_finish(&c, true, err, sizeof(err)), 0);
                assert_string_equal(c.host, host);
        }

        /* Keepalives must fit in the host lease. */
        cluster_config_defaults(&c);
        assert_int_equal(cluster_config_set(&c, "endpoints", "http://127.0.0.1:2379", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "host", "a", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "host_lease_ttl_s", "2", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_set(&c, "call_timeout_ms", "1000", err, sizeof(err)), 0);
        assert_int_equal(cluster_config_finish(&c, true, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "call_timeout_ms"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_keys),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_finish_rules),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
