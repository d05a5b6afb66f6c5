/* privacy_json.c - see privacy_json.h. */
#include "router/privacy_json.h"

/* One text: *kind its first hit's kind, or left alone when none. */
static privacy_status scan_text(const privacy_set *set, const char *text, size_t len,
                                int *kind)
{
    privacy_hit hit;
    size_t n = 0;
    privacy_status st = privacy_scan(set, text, len, &hit, 1, &n);
    if (st == PRIVACY_OK && n > 0)
        *kind = (int)hit.kind;
    return st;
}

/* Depth first, in document order (jansson keeps an object's members in
 * the order they were read); stops at the first hit. */
static privacy_status walk(const privacy_set *set, json_t *v, int depth, int *kind)
{
    if (depth > PRIVACY_JSON_MAX_DEPTH)
        return PRIVACY_EMATCH;
    privacy_status st = PRIVACY_OK;
    if (json_is_string(v))
        return scan_text(set, json_string_value(v), json_string_length(v), kind);
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            st = walk(set, item, depth + 1, kind);
            if (st != PRIVACY_OK || *kind >= 0)
                return st;
        }
    } else if (json_is_object(v)) {
        const char *key;
        size_t key_len;
        json_t *member;
        json_object_keylen_foreach(v, key, key_len, member) {
            st = scan_text(set, key, key_len, kind);
            if (st == PRIVACY_OK && *kind < 0)
                st = walk(set, member, depth + 1, kind);
            if (st != PRIVACY_OK || *kind >= 0)
                return st;
        }
    }
    return st;
}

privacy_status privacy_json_scan(const privacy_set *set, json_t *root, int *kind)
{
    *kind = -1;
    privacy_status st = root ? walk(set, root, 0, kind) : PRIVACY_OK;
    if (st != PRIVACY_OK)
        *kind = -1;
    return st;
}

privacy_status privacy_json_check(const privacy_set *set, const char *body, size_t len,
                                  json_t *root, int *kind)
{
    *kind = -1;
    privacy_status st = body ? scan_text(set, body, len, kind) : PRIVACY_OK;
    if (st != PRIVACY_OK) {
        *kind = -1;
        return st;
    }
    return *kind >= 0 ? PRIVACY_OK : privacy_json_scan(set, root, kind);
}
