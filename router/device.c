/* device.c - see device.h. */
#include "router/device.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX 64       /* sysfs attributes we read are a few bytes */
#define ENTRIES_MAX 64    /* supplies, zones, cooling devices looked at */
#define DIRENTS_MAX 4096  /* directory entries read before giving up */
#define TRIPS_MAX 32
#define TEMP_MIN (-100000LL) /* millidegrees C */
#define TEMP_MAX 200000LL

/* ------------------------------------------------------------ reading */

/* The contents of root/dir/name/leaf, trailing whitespace cut, into buf
 * (FILE_MAX + 2 bytes). false when it is missing, not a regular file,
 * unreadable, empty or longer than FILE_MAX. */
static bool read_attr(const char *root, const char *dir, const char *name,
                      const char *leaf, char *buf)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s/%s/%s", root, dir, name, leaf);
    if (n < 0 || (size_t)n >= sizeof path)
        return false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
                  O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    size_t len = 0;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    while (ok && len <= FILE_MAX) {
        ssize_t k = read(fd, buf + len, FILE_MAX + 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            ok = false;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    if (!ok || len > FILE_MAX)
        return false;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    return len > 0 && strlen(buf) == len; /* no NUL inside */
}

/* A whole decimal integer in [min, max]. */
static bool read_num(const char *root, const char *dir, const char *name,
                     const char *leaf, long long min, long long max,
                     long long *out)
{
    char buf[FILE_MAX + 2];
    if (!read_attr(root, dir, name, leaf, buf))
        return false;
    if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool read_is(const char *root, const char *dir, const char *name,
                    const char *leaf, const char *want)
{
    char buf[FILE_MAX + 2];
    return read_attr(root, dir, name, leaf, buf) && strcmp(buf, want) == 0;
}

/* Call fn for each entry of root/dir whose name starts with prefix ("" for
 * all but dot files), at most ENTRIES_MAX of them. */
static void each_entry(const char *root, const char *dir, const char *prefix,
                       void (*fn)(const char *root, const char *name,
                                  void *arg),
                       void *arg)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", root, dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    DIR *d = opendir(path);
    if (!d)
        return;
    size_t plen = strlen(prefix);
    int seen = 0, used = 0;
    struct dirent *e;
    while (used < ENTRIES_MAX && seen++ < DIRENTS_MAX && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, plen) != 0)
            continue;
        used++;
        fn(root, e->d_name, arg);
    }
    closedir(d);
}

/* ------------------------------------------------------- power supply */

typedef struct power_scan {
    bool discharging;       /* a system battery is discharging */
    bool external;          /* a non-battery supply is online */
    long long pct_sum;
    int pct_n;
} power_scan;

#define PS "class/power_supply"

static void power_entry(const char *root, const char *name, void *arg)
{
    power_scan *p = arg;
    char type[FILE_MAX + 2];
    if (!read_attr(root, PS, name, "type", type))
        return;
    if (strcmp(type, "Battery") == 0) {
        if (read_is(root, PS, name, "scope", "Device"))
            return;
        long long pct;
        if (read_num(root, PS, name, "capacity", 0, 100, &pct)) {
            p->pct_sum += pct;
            p->pct_n++;
        }
        if (read_is(root, PS, name, "status", "Discharging"))
            p->discharging = true;
        return;
    }
    long long online;
    if (strcmp(type, "UPS") != 0 &&
        read_num(root, PS, name, "online", 0, 255, &online) && online >= 1)
        p->external = true;
}

/* ------------------------------------------------------------ thermal */

#define TH "class/thermal"

/* temp / reference trip of one zone, or -1 when either is unknown. */
static double zone_ratio(const char *root, const char *name)
{
    long long temp;
    if (!read_num(root, TH, name, "temp", TEMP_MIN, TEMP_MAX, &temp))
        return -1;
    /* lowest trip of each kind: passive, hot, critical; 0 = none */
    static const char *const kinds[3] = {"passive", "hot", "critical"};
    long long low[3] = {0, 0, 0};
    for (int k = 0; k < TRIPS_MAX; k++) {
        char leaf[32], type[FILE_MAX + 2];
        snprintf(leaf, sizeof leaf, "trip_point_%d_type", k);
        if (!read_attr(root, TH, name, leaf, type))
            break;
        snprintf(leaf, sizeof leaf, "trip_point_%d_temp", k);
        long long t;
        if (!read_num(root, TH, name, leaf, 1, TEMP_MAX, &t))
            continue;
        for (int i = 0; i < 3; i++)
            if (strcmp(type, kinds[i]) == 0 && (!low[i] || t < low[i]))
                low[i] = t;
    }
    for (int i = 0; i < 3; i++) {
        if (!low[i])
            continue;
        double r = (double)temp / (double)low[i];
        return r < 0 ? 0 : r > 1 ? 1 : r;
    }
    return -1;
}

static void zone_entry(const char *root, const char *name, void *arg)
{
    double *thermal = arg;
    double r = zone_ratio(root, name);
    if (r > *thermal)
        *thermal = r;
}

static void cooling_entry(const char *root, const char *name, void *arg)
{
    bool *throttled = arg;
    char type[FILE_MAX + 2];
    if (!read_attr(root, TH, name, "type", type))
        return;
    if (strcmp(type, "Processor") != 0 &&
        strncmp(type, "thermal-cpufreq-", 16) != 0 &&
        strncmp(type, "cpufreq-", 8) != 0)
        return;
    long long cur;
    if (read_num(root, TH, name, "cur_state", 0, INT_MAX, &cur) && cur > 0)
        *throttled = true;
}

int device_read(const char *sysfs_root, int battery_min, device_state *out)
{
    const char *root = sysfs_root ? sysfs_root : "/sys";
    power_scan p = {0};
    each_entry(root, PS, "", power_entry, &p);
    out->on_battery = p.discharging && !p.external;
    out->battery_percent = p.pct_n ? (int)((p.pct_sum + p.pct_n / 2) /
                                           p.pct_n) : -1;
    out->battery_low = out->on_battery && out->battery_percent >= 0 &&
                       out->battery_percent < battery_min;

    double thermal = 0;
    bool throttled = false;
    each_entry(root, TH, "thermal_zone", zone_entry, &thermal);
    each_entry(root, TH, "cooling_device", cooling_entry, &throttled);
    out->thermal = thermal;
    out->throttled = throttled || thermal >= 1.0;
    return 0;
}

/* -------------------------------------------------------------- cache */

struct device_cache {
    pthread_mutex_t mu;
    char *root;
    int battery_min;
    int64_t ttl_ms;
    bool have;
    int64_t read_at;
    device_state st;
};

device_cache *device_cache_new(const char *sysfs_root, int battery_min,
                               int64_t ttl_ms)
{
    device_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->root = strdup(sysfs_root ? sysfs_root : "/sys");
    if (!c->root || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->root);
        free(c);
        return NULL;
    }
    c->battery_min = battery_min;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    return c;
}

void device_cache_free(device_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->root);
    free(c);
}

void device_get(device_cache *c, int64_t now_ms, device_state *out)
{
    pthread_mutex_lock(&c->mu);
    if (!c->have || now_ms < c->read_at || now_ms - c->read_at >= c->ttl_ms) {
        device_read(c->root, c->battery_min, &c->st);
        c->read_at = now_ms;
        c->have = true;
    }
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
