/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synchronous control-socket calls to vss-volsrv.  Every call opens its own
 * connection, sends one request (id 1) and reads lines until the matching
 * reply, skipping Volume.Event notifications (those are read by vssd's own
 * long-lived connection).  A deadline bounds the whole call.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/time-util.h"
#include "basic/wire.h"
#include "providers/cow/volsrv-client.h"

int volsrv_connect(const char *rundir)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", rundir) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        return fd;
}

void volsrv_guid(const vss_id *id, char buf[37])
{
        char tmp[VSS_ID_STRING_MAX];
        const char *s = vss_id_format(id, tmp);
        size_t k = 0;

        for (; *s && k < 36; s++)
                if (*s != '{' && *s != '}')
                        buf[k++] = (char)(*s >= 'A' && *s <= 'F' ? *s - 'A' + 'a' : *s);
        buf[k] = 0;
}

vss_hresult volsrv_call(const char *rundir, const char *method, json_t *params, int timeout_ms, json_t **ret_result,
                        char *errbuf, size_t errlen)
{
        _cleanup_close_ int fd = -EBADF;
        struct wire_buf in;
        vss_hresult hr = VSS_E_PROVIDER_VETO;
        long long deadline = (long long)(clock_monotonic_us() / USEC_PER_MSEC) + timeout_ms;
        _cleanup_free_ char *out = NULL;
        size_t out_len = 0;
        json_t *req;

        if (ret_result)
                *ret_result = NULL;
        req = wire_request(1, method, params);
        if (!req) {
                snprintf(errbuf, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        out = wire_dump(req, &out_len);
        json_decref(req);
        if (!out) {
                snprintf(errbuf, errlen, "out of memory");
                return VSS_E_OUTOFMEMORY;
        }
        fd = volsrv_connect(rundir);
        if (fd < 0) {
                snprintf(errbuf, errlen, "volume server at %s does not answer: %s", rundir, strerror(-fd));
                return VSS_E_PROVIDER_VETO;
        }
        /* One short line: a blocking send is bounded by the socket buffer. */
        if (send(fd, out, out_len, MSG_NOSIGNAL) != (ssize_t)out_len) {
                snprintf(errbuf, errlen, "cannot send %s to the volume server at %s: %s", method, rundir,
                         strerror(errno));
                return VSS_E_PROVIDER_VETO;
        }
        wire_buf_init(&in, WIRE_MESSAGE_MAX);
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                long long left = deadline - (long long)(clock_monotonic_us() / USEC_PER_MSEC);
                char *line;
                size_t len;
                ssize_t n;
                int r;

                r = wire_buf_next_line(&in, &line, &len);
                if (r < 0) {
                        snprintf(errbuf, errlen, "volume server at %s sent an oversized line", rundir);
                        break;
                }
                if (r > 0) {
                        struct wire_msg m;
                        char perr[200];

                        if (wire_parse(line, len, &m, perr, sizeof(perr)) != VSS_S_OK) {
                                snprintf(errbuf, errlen, "volume server at %s sent garbage: %s", rundir, perr);
                                break;
                        }
                        if (m.kind == WIRE_REQUEST || !m.has_id || m.id != 1) {
                                wire_msg_done(&m);      /* a notification */
                                continue;
                        }
                        if (m.kind == WIRE_RESULT) {
                                hr = VSS_S_OK;
                                if (ret_result)
                                        *ret_result = json_incref(m.result);
                        } else {
                                hr = m.hr;
                                snprintf(errbuf, errlen, "%s", m.detail ? m.detail : vss_hresult_message(m.hr));
                        }
                        wire_msg_done(&m);
                        break;
                }
                if (left <= 0) {
                        snprintf(errbuf, errlen, "volume server at %s did not answer %s within %d ms", rundir, method,
                                 timeout_ms);
                        break;
                }
                r = poll(&p, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        continue;
                n = wire_buf_fill(&in, fd);
                if (n == -EAGAIN)
                        continue;
                if (n <= 0) {
                        snprintf(errbuf, errlen, "volume server at %s closed the connection during %s", rundir,
                                 method);
                        break;
                }
        }
        wire_buf_done(&in);
        return hr;
}
