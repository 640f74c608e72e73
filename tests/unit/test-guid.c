/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GUIDs (src/basic/guid.c): the braced lower-case text form, what the parser
 * accepts and rejects, and the stability of name-derived writer ids, which
 * users see in `vssadmin list writers` and must not change between releases.
 */

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vss/vss.h"

static void assert_canonical(const char *s)
{
        assert_int_equal(strlen(s), 38);
        assert_int_equal(s[0], '{');
        assert_int_equal(s[37], '}');
        for (int i = 1; i < 37; i++) {
                int j = i - 1;
                if (j == 8 || j == 13 || j == 18 || j == 23)
                        assert_int_equal(s[i], '-');
                else if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
                        fail_msg("'%s' is not lower-case hex at %d", s, i);
        }
}

static void test_roundtrip(void **state)
{
        for (int k = 0; k < 200; k++) {
                char buf[VSS_ID_STRING_MAX], buf2[VSS_ID_STRING_MAX];
                vss_id a, b;

                vss_id_generate(&a);
                assert_false(vss_id_is_null(&a));
                assert_ptr_equal(vss_id_format(&a, buf), buf);
                assert_canonical(buf);
                assert_int_equal(vss_id_parse(buf, &b), VSS_S_OK);
                assert_true(vss_id_equal(&a, &b));
                vss_id_format(&b, buf2);
                assert_string_equal(buf, buf2);

                /* bare form */
                memcpy(buf2, buf + 1, 36);
                buf2[36] = 0;
                memset(&b, 0, sizeof(b));
                assert_int_equal(vss_id_parse(buf2, &b), VSS_S_OK);
                assert_true(vss_id_equal(&a, &b));
        }
}

static void test_known_value(void **state)
{
        static const uint8_t bytes[16] = { 0x3f, 0x5b, 0x2c, 0x1e, 0x0a, 0x1b, 0x4c, 0x2d,
                                           0x8e, 0x3f, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc };
        char buf[VSS_ID_STRING_MAX];
        vss_id id, p;

        memcpy(id.bytes, bytes, 16);
        assert_string_equal(vss_id_format(&id, buf), "{3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}");

        assert_int_equal(vss_id_parse("{3F5B2C1E-0A1B-4C2D-8E3F-123456789ABC}", &p), VSS_S_OK);
        assert_true(vss_id_equal(&id, &p));
        assert_int_equal(vss_id_parse("3F5B2C1E-0A1B-4C2D-8E3F-123456789ABC", &p), VSS_S_OK);
        assert_true(vss_id_equal(&id, &p));
        assert_int_equal(vss_id_parse("{3f5B2c1E-0a1b-4C2d-8e3f-123456789aBc}", &p), VSS_S_OK);
        assert_true(vss_id_equal(&id, &p));
        /* Output is lower-case whatever the input case. */
        assert_string_equal(vss_id_format(&p, buf), "{3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}");
}

static void test_null(void **state)
{
        char buf[VSS_ID_STRING_MAX];
        vss_id id;

        assert_true(vss_id_is_null(&VSS_ID_NULL));
        assert_string_equal(vss_id_format(&VSS_ID_NULL, buf), "{00000000-0000-0000-0000-000000000000}");
        assert_int_equal(vss_id_parse("{00000000-0000-0000-0000-000000000000}", &id), VSS_S_OK);
        assert_true(vss_id_is_null(&id));
}

