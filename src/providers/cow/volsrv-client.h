/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A blocking client for a volume server's control socket (RUNDIR/control.sock,
 * docs/volsrv.md): one short-lived connection per call, so the event loop and
 * the provider worker thread never share a socket.
 */

#include <jansson.h>
#include <stddef.h>

#include "vss/vss.h"

#define VOLSRV_CALL_TIMEOUT_MS 10000

/* Connects to RUNDIR/control.sock (non-blocking fd, CLOEXEC).  Returns the fd or -errno. */
int volsrv_connect(const char *rundir);
/* Calls 'method' (params stolen, NULL = {}); on success *ret_result (may be NULL) gets a
 * new reference to the result.  A failure reply is returned as its HRESULT with the
 * detail in errbuf; transport failures as VSS_E_PROVIDER_VETO with the reason. */
vss_hresult volsrv_call(const char *rundir, const char *method, json_t *params, int timeout_ms, json_t **ret_result,
                        char *errbuf, size_t errlen);
/* The GUID as the volume server names shadows: 36 lower-case characters, no braces. */
void volsrv_guid(const vss_id *id, char buf[37]);
