/* device.h - the machine's power and thermal state, read from sysfs.
 *
 * The router forwards more readily when the machine runs on a low battery
 * or is hot. device_read looks below a sysfs root (normally "/sys"; tests
 * pass a directory tree of their own) at the Linux ABI files:
 *
 *   class/power_supply/<name>/type      "Battery", "Mains", "USB", "UPS"...
 *                        .../scope      "Device" for a peripheral's battery
 *                        .../status     "Discharging", "Charging", "Full"...
 *                        .../capacity   percent, 0..100
 *                        .../online     1 when the supply feeds the machine
 *   class/thermal/thermal_zone<N>/temp                millidegrees Celsius
 *                        .../trip_point_<K>_type      "passive", "hot",
 *                                                     "critical", "active"
 *                        .../trip_point_<K>_temp      millidegrees Celsius
 *   class/thermal/cooling_device<N>/type, .../cur_state
 *
 * The rules:
 *   on_battery       a system battery (type "Battery", scope not "Device":
 *                    a mouse's battery says nothing about the machine) is
 *                    "Discharging" and no supply of another type (other
 *                    than "Battery" and "UPS": Mains, USB, USB_*, Wireless)
 *                    is online (online >= 1).
 *   battery_percent  the mean capacity of the system batteries that report
 *                    one, -1 when none does. The mean, not the lowest: a
 *                    laptop with two batteries drains one, then the other,
 *                    and the lowest would call it low while the other is
 *                    full.
 *   battery_low      on_battery && battery_percent >= 0 &&
 *                    battery_percent < battery_min.
 *   thermal          the highest temp / reference trip over the thermal
 *                    zones, clamped to [0, 1], 0 when no zone has both. A
 *                    zone's reference trip is its lowest "passive" trip
 *                    (where the kernel starts to slow the CPU down), else
 *                    its lowest "hot" one, else its lowest "critical" one;
 *                    "active" trips (fans) are not used. Trips at or below
 *                    0 C or above 200 C are placeholders firmware fills in
 *                    (ACPI's 256 C) and are ignored.
 *   throttled        thermal >= 1 (a zone at or past its reference trip),
 *                    or a CPU cooling device in use: type "Processor"
 *                    (ACPI), "thermal-cpufreq-*" or "cpufreq-*" (device
 *                    tree) with cur_state > 0. The cpufreq frequencies are
 *                    not used: an idle CPU runs below its maximum too, and
 *                    a low scaling_max_freq may be the user's choice.
 *
 * Reading is careful about what it finds: each file is opened without
 * following a final symlink and without blocking, must be a regular file,
 * and is read up to 64 bytes; a number must be a whole decimal integer
 * within its range (a capacity 0..100, a temperature -100..200 C). A file
 * that is missing, unreadable, a directory, empty, or malformed counts as
 * missing: "unknown", which reads as not on battery and not hot. At most
 * 64 power supplies, 64 thermal zones and 64 cooling devices are looked
 * at (among the first 4096 entries of their directory), and 32 trip
 * points per zone.
 *
 * device_read opens a few dozen small files (tens of microseconds to a
 * few milliseconds, depending on the machine and the kernel); device_get
 * serves a cached state and reads again at most once per time-to-live,
 * so the daemon may call it on every request.
 */
#ifndef HEARTH_ROUTER_DEVICE_H
#define HEARTH_ROUTER_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct device_state {
    bool on_battery;
    int battery_percent;    /* 0..100, -1: no battery */
    bool battery_low;
    double thermal;         /* 0..1 */
    bool throttled;
} device_state;

/* Read the state below sysfs_root (NULL: "/sys"). Never fails: what
 * cannot be read is unknown. Returns 0. */
int device_read(const char *sysfs_root, int battery_min, device_state *out);

/* A cached device_read. Any thread may call device_get (a mutex). */
typedef struct device_cache device_cache;

/* NULL when out of memory. ttl_ms: how old a state may be served. */
device_cache *device_cache_new(const char *sysfs_root, int battery_min,
                               int64_t ttl_ms);
void device_cache_free(device_cache *c);
/* The state as of at most ttl_ms before now_ms (a monotonic clock in
 * milliseconds, e.g. uv_now): read again when the cached state is older,
 * or when now_ms is before the last read. */
void device_get(device_cache *c, int64_t now_ms, device_state *out);

#endif
