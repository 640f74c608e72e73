/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for vsswriter's writer definition files
 * (/etc/openvss/writers.d/\*.conf, src/tools/vsswriter/config.c).  Invariants
 * (abort() on violation): a failed parse names its reason and adds no writer;
 * every writer of a successful parse has a name, a NULL-terminated volume list
 * of the length it states, and hooks only for real events.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/vsswriter/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-writer-conf: invariant violated: %s\n", what);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct writer_list l = {};
        char *text, err[512] = "";
        int r;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        r = config_parse_string(text, "fuzz.conf", &l, err, sizeof(err));
        if (r < 0) {
                check(err[0] != 0, "a failed parse names its reason");
                check(memchr(err, 0, sizeof(err)) != NULL, "the reason is a string");
        } else {
                check(r == 0, "success is 0");
                for (size_t i = 0; i < l.n; i++) {
                        struct writer_conf *c = l.items[i];
                        char e2[256];

                        check(c && c->name && *c->name, "every writer has a name");
                        check(writer_conf_check(c, e2, sizeof(e2)) == 0, "every writer is complete");
                        for (size_t k = 0; k < c->n_volumes; k++)
                                check(c->volumes && c->volumes[k], "volume entries are set");
                        check(!c->volumes || !c->volumes[c->n_volumes], "the volume list ends with NULL");
                        check(c->freeze_timeout_ms <= 3600000, "freeze timeout in range");
                }
        }
        writer_list_done(&l);
        free(text);
        return 0;
}
