/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Between cowvol.c (the volumes' lifecycle) and cowvol-server.c (their servers). */

#include <stdbool.h>
#include <stdint.h>

#include <vss/vss.h>

struct cowvol;
struct timer;
struct vssd;

/* The event connection to cv's server (and its supervision ping): open, close. */
int cowvol_ev_open(struct vssd *v, struct cowvol *cv);
void cowvol_ev_close(struct vssd *v, struct cowvol *cv);
/* Starts cv's volume server (formatting its diff area if 'format', max: its limit). */
vss_hresult cowvol_server_start(struct vssd *v, struct cowvol *cv, bool format, int64_t max, char *err, size_t errlen);
/* cv->retry's callback: reconnects to, or restarts, a server that is gone. */
void cowvol_retry_cb(struct vssd *v, struct timer *t);
