/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What writer.c and requester.c need from a vss_client beyond the public
 * client.h: JSON-level calls, requests from the daemon (Writer.Event) and
 * replies to them.  The vss__ prefix keeps these out of the exported
 * symbols (libvss.sym exports vss_[a-z]* only).
 */

#include <jansson.h>
#include <stdarg.h>

#include "basic/macro.h"
#include "vss/client.h"

/* Connects with an explicit purpose for messages: "writer" connections queue the
 * daemon's requests for vss__client_next_request(); others answer them with
 * VSS_E_NOT_SUPPORTED. */
vss_hresult vss__client_connect(const char *socket_path, bool accept_requests, vss_client **ret);

/* Calls 'method' with 'params' (stolen; NULL means {}).  On success *ret_result
 * (if not NULL) gets a new reference to the result. */
vss_hresult vss__client_call_json(vss_client *c, const char *method, json_t *params, json_t **ret_result);
/* The same, giving up after timeout_ms (-1: never) or when wake_fd (>= 0) becomes
 * readable: the connection is then marked dead (a late reply would be misread) and
 * VSS_E_WRITER_INFRASTRUCTURE is returned with a detail saying so. */
vss_hresult vss__client_call_json_wait(vss_client *c, const char *method, json_t *params, int timeout_ms,
                                       int wake_fd, json_t **ret_result);

/*
 * Waits up to timeout_ms (-1 forever) for a request from the daemon, also
 * returning early when 'wake_fd' (>= 0) becomes readable.  Returns VSS_S_OK and
 * the whole message (a new reference) in *ret_msg, VSS_S_FALSE when there is
 * none, or VSS_E_WRITER_INFRASTRUCTURE when the connection is lost.
 */
vss_hresult vss__client_next_request(vss_client *c, int timeout_ms, int wake_fd, json_t **ret_msg);

/* Replies to the daemon's request 'id' with a result (stolen) or an error. */
vss_hresult vss__client_reply(vss_client *c, json_int_t id, json_t *result);
vss_hresult vss__client_reply_error(vss_client *c, json_int_t id, vss_hresult hr, const char *detail);

/* Error detail kept on the client (and returned by vss_client_get_error_detail()). */
void vss__client_set_detail(vss_client *c, const char *fmt, ...) _printf_(2, 3);
bool vss__client_is_connected(vss_client *c);

/* jansson's own json_decrefp is tied to json_auto_t; this one reads as house style. */
static inline void json_unrefp(json_t **p)
{
        json_decref(*p);
}
#define _cleanup_json_ _cleanup_(json_unrefp)
