/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The backup components document (docs/backup-components.md): what vshadow -bc
 * saves after a successful snapshot set and what vshadow -r restores from.  The
 * writer and the reader live here, apart from vshadow's main program, so that
 * tests/unit/test-bc-doc.c and the fuzz target tests/fuzz/fuzz-bc-doc.c exercise
 * exactly the code vshadow runs.
 *
 * The reader trusts nothing: every field it uses is checked for type, range,
 * length and uniqueness, and a document that fails gives
 * VSS_E_CORRUPT_XML_DOCUMENT (not JSON at all: truncated, garbage, duplicate
 * keys, NUL bytes) or VSS_E_INVALID_XML_DOCUMENT (JSON that is not a valid
 * document of a version we read) with the path of the offending field.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vss/vss.h"

#define BC_DOC_FORMAT "openvss-backup-components"
#define BC_DOC_VERSION 1
#define BC_DOC_MAX_BYTES (16 * 1024 * 1024)
#define BC_DOC_MAX_WRITERS 1024
#define BC_DOC_MAX_COMPONENTS 4096
#define BC_DOC_MAX_FILES 4096
#define BC_DOC_METADATA_MAX (256 * 1024)

struct bc_shadow {
        vss_id shadow_id;
        char *original_volume;
        char *original_device;          /* may be NULL */
        char *device;
        vss_id provider_id;
        char *provider_name;            /* may be NULL */
        int32_t attributes;
        int64_t creation_time_us;
};

struct bc_file {
        char *path;
        char *filespec;
        bool recursive;
};

struct bc_component {
        enum vss_component_type type;
        char *logical_path;             /* "" when none */
        char *name;
        char *caption;                  /* may be NULL */
        bool selectable;
        struct bc_file *files;
        size_t n_files;
        char *backup_metadata;          /* may be NULL */
};

struct bc_restore_method {
        enum vss_restore_method_type method;
        char *service;                  /* "" when none */
        char *user_procedure;           /* "" when none */
        enum vss_writer_restore_type writer_restore;
        bool reboot_required;
};

struct bc_writer {
        vss_id writer_id;
        vss_id instance_id;
        char *name;
        struct bc_restore_method restore_method;
        struct bc_component *components;
        size_t n_components;
        enum vss_writer_state state;    /* the final status of the backup */
        vss_hresult failure;
        char *message;                  /* may be NULL */
};

struct bc_doc {
        unsigned version;
        vss_id set_id;
        int64_t created_us;
        int32_t context;
        enum vss_backup_type backup_type;
        char *host;                     /* may be NULL */
        struct bc_shadow *shadows;
        size_t n_shadows;
        struct bc_writer *writers;
        size_t n_writers;
};

void bc_doc_done(struct bc_doc *d);

/* Appends an element (zeroed) to the document's arrays; NULL on OOM. */
struct bc_shadow *bc_doc_add_shadow(struct bc_doc *d);
struct bc_writer *bc_doc_add_writer(struct bc_doc *d);
struct bc_component *bc_writer_add_component(struct bc_writer *w);
struct bc_file *bc_component_add_file(struct bc_component *c);

/* The document as JSON text (malloc'ed, newline-terminated), or NULL on OOM. */
char *bc_doc_format(const struct bc_doc *d);

/*
 * Parses and validates 'len' bytes.  VSS_S_OK with *ret filled (release with
 * bc_doc_done), else VSS_E_CORRUPT_XML_DOCUMENT or VSS_E_INVALID_XML_DOCUMENT
 * (or VSS_E_OUTOFMEMORY) with a reason in err and *ret left empty.
 */
vss_hresult bc_doc_parse(const char *text, size_t len, struct bc_doc *ret, char *err, size_t errlen);

/* Reads and parses a file (at most BC_DOC_MAX_BYTES); a file that cannot be read
 * is VSS_E_OBJECT_NOT_FOUND (ENOENT) or VSS_E_ACCESSDENIED or VSS_E_FAIL, with err. */
vss_hresult bc_doc_load(const char *path, struct bc_doc *ret, char *err, size_t errlen);

/*
 * Writing a file atomically: bc_doc_save_begin() creates a temporary file beside
 * 'path' (so a run that cannot write its document fails before it freezes anyone),
 * bc_doc_save_commit() writes the document, fsyncs it, renames it over 'path' and
 * fsyncs the directory; bc_doc_save_abort() removes the temporary file.  'path'
 * is untouched unless commit succeeds.  Both return 0 or -errno with err set.
 */
struct bc_save {
        char *path;
        char *tmp_path;
        int fd;
};
int bc_doc_save_begin(struct bc_save *s, const char *path, char *err, size_t errlen);
int bc_doc_save_commit(struct bc_save *s, const struct bc_doc *d, char *err, size_t errlen);
void bc_doc_save_abort(struct bc_save *s);
