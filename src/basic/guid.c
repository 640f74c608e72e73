/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GUIDs: generation (libuuid), name-based ids, the braced lower-case text form. */

#include <ctype.h>
#include <stdio.h>
#include <uuid/uuid.h>

#include "basic/macro.h"
#include "vss/vss.h"

const vss_id VSS_ID_NULL = { { 0 } };

/* The namespace of writer ids derived from names; fixed forever. */
static const uuid_t openvss_namespace = {
        0x6f, 0x70, 0x65, 0x6e, 0x76, 0x73, 0x73, 0x2d,
        0x9a, 0x5e, 0x4b, 0x1c, 0x83, 0x20, 0x57, 0x11,
};

void vss_id_generate(vss_id *ret)
{
        uuid_generate_random(ret->bytes);
}

void vss_id_from_name(const char *name, vss_id *ret)
{
        uuid_generate_sha1(ret->bytes, openvss_namespace, name, strlen(name));
}

vss_hresult vss_id_parse(const char *text, vss_id *ret)
{
        char buf[37];
        size_t n;

        if (!text)
                return VSS_E_INVALIDARG;
        n = strlen(text);
        if (n == 38 && text[0] == '{' && text[37] == '}') {
                memcpy(buf, text + 1, 36);
        } else if (n == 36) {
                memcpy(buf, text, 36);
        } else
                return VSS_E_INVALIDARG;
        buf[36] = 0;
        for (int i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? buf[i] != '-' : !isxdigit((unsigned char)buf[i]))
                        return VSS_E_INVALIDARG;
        }
        if (uuid_parse(buf, ret->bytes) < 0)
                return VSS_E_INVALIDARG;
        return VSS_S_OK;
}

char *vss_id_format(const vss_id *id, char buf[VSS_ID_STRING_MAX])
{
        buf[0] = '{';
        uuid_unparse_lower(id->bytes, buf + 1);
        buf[37] = '}';
        buf[38] = 0;
        return buf;
}

bool vss_id_equal(const vss_id *a, const vss_id *b)
{
        return memcmp(a->bytes, b->bytes, 16) == 0;
}

bool vss_id_is_null(const vss_id *id)
{
        return vss_id_equal(id, &VSS_ID_NULL);
}
