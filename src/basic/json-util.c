/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/json-util.h"

const char *json_get_str(const json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

bool json_get_int(const json_t *obj, const char *key, json_int_t *ret)
{
        json_t *v = json_object_get(obj, key);
        if (!json_is_integer(v))
                return false;
        *ret = json_integer_value(v);
        return true;
}

bool json_get_bool(const json_t *obj, const char *key, bool def)
{
        json_t *v = json_object_get(obj, key);
        return json_is_boolean(v) ? json_is_true(v) : def;
}

bool json_get_id(const json_t *obj, const char *key, vss_id *ret)
{
        const char *s = json_get_str(obj, key);
        return s && vss_id_parse(s, ret) == VSS_S_OK;
}

json_t *json_id(const vss_id *id)
{
        char buf[VSS_ID_STRING_MAX];
        return json_string(vss_id_format(id, buf));
}

json_t *json_str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}
