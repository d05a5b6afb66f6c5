/* testmsg.h - what the two files of the test_messages suite share:
 * JSON helpers that fail the test on a wrong shape, and the render TCase
 * (test_messages_render.c) that main adds. */
#ifndef HEARTH_TESTMSG_H
#define HEARTH_TESTMSG_H

#include <check.h>
#include <jansson.h>

/* s parsed; fails the test when it is not JSON. */
json_t *tm_load(const char *s);
/* o[key], which must be a string / an integer. */
const char *tm_str(json_t *o, const char *key);
long long tm_int(json_t *o, const char *key);

TCase *messages_render_tcase(void);

#endif
