/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the backup components document reader (src/tools/vshadow/bc-doc.c),
 * i.e. for what vshadow -r reads back from a backup medium.  Every input is parsed;
 * a failure must be one of the document HRESULTs with a reason and leave nothing
 * allocated in the result; a success must survive a round trip: written out and read
 * again it is accepted, and written out a second time it is the same text.
 *
 * Invariants are checked with abort(), which libFuzzer and the standalone driver
 * (tests/fuzz/standalone.c) both report.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/vshadow/bc-doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-bc-doc: invariant violated: %s\n", what);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct bc_doc d, back;
        char err[512] = "", err2[512] = "";
        char *text, *again;
        vss_hresult hr;

        hr = bc_doc_parse((const char *)data, size, &d, err, sizeof(err));
        if (hr != VSS_S_OK) {
                check(hr == VSS_E_CORRUPT_XML_DOCUMENT || hr == VSS_E_INVALID_XML_DOCUMENT ||
                              hr == VSS_E_OUTOFMEMORY,
                      "a bad document gives a document HRESULT");
                check(err[0] != 0, "a bad document says why");
                check(!d.writers && !d.shadows && !d.host && d.n_writers == 0 && d.n_shadows == 0,
                      "a failed parse leaves nothing behind");
                return 0;
        }
        check(d.version == BC_DOC_VERSION, "an accepted document has the version we read");
        for (size_t i = 0; i < d.n_writers; i++) {
                check(d.writers[i].name && *d.writers[i].name, "an accepted writer has a name");
                for (size_t k = 0; k < d.writers[i].n_components; k++)
                        check(d.writers[i].components[k].name && d.writers[i].components[k].logical_path,
                              "an accepted component has a name and a logical path");
        }
        text = bc_doc_format(&d);
        if (text) {
                hr = bc_doc_parse(text, strlen(text), &back, err2, sizeof(err2));
                if (hr != VSS_E_OUTOFMEMORY) {
                        check(hr == VSS_S_OK, "a document written by us is accepted");
                        again = bc_doc_format(&back);
                        check(!again || strcmp(text, again) == 0, "writing a read document again gives the same text");
                        free(again);
                        bc_doc_done(&back);
                }
                free(text);
        }
        bc_doc_done(&d);
        return 0;
}
