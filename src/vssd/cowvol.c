/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cow volumes: an image file served by its own vss-volsrv process (FUSE file
 * + loop device), recorded in the catalog so vssd can find the volume server
 * again after a restart.  Volume servers are daemons of their own, never
 * vssd's children, so vssd can crash or restart without taking a filesystem
 * offline.
 */

#include <stdio.h>

#include "vssd/vssd.h"

int freeze_protect_list(struct vssd *v, char ***ret, size_t *ret_n)
{
        size_t n = 1, k = 0;
        char **a;

        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next)
                n += 3;
        a = calloc(n, sizeof(char *));
        if (!a)
                return -ENOMEM;
        a[k++] = strdup(v->state_dir);
        for (struct cowvol *cv = v->cowvols; cv; cv = cv->next) {
                a[k++] = strdup(cv->diff);
                a[k++] = strdup(cv->rundir);
                a[k++] = strdup(cv->image);
        }
        for (size_t i = 0; i < k; i++)
                if (!a[i]) {
                        for (size_t m = 0; m < k; m++)
                                free(a[m]);
                        free(a);
                        return -ENOMEM;
                }
        *ret = a;
        *ret_n = k;
        return 0;
}
