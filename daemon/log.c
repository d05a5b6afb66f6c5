/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Any thread logs, and a reload (the loop thread) sets the level while
 * they do: atomics, relaxed - a line written at the old level just
 * after a reload is harmless. */
static atomic_int g_level = LOG_INFO;
static atomic_int g_journal = -1; /* -1: not yet checked */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = {3, 4, 6, 7};

void log_set_level(enum log_level lvl)
{
    atomic_store_explicit(&g_level, (int)lvl, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&g_level, memory_order_relaxed);
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    return -1;
}

const char *log_level_name(enum log_level lvl)
{
    return (lvl >= LOG_ERROR && lvl <= LOG_DEBUG) ? level_names[lvl] : "?";
}

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
{
    if ((int)lvl > atomic_load_explicit(&g_level, memory_order_relaxed))
        return;
    int journal = atomic_load_explicit(&g_journal, memory_order_relaxed);
    if (journal < 0) {
        journal = getenv("JOURNAL_STREAM") != NULL;
        atomic_store_explicit(&g_journal, journal, memory_order_relaxed);
    }

    /* Format the whole line first and write it with one call, so lines
     * from different threads never interleave. */
    char line[2048];
    int n;
    if (journal) {
        n = snprintf(line, sizeof line, "<%d>%s %s: ", level_prio[lvl],
                     level_names[lvl], component);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[lvl], component);
    }
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* One event, one line: fold any newline in the message. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
