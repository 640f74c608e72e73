/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_CLIENT_H
#define VSS_CLIENT_H

/*
 * A raw protocol connection to vssd, for tools and bindings: send one request
 * by method name with JSON parameters, get the JSON result.  The methods and
 * their parameters are documented in docs/protocol.md.  vssadmin uses this for
 * the admin methods; the writer and requester APIs are built on the same code.
 */

#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_client vss_client;

/* socket_path NULL: vss_default_socket_path(). VSS_E_WRITER_INFRASTRUCTURE if vssd is not there. */
vss_hresult vss_client_connect(const char *socket_path, vss_client **ret);
vss_client *vss_client_free(vss_client *c);

/*
 * Calls 'method' with 'params_json' (an object, or NULL for {}).  On success
 * *ret_result_json (may be NULL) receives the malloc'ed JSON text of the result.
 * On failure the daemon's HRESULT is returned and vss_client_get_error_detail()
 * holds its detail text.
 */
vss_hresult vss_client_call(vss_client *c, const char *method, const char *params_json,
                            char **ret_result_json);
const char *vss_client_get_error_detail(vss_client *c);
int vss_client_fd(vss_client *c);

#ifdef __cplusplus
}
#endif

#endif
