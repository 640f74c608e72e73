/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Field helpers for jansson objects, for anyone reading or building JSON (the wire format,
 * vshadow's backup components document, vssadmin's listings), apart from basic/wire.h so
 * that the tools can read JSON without seeing the wire format. */

#include <jansson.h>
#include <stdbool.h>

#include "vss/vss.h"

/* Return false (NULL) when missing or of the wrong type; json_get_bool returns def then. */
const char *json_get_str(const json_t *obj, const char *key);
bool json_get_int(const json_t *obj, const char *key, json_int_t *ret);
bool json_get_bool(const json_t *obj, const char *key, bool def);
bool json_get_id(const json_t *obj, const char *key, vss_id *ret);
json_t *json_id(const vss_id *id);
json_t *json_str_or_null(const char *s);
