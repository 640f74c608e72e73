/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* admin.c: the service's own calls (version, providers, volumes, events). */

#include <jansson.h>

struct conn;
struct vssd;

void method_admin(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
json_t *providers_list_json(struct vssd *v);
/* 0 and the volumes of Volumes.List in *ret, or -errno (mountinfo unreadable). */
int volumes_list_json(struct vssd *v, json_t **ret);
