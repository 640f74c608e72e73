/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drives vssd's freeze module (src/vssd/freeze.c, linked as is) from tests:
 * freezes the given mount points with the same watchdog vssd uses, and in
 * the "commit" callback prints "frozen" then sleeps, standing in for a
 * provider commit that may hang.  Prints "result 0xHHHHHHHH NAME[: detail]"
 * and exits 0 on S_OK, 1 otherwise, 2 on bad usage.
 */

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/names.h"
#include "vssd/freeze.h"

static unsigned sleep_ms;

static vss_hresult commit_cb(void *userdata)
{
        printf("frozen\n");
        fflush(stdout);
        if (sleep_ms)
                (void)usleep((useconds_t)sleep_ms * 1000);
        return VSS_S_OK;
}

int main(int argc, char **argv)
{
        char *protect[16];
        size_t n_protect = 0;
        unsigned hold_ms = VSS_HOLD_WRITES_TIMEOUT_MS;
        char err[512] = "", hex[11];
        vss_hresult hr;
        int c;

        while ((c = getopt(argc, argv, "h:s:p:")) >= 0)
                switch (c) {
                case 'h':
                        hold_ms = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        sleep_ms = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'p':
                        if (n_protect < ARRAY_SIZE(protect))
                                protect[n_protect++] = optarg;
                        break;
                default:
                        fprintf(stderr, "usage: freeze-tool [-h HOLD_MS] [-s SLEEP_MS] [-p PROTECTED]... MOUNT...\n");
                        return 2;
                }
        if (optind >= argc) {
                fprintf(stderr, "freeze-tool: no mount point given\n");
                return 2;
        }
        hr = freeze_around(argv + optind, (size_t)(argc - optind), protect, n_protect, hold_ms, commit_cb, NULL, err,
                           sizeof(err));
        wire_format_hresult(hr, hex);
        printf("result %s %s%s%s\n", hex, vss_hresult_name(hr), err[0] ? ": " : "", err);
        return hr == VSS_S_OK ? 0 : 1;
}
