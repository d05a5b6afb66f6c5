/* webui.h - the chat page: GET / and the files it loads (docs/chat-page.md).
 *
 * The page's files live in web/ and are compiled into hearthd as byte
 * arrays (web/embed.c writes daemon/webui_files.c at build time), so the
 * page needs nothing at run time but the binary: no file system, no CDN.
 * The page is a client of the public API (/v1/models, /v1/chat/completions)
 * like any other; this module only serves its files, with a strict
 * Content-Security-Policy. Whether they are served at all is [server]
 * webui, read with door_auto_on (door.h). */
#ifndef HEARTH_WEBUI_H
#define HEARTH_WEBUI_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* One embedded file (the generated daemon/webui_files.c holds the table). */
typedef struct webui_file {
    const char *name;           /* file name in web/, e.g. "chat.js" */
    const unsigned char *data;
    size_t len;
    const char *etag;           /* quoted strong validator of the bytes */
} webui_file;

extern const webui_file webui_files[];
extern const size_t webui_n_files;

/* Answer GET or HEAD of "/" (index.html) or "/NAME" (an embedded file) with
 * the file, or 304 when the request's If-None-Match names its ETag; 404 in
 * the API's error shape when `enabled` is false or no file has that name. */
int webui_serve(http_req *r, bool enabled);

#endif
