/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/time-util.h"

static const char *log_program = "openvss";
static bool log_verbose;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_setup(const char *program)
{
        if (program && *program)
                log_program = program;
}

void log_set_verbose(bool verbose)
{
        log_verbose = verbose;
}

bool log_is_verbose(void)
{
        return log_verbose;
}

enum log_level log_level_from_name(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(level_names); i++)
                if (streq(name, level_names[i]))
                        return (enum log_level)i;
        return LOG_LEVEL_ERROR;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
        uint64_t now = clock_realtime_us();
        time_t sec = (time_t)(now / USEC_PER_SEC);
        struct tm tm;
        char when[32] = "";
        va_list ap;

        if ((unsigned)level >= ARRAY_SIZE(level_names))
                level = LOG_LEVEL_ERROR;
        if (localtime_r(&sec, &tm))
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        flockfile(stderr);
        fprintf(stderr, "%s.%06u %s[%d] %s: ", when, (unsigned)(now % USEC_PER_SEC), log_program, (int)getpid(),
                level_names[level]);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
}
