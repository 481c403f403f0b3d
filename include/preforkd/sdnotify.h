#ifndef PREFORKD_SDNOTIFY_H
#define PREFORKD_SDNOTIFY_H

/* The sd_notify datagram protocol (READY=1, STATUS=..., STOPPING=1) spoken directly:
 * one sendto() on socket_path ($NOTIFY_SOCKET), no libsystemd needed. Returns 0 when
 * sent, 0 as well when socket_path is empty, negative errno on failure. */
int pf_sdnotify(const char *socket_path, const char *message);

#endif
