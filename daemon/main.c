/* hearthd - the hearth daemon. Everything lives in daemon/server.c so the
 * tests can link it; this file is only the entry point. */
#include "server.h"

int main(int argc, char **argv) { return server_main(argc, argv); }
