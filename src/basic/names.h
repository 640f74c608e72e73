/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The text forms values travel under (docs/protocol.md), apart from basic/wire.h so that the
 * tools print and parse them without seeing the wire format: enum names ("full", "user_data",
 * "transacted_db", ...) and HRESULTs ("0x80042316").  The public vss_*_name() tables are in
 * vss/vss.h. */

#include <jansson.h>
#include <stdbool.h>

#include "vss/vss.h"

/* *_name() returns NULL for a value out of range; *_from_name() returns -1 for an unknown name. */
const char *wire_backup_type_name(enum vss_backup_type t);
int wire_backup_type_from_name(const char *name);
const char *wire_usage_name(enum vss_usage_type u);
int wire_usage_from_name(const char *name);
const char *wire_source_name(enum vss_source_type s);
int wire_source_from_name(const char *name);

/* "0x80042316" */
void wire_format_hresult(vss_hresult hr, char buf[11]);
/* Accepts "0x80042316", "80042316", "VSS_E_..." or a JSON integer. */
bool wire_parse_hresult(const json_t *v, vss_hresult *ret);
