#ifndef PREFORKD_PRIVDROP_H
#define PREFORKD_PRIVDROP_H

/* Switches a root process to user (its primary group, or group when given) after the
 * primary has bound the sockets; nothing to do when not root or when both are empty.
 * Returns 0, -ENOENT for an unknown user or group, or -EPERM; err says which. */
int pf_privdrop(const char *user, const char *group, char *err, unsigned long errlen);

#endif
