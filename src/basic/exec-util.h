/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/*
 * Runs argv[0] (looked up in PATH, no shell) with stdin on /dev/null and its
 * stdout and stderr captured together into 'out' (NUL-terminated, trailing
 * newlines and blanks cut; 'out' may be NULL).  The child starts with an empty
 * signal mask, whatever the caller blocks for its signalfd.
 *
 * timeout_ms < 0 waits for ever; otherwise the child (and its process group)
 * is killed with SIGKILL when the deadline passes, reaped, and -ETIMEDOUT is
 * returned.  Otherwise returns the exit status (0..255), 128 + N when the child
 * died of signal N, or -errno when it could not be started.
 */
int run_command(char *const argv[], int timeout_ms, char *out, size_t outlen);
