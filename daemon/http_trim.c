/* http_trim.c - the heap's free memory back to the system once the server
 * is quiet.
 *
 * glibc keeps what is freed for reuse: after a burst (a thousand
 * connections' memory pools, a full queue's bodies, prompts and streams)
 * the resident size stays at the burst's level, three times the idle one
 * after tests/bench/soak.py, although nothing leaked. So once no request
 * has been in flight for HTTP_TRIM_DELAY_MS after one ended or a
 * connection closed, malloc_trim(0) hands the free pages of every arena
 * back. It runs on the loop thread at most once per delay and takes a few
 * milliseconds for a heap of tens of MB; a server that is never quiet is
 * never trimmed (what it freed is about to be reused). Without glibc this
 * does nothing. */
#include "http_internal.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#define HTTP_TRIM_DELAY_MS 1000

static void on_trim(uv_timer_t *t)
{
    http_server *s = t->data;
    if (s->inflight || s->stopping)
        return; /* the next request to end pokes again */
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

void http_trim_init(http_server *s)
{
    uv_timer_init(s->loop, &s->trim_timer);
    s->trim_timer.data = s;
}

void http_trim_poke(http_server *s)
{
    if (s->inflight == 0 && !s->stopping && !uv_is_active((uv_handle_t *)&s->trim_timer))
        uv_timer_start(&s->trim_timer, on_trim, HTTP_TRIM_DELAY_MS, 0);
}
