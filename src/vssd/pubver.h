/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* pubver.c: Previous Versions publications. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct conn;
struct shadow;
struct vssd;

struct pubver {
        struct pubver *next;
        char *volume;                   /* the published volume (canonical path) */
        char *dir;                      /* where its shadow copies appear as @GMT-... (canonical) */
        bool made_dir;                  /* vssd created dir: removed with the publication */
        int64_t created_us;
};

/* pubver.c: the one place that keeps published directories in step with the shadow copies. */
/* Mounts what volume's publication should show and unmounts what it should not (any volume). */
void pubver_sync(struct vssd *v, const char *volume);
/* Queues the unmount of a shadow copy's published path (it is being deleted or was lost). */
void pubver_unpublish(struct vssd *v, struct shadow *sh);
/* The mount of sh's published path is gone and cannot be made again (cowvol-remount.c). */
void pubver_lost(struct vssd *v, struct shadow *sh, const char *why);
/* A volume is deleted: its publication goes (it has no shadow copies by then). */
void pubver_volume_gone(struct vssd *v, const char *volume);
/* Startup: pubver_load() after the shadows are loaded, pubver_start() after they are recovered. */
int pubver_load(struct vssd *v);
void pubver_start(struct vssd *v);
void pubvers_done(struct vssd *v);
void method_pubver(struct vssd *v, struct conn *c, json_int_t id, json_t *params, const char *method);
