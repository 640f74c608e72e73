/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers used everywhere: cleanup attributes and ownership transfer
 * (house style, reference/style.md section 10), array sizes, string equality.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Return the value of 'p' and reset 'p', so the cleanup handler does nothing. */
#define TAKE_PTR(p) ({ __typeof__(p) _tmp_ = (p); (p) = NULL; _tmp_; })
#define TAKE_FD(fd) ({ int _tmp_ = (fd); (fd) = -EBADF; _tmp_; })

/* Generate fnp() for use as _cleanup_(fnp) from a destructor fn(type *). */
#define DEFINE_FREE_FUNC(type, fn)                         \
        static inline void fn##p(type **p)                 \
        {                                                  \
                if (*p)                                    \
                        fn(*p);                            \
        }

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* free() that returns NULL, for 'p = mfree(p);'. */
static inline void *mfree(void *p)
{
        free(p);
        return NULL;
}
