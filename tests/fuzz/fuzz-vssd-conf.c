/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for vssd.conf (src/vssd/config.c): whatever an admin, a package
 * or a broken editor leaves in /etc/openvss/vssd.conf.  The input is parsed as
 * INI text.  Invariants (abort() on violation): a failed parse names its
 * reason and leaves the configuration exactly as it was; a successful one
 * leaves every value inside the range the daemon relies on.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vssd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-vssd-conf: invariant violated: %s\n", what);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct vssd_config before, c;
        char *text, err[512] = "";
        int r;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        config_defaults(&c);
        before = c;
        r = config_parse_string(text, &c, err, sizeof(err));
        if (r < 0) {
                check(err[0] != 0, "a failed parse names its reason");
                check(memchr(err, 0, sizeof(err)) != NULL, "the reason is a string");
                check(memcmp(&before, &c, sizeof(c)) == 0, "a failed parse changes nothing");
        } else {
                check(r == 0, "success is 0");
                check(c.freeze_timeout_ms >= 1 && c.freeze_timeout_ms <= 3600000, "freeze timeout in range");
                check(c.event_timeout_ms >= 1 && c.event_timeout_ms <= 3600000, "event timeout in range");
                check(c.max_connections >= 1 && c.max_connections <= 65536, "max_connections in range");
                check(c.max_connections_per_uid >= 1 && c.max_connections_per_uid <= 65536,
                      "max_connections_per_uid in range");
                check(memchr(c.admin_group.name, 0, sizeof(c.admin_group.name)) != NULL, "admin_group terminated");
                check(memchr(c.writer_group.name, 0, sizeof(c.writer_group.name)) != NULL, "writer_group terminated");
                check(!c.admin_group.resolved && !c.writer_group.resolved, "parsing never resolves a group");
                check(!strpbrk(c.admin_group.name, " \t\n:,") && !strpbrk(c.writer_group.name, " \t\n:,"),
                      "a group name has no separator in it");
                check(c.min_diff_area_mb >= 1 && c.min_diff_area_mb <= 1024 * 1024, "min diff area in range");
                check(memchr(c.volsrv_path, 0, sizeof(c.volsrv_path)) != NULL, "volsrv_path terminated");
                check(c.volsrv_path[0] == 0 || c.volsrv_path[0] == '/', "volsrv_path absolute");
        }
        free(text);
        return 0;
}
