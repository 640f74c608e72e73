/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * example-requester: one full backup session with libvss.
 *
 *     example-requester [--socket PATH] VOLUME...
 *
 * GatherWriterMetadata, StartSnapshotSet, AddToSnapshotSet for each volume,
 * PrepareForBackup, DoSnapshotSet; then it prints every shadow copy, the
 * writer status and the backup metadata each writer attached, and ends with
 * BackupComplete.  On a failure it prints the HRESULT with the daemon's
 * detail and the writer status (who vetoed), and aborts the backup.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/requester.h>

static int fail(vss_backup *b, const char *what, vss_hresult hr)
{
        fprintf(stderr, "example-requester: %s failed: 0x%08X %s: %s\n  %s\n", what, (uint32_t)hr,
                vss_hresult_name(hr), vss_hresult_message(hr), vss_backup_get_error_detail(b));
        return 1;
}

static void print_status(vss_backup *b)
{
        size_t n = vss_backup_get_writer_status_count(b);

        printf("Writer status (%zu):\n", n);
        for (size_t i = 0; i < n; i++) {
                struct vss_writer_status st;
                char id[VSS_ID_STRING_MAX];

                if (VSS_FAILED(vss_backup_get_writer_status(b, i, &st)))
                        continue;
                printf("  '%s' %s  state %s  last error: %s%s%s%s\n", st.name, vss_id_format(&st.writer_id, id),
                       vss_writer_state_label(st.state), vss_writer_error_label(st.failure),
                       st.message ? " (" : "", st.message ? st.message : "", st.message ? ")" : "");
        }
}

static void print_metadata(vss_backup *b)
{
        for (size_t i = 0; i < vss_backup_get_writer_metadata_count(b); i++) {
                struct vss_writer_metadata m;

                if (VSS_FAILED(vss_backup_get_writer_metadata(b, i, &m)))
                        continue;
                for (size_t j = 0; j < m.component_count; j++) {
                        struct vss_component_info c;
                        const char *md;

                        if (VSS_FAILED(vss_backup_get_writer_component(b, i, j, &c)))
                                continue;
                        md = vss_backup_get_backup_metadata(b, &m.writer_id, c.logical_path, c.name);
                        printf("  metadata of '%s' component '%s%s%s': %s\n", m.name, c.logical_path,
                               c.logical_path[0] ? "\\" : "", c.name, md ? md : "(none)");
                }
        }
}

int main(int argc, char **argv)
{
        const char *socket_path = NULL;
        vss_backup *b = NULL;
        vss_id set, *shadows;
        char id[VSS_ID_STRING_MAX];
        vss_hresult hr;
        int i = 1, n, rc = 0;

        if (argc > 2 && strcmp(argv[1], "--socket") == 0) {
                socket_path = argv[2];
                i = 3;
        }
        if (i >= argc || argv[i][0] == '-') {
                fprintf(stderr, "Usage: %s [--socket PATH] VOLUME...\n", argv[0]);
                return 2;
        }
        n = argc - i;
        shadows = calloc((size_t)n, sizeof(*shadows));
        if (!shadows)
                return 1;

        hr = vss_backup_new(socket_path, &b);
        if (VSS_FAILED(hr)) {
                fprintf(stderr, "example-requester: cannot reach vssd: 0x%08X %s: %s\n", (uint32_t)hr,
                        vss_hresult_name(hr), vss_hresult_message(hr));
                free(shadows);
                return 1;
        }

        hr = vss_backup_set_backup_state(b, false, false, VSS_BT_FULL);
        if (VSS_FAILED(hr)) {
                rc = fail(b, "SetBackupState", hr);
                goto out;
        }
        hr = vss_backup_gather_writer_metadata(b);
        if (VSS_FAILED(hr)) {
                rc = fail(b, "GatherWriterMetadata", hr);
                goto out;
        }
        printf("%zu writer(s) known\n", vss_backup_get_writer_metadata_count(b));
        hr = vss_backup_start_snapshot_set(b, &set);
        if (VSS_FAILED(hr)) {
                rc = fail(b, "StartSnapshotSet", hr);
                goto out;
        }
        printf("Snapshot set %s\n", vss_id_format(&set, id));
        for (int k = 0; k < n; k++) {
                hr = vss_backup_add_to_snapshot_set(b, argv[i + k], NULL, &shadows[k]);
                if (VSS_FAILED(hr)) {
                        rc = fail(b, "AddToSnapshotSet", hr);
                        vss_backup_abort_backup(b);
                        goto out;
                }
        }
        hr = vss_backup_prepare_for_backup(b);
        if (VSS_FAILED(hr)) {
                rc = fail(b, "PrepareForBackup", hr);
                vss_backup_abort_backup(b);
                goto out;
        }
        hr = vss_backup_do_snapshot_set(b);
        if (VSS_FAILED(hr)) {
                rc = fail(b, "DoSnapshotSet", hr);
                print_status(b);
                vss_backup_abort_backup(b);
                goto out;
        }

        for (int k = 0; k < n; k++) {
                struct vss_snapshot_prop p;

                hr = vss_backup_get_snapshot_properties(b, &shadows[k], &p);
                if (VSS_FAILED(hr)) {
                        rc = fail(b, "GetSnapshotProperties", hr);
                        continue;
                }
                printf("Shadow copy %s of %s: %s\n", vss_id_format(&p.snapshot_id, id), p.original_volume,
                       p.snapshot_device);
                vss_snapshot_prop_clear(&p);
        }
        print_status(b);
        print_metadata(b);

        hr = vss_backup_backup_complete(b, true);
        if (VSS_FAILED(hr))
                rc = fail(b, "BackupComplete", hr);
        else
                print_status(b);
out:
        vss_backup_free(b);
        free(shadows);
        return rc;
}
