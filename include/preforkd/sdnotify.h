#ifndef PREFORKD_SDNOTIFY_H
#define PREFORKD_SDNOTIFY_H

/* The sd_notify datagram protocol (READY=1, STATUS=..., STOPPING=1) spoken directly:
 * one sendto() on $NOTIFY_SOCKET, no libsystemd needed. Returns 0 when sent, 0 as well
 * when there is no NOTIFY_SOCKET, negative errno on failure. */
int pf_sdnotify(const char *message);

#endif
