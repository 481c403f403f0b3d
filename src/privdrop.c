#include "preforkd/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int pf_privdrop(const char *user, const char *group, char *err, unsigned long errlen)
{
    if (geteuid() != 0 || (!user[0] && !group[0]))
        return 0;
    uid_t uid = 0;
    gid_t gid = 0;
    if (user[0]) {
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            snprintf(err, errlen, "user '%s' does not exist", user);
            return -ENOENT;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (group[0]) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(err, errlen, "group '%s' does not exist", group);
            return -ENOENT;
        }
        gid = gr->gr_gid;
    }
    /* Groups first: once the uid is dropped, changing them is no longer allowed. */
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || (user[0] && setuid(uid) < 0)) {
        snprintf(err, errlen, "cannot drop privileges to %s:%s: %s", user, group, strerror(errno));
        return -EPERM;
    }
    return 0;
}
