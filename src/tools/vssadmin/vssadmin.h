/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vssadmin's internals, shared by its command files: the parsed command line
 * and the connection to vssd.  Each command handler returns the process exit
 * status (0, TOOL_EXIT_FAILURE or TOOL_EXIT_USAGE) and has already printed
 * any error through tool_print_error().
 */

#include <jansson.h>

#include "basic/json-util.h"
#include "basic/names.h"
#include "tools/common/tools-common.h"
#include "vss/client.h"

enum {
        OPT_FOR,
        OPT_ON,
        OPT_SHADOW,
        OPT_SET,
        OPT_OLDEST,
        OPT_ALL,
        OPT_QUIET,
        OPT_MAXSIZE,
        OPT_AUTORETRY,
        OPT_AT,
        OPT_NAME,
        OPT_SIZE,
        OPT_IMAGE,
        OPT_DEVICE,
        OPT_FS,
        OPT_MOUNT,
        OPT_JSON,
        OPT_CLUSTER,
        OPT_SOCKET,
        OPT_HELP,
        _OPT_MAX,
};

struct vssadmin {
        struct tool_args args;
        const char *socket;     /* NULL: vss_default_socket_path() */
        bool json;
        vss_client *client;     /* connected on first use */
};

/*
 * Calls a daemon method.  'params' is stolen (NULL means {}).  On failure the
 * error is printed (HRESULT, meaning, the daemon's detail) and returned; on
 * success *ret_result (if not NULL) owns the result object.
 */
vss_hresult vssadmin_call(struct vssadmin *va, const char *method, json_t *params, json_t **ret_result);
/* --json output: the daemon's result, indented. */
int vssadmin_print_json(const json_t *result);
/* "YYYY-MM-DD HH:MM:SS" in local time. */
char *vssadmin_format_time(int64_t time_us, char *buf, size_t len);
/* Writes 'question' to stdout and reads an answer line from stdin: true only for y/Y. */
bool vssadmin_confirm(const char *question);
/* Checks and canonicalises a shadow copy id given on the command line. */
vss_hresult vssadmin_parse_id(const char *option, const char *text, char ret[VSS_ID_STRING_MAX]);
/* Shadows.Query filtered by volume and/or /shadow=ID (either may be NULL). Returns a tool exit
 * status: EXIT_SUCCESS with *ret_result owning the result, or the failure already printed. */
int vssadmin_query_shadows(struct vssadmin *va, const char *volume, const char *shadow, json_t **ret_result);

int verb_list_writers(struct vssadmin *va);
int verb_list_hosts(struct vssadmin *va);
int verb_list_providers(struct vssadmin *va);
int verb_list_shadows(struct vssadmin *va);
int verb_list_shadowstorage(struct vssadmin *va);
int verb_list_volumes(struct vssadmin *va);
int verb_list_events(struct vssadmin *va);
int verb_list_previousversions(struct vssadmin *va);

int verb_create_shadow(struct vssadmin *va);
int verb_delete_shadows(struct vssadmin *va);
int verb_expose_shadow(struct vssadmin *va);
int verb_unexpose_shadow(struct vssadmin *va);
int verb_revert_shadow(struct vssadmin *va);

int verb_add_shadowstorage(struct vssadmin *va);
int verb_resize_shadowstorage(struct vssadmin *va);
int verb_delete_shadowstorage(struct vssadmin *va);
int verb_create_volume(struct vssadmin *va);
int verb_delete_volume(struct vssadmin *va);
int verb_add_previousversions(struct vssadmin *va);
int verb_delete_previousversions(struct vssadmin *va);