static void test_bad_forms(void **state)
{
        static const char *const bad[] = {
                "",
                "{}",
                "{3f5b2c1e-0a1b-4c2d-8e3f-123456789abc",       /* no closing brace */
                "3f5b2c1e-0a1b-4c2d-8e3f-123456789abc}",       /* no opening brace */
                "(3f5b2c1e-0a1b-4c2d-8e3f-123456789abc)",
                "[3f5b2c1e-0a1b-4c2d-8e3f-123456789abc]",
                "{3f5b2c1e-0a1b-4c2d-8e3f-123456789abcd}",     /* too long */
                "{3f5b2c1e-0a1b-4c2d-8e3f-123456789ab}",       /* too short */
                "3f5b2c1e0a1b4c2d8e3f123456789abc",            /* no dashes */
                "3f5b2c1e-0a1b-4c2d-8e3f_123456789abc",
                "3f5b2c1e-0a1b-4c2d-8e3f-123456789abg",        /* not hex */
                "3f5b2c1e-0a1b-4c2d-8e3f-123456789ab ",
                " 3f5b2c1e-0a1b-4c2d-8e3f-123456789ab",
                "3f5b2c1e--a1b-4c2d-8e3f-123456789abc",
                "3f5b2c1e-0a1b-4c2d-8e3f-1234-6789abc",
                "{{3f5b2c1e-0a1b-4c2d-8e3f-123456789ab}}",
                "3f5b2c1e-0a1b-4c2d-8e3f-123456789abc\n",
                "0x3f5b2c1e-0a1b-4c2d-8e3f-123456789a",
                "not a guid at all",
        };
        vss_id id;

        assert_int_equal(vss_id_parse(NULL, &id), VSS_E_INVALIDARG);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (vss_id_parse(bad[i], &id) != VSS_E_INVALIDARG)
                        fail_msg("vss_id_parse(\"%s\") accepted a malformed GUID", bad[i]);
}

static void test_unique(void **state)
{
        enum { N = 1000 };
        static vss_id ids[N];

        for (int i = 0; i < N; i++) {
                vss_id_generate(&ids[i]);
                for (int j = 0; j < i; j++)
                        assert_false(vss_id_equal(&ids[i], &ids[j]));
        }
}

static void test_from_name(void **state)
{
        char a[VSS_ID_STRING_MAX], b[VSS_ID_STRING_MAX], c[VSS_ID_STRING_MAX];
        vss_id x, y, z;

        vss_id_from_name("PostgreSQL Writer", &x);
        vss_id_from_name("PostgreSQL Writer", &y);
        vss_id_from_name("postgresql writer", &z);
        assert_true(vss_id_equal(&x, &y));
        assert_false(vss_id_equal(&x, &z));
        assert_false(vss_id_is_null(&x));
        vss_id_format(&x, a);
        vss_id_format(&y, b);
        vss_id_format(&z, c);
        assert_canonical(a);
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);

        /* A name-based (version 5, SHA-1) UUID of RFC 4122: version nibble 5, variant 10xx. */
        assert_int_equal(x.bytes[6] >> 4, 5);
        assert_int_equal(x.bytes[8] & 0xc0, 0x80);

        /* Distinct names give distinct ids. */
        {
                enum { N = 300 };
                static vss_id ids[N];
                char name[32];

                for (int i = 0; i < N; i++) {
                        snprintf(name, sizeof(name), "writer-%d", i);
                        vss_id_from_name(name, &ids[i]);
                        for (int j = 0; j < i; j++)
                                assert_false(vss_id_equal(&ids[i], &ids[j]));
                }
        }

        /* Stable across releases: these ids are what users already have in their scripts. */
        vss_id_from_name("", &x);
        vss_id_from_name("", &y);
        assert_true(vss_id_equal(&x, &y));
}

static void test_from_name_pinned(void **state)
{
        char buf[VSS_ID_STRING_MAX];
        vss_id x;

        /*
         * Pinned: writer ids derived from names end up in admins' scripts and in
         * stored backup metadata, so the namespace and algorithm of guid.c must
         * never change.  If this fails, guid.c changed, not the test.
         */
        vss_id_from_name("openvss test writer", &x);
        assert_string_equal(vss_id_format(&x, buf), "{ae294a4c-b19e-509f-b60e-64881933e47a}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_known_value),
                cmocka_unit_test(test_null),
                cmocka_unit_test(test_bad_forms),
                cmocka_unit_test(test_unique),
                cmocka_unit_test(test_from_name),
                cmocka_unit_test(test_from_name_pinned),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
