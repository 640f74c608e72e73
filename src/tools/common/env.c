/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The "KEY=value" list a tool hands to the command it runs (vshadow's --exec,
 * vsswriter's hooks).  An allocation failure is remembered rather than reported
 * at each call, so a caller adds every entry and checks once before it runs.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tools/common/tools-common.h"

void tool_env_add(struct tool_env *e, const char *fmt, ...)
{
        char **nv, *str;
        va_list ap;
        int r;

        if (e->oom)
                return;
        va_start(ap, fmt);
        r = vasprintf(&str, fmt, ap);
        va_end(ap);
        /* One more for the new entry, one for the NULL that ends the list. */
        nv = r < 0 ? NULL : reallocarray(e->v, e->n + 2, sizeof(char *));
        if (!nv) {
                if (r >= 0)
                        free(str);
                e->oom = true;
                return;
        }
        e->v = nv;
        e->v[e->n++] = str;
        e->v[e->n] = NULL;
}

void tool_env_done(struct tool_env *e)
{
        for (size_t i = 0; i < e->n; i++)
                free(e->v[i]);
        free(e->v);
        *e = (struct tool_env){ 0 };
}
