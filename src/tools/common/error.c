/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one place where the tools report a failure.  Every error names the
 * HRESULT in hex and by its symbolic name, then gives the catalogue's
 * one-line meaning, then whatever detail the daemon (or the tool) has, so
 * that "0x80042316" in a script's log is enough to look the problem up with
 * `vssadmin explain`.
 */

#include <stdarg.h>
#include <stdio.h>

#include "tools/common/tools-common.h"

char *tool_format_hresult(vss_hresult hr, char buf[11])
{
        snprintf(buf, 11, "0x%08X", (uint32_t)hr);
        return buf;
}

int tool_print_error(vss_hresult hr, const char *detail)
{
        char hex[11];

        fflush(stdout);
        fprintf(stderr, "Error: %s %s\n%s\n", tool_format_hresult(hr, hex), vss_hresult_name(hr),
                vss_hresult_message(hr));
        if (detail && *detail)
                fprintf(stderr, "%s\n", detail);
        return TOOL_EXIT_FAILURE;
}

int tool_print_errorf(vss_hresult hr, const char *fmt, ...)
{
        _cleanup_free_ char *detail = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&detail, fmt, ap) < 0)
                detail = NULL;
        va_end(ap);
        return tool_print_error(hr, detail);
}
