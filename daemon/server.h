/* server.h - the hearthd process: configuration, the loop, signals,
 * the HTTP routes. */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

/* Runs hearthd with its command line; returns the process exit status:
 * 0 after a clean stop, 1 when start-up fails, 2 on a configuration or
 * usage error. */
int server_main(int argc, char **argv);

#endif
