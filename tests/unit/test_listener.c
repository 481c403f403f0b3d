/* Unix-domain listeners: what is at the path decides (nothing, a stale socket file, a live
 * socket, something else), mode and owner are applied, a reload shares the socket, and
 * a final stop removes only the file this process bound. No daemon: the listener set is
 * built and used directly, in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "preforkd/config.h"
#include "preforkd/listener.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/preforkd-listener-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A config of one or two listen entries, from YAML ("@DIR@" is the temporary directory). */
static void config(struct pf_config *cfg, const char *yaml)
{
    char text[1024];
    size_t o = 0;
    for (const char *p = yaml; *p && o < sizeof(text) - 80;) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", dir);
            p += 5;
        } else {
            text[o++] = *p++;
        }
    }
    text[o] = '\0';
    char err[256];
    if (pf_config_load_string(cfg, "t.yaml", text, o, err, sizeof(err)) < 0)
        fail_msg("%s", err);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A socket bound at path: listening (live) or not (its file is stale once closed). */
static int bind_unix(const char *path, bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listening)
        assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static void test_binds_with_mode_and_owner(void **state)
{
    (void)state;
    struct passwd *pw = getpwuid(getuid());
    struct group *gr = getgrgid(getgid());
    assert_non_null(pw);
    assert_non_null(gr);
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "balance: reuseport\nlisten:\n  - {address: unix:@DIR@/a.sock, mode: '0640', owner: "
             "%s, group: %s, proxy_protocol: v2}\n  - 127.0.0.1:0\n",
             pw->pw_name, gr->gr_name);
    struct pf_config cfg;
    config(&cfg, yaml);
    struct pf_listeners ls;
    char err[256] = "";
    if (pf_listeners_open(&ls, &cfg, 3, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    char path[128];
    path_of(path, sizeof(path), "a.sock");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(st.st_gid, gr->gr_gid);
    assert_int_equal(ls.addrs[0].proxy, PF_PROXY_V2);
    assert_int_equal(ls.addrs[1].proxy, PF_PROXY_OFF);
    assert_int_equal(pf_listeners_port(&ls, 0), 0);
    assert_true(pf_listeners_port(&ls, 1) > 0);
    /* Under reuseport each slot has a socket of its own for TCP, and the one unix socket
     * (dup'ed) for the unix address. */
    int fds[3][PF_MAX_LISTEN];
    for (uint32_t s = 0; s < 3; s++)
        assert_int_equal(pf_listeners_for_slot(&ls, s, fds[s]), 2);
    struct stat a, b;
    for (uint32_t s = 1; s < 3; s++) {
        assert_int_equal(fstat(fds[0][0], &a), 0);
        assert_int_equal(fstat(fds[s][0], &b), 0);
        assert_int_equal(a.st_ino, b.st_ino); /* the same socket */
        assert_int_equal(fstat(fds[0][1], &a), 0);
        assert_int_equal(fstat(fds[s][1], &b), 0);
        assert_int_not_equal(a.st_ino, b.st_ino);
    }
    assert_int_equal(pf_listeners_set_slots(&ls, 4, err, sizeof(err)), 0);
    assert_int_equal(pf_listeners_set_slots(&ls, 1, err, sizeof(err)), 0);
    assert_int_equal(connect_unix(path), 0);
    /* A final stop: no new connection finds the file. */
    assert_int_equal(pf_listeners_refuse_new(&ls), 0);
    assert_int_equal(connect_unix(path), -ENOENT);
    pf_listeners_close(&ls);
}

static void test_stale_file_is_replaced(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof(path), "stale.sock");
    close(bind_unix(path, false)); /* a socket file whose process is gone */
    assert_int_equal(connect_unix(path), -ECONNREFUSED);
    struct pf_config cfg;
    config(&cfg, "listen: unix:@DIR@/stale.sock\n");
    struct pf_listeners ls;
    char err[256] = "";
    if (pf_listeners_open(&ls, &cfg, 1, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(connect_unix(path), 0);
    pf_listeners_close(&ls);
    /* Closed but not stopped: the file stays, and the next bind replaces it. */
    assert_int_equal(connect_unix(path), -ECONNREFUSED);
    unlink(path);
}

static void test_live_socket_is_in_use(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof(path), "live.sock");
    int live = bind_unix(path, true);
    struct pf_config cfg;
    config(&cfg, "listen:\n  - 127.0.0.1:0\n  - unix:@DIR@/live.sock\n");
    struct pf_listeners ls;
    char err[256] = "";
    assert_int_equal(pf_listeners_open(&ls, &cfg, 2, NULL, err, sizeof(err)), -EADDRINUSE);
    char want[256];
    snprintf(want, sizeof(want),
             "cannot listen on unix:%s: Address already in use (a process is listening on that "
             "socket)",
             path);
    assert_string_equal(err, want);
    /* Its file and its listener are untouched. */
    assert_int_equal(connect_unix(path), 0);
    close(live);
    unlink(path);
}

static void test_other_file_is_left_alone(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof(path), "regular");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep me\n", f);
    fclose(f);
    struct pf_config cfg;
    config(&cfg, "listen: unix:@DIR@/regular\n");
    struct pf_listeners ls;
    char err[256] = "";
    assert_int_equal(pf_listeners_open(&ls, &cfg, 1, NULL, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "the path exists and is not a socket; it is left alone"));
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 8);
    /* A symbolic link to a socket is not followed either. */
    char target[128], link[128];
    path_of(target, sizeof(target), "target.sock");
    path_of(link, sizeof(link), "link.sock");
    close(bind_unix(target, false));
    assert_int_equal(symlink(target, link), 0);
    config(&cfg, "listen: unix:@DIR@/link.sock\n");
    assert_int_equal(pf_listeners_open(&ls, &cfg, 1, NULL, err, sizeof(err)), -EEXIST);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(lstat(target, &st), 0);
    unlink(link);
    unlink(target);
    unlink(path);
}

static void test_unknown_owner_fails_before_touching_the_path(void **state)
{
    (void)state;
    struct pf_config cfg;
    config(&cfg, "listen: {address: unix:@DIR@/o.sock, owner: no-such-user-pf}\n");
    struct pf_listeners ls;
    char err[256] = "";
    assert_true(pf_listeners_open(&ls, &cfg, 1, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "(no user 'no-such-user-pf')"));
    char path[128];
    path_of(path, sizeof(path), "o.sock");
    assert_int_equal(access(path, F_OK), -1);
}

/* A reload shares the socket (same file, same inode, never re-bound); a failed open
 * removes only the files it bound itself. */
static void test_reload_shares_and_failure_cleans_up(void **state)
{
    (void)state;
    struct pf_config cfg;
    config(&cfg, "listen: unix:@DIR@/r.sock\n");
    struct pf_listeners gen1, gen2;
    char err[256] = "";
    if (pf_listeners_open(&gen1, &cfg, 2, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    char path[128], fresh[128], regular[128];
    path_of(path, sizeof(path), "r.sock");
    path_of(fresh, sizeof(fresh), "new.sock");
    path_of(regular, sizeof(regular), "regular");
    struct stat before, after;
    assert_int_equal(lstat(path, &before), 0);
    config(&cfg, "listen:\n  - {address: unix:@DIR@/r.sock, proxy_protocol: v1, mode: '0600'}\n"
                 "  - unix:@DIR@/new.sock\n");
    if (pf_listeners_open(&gen2, &cfg, 2, &gen1, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(lstat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(after.st_mode & 07777, 0600); /* a kept file takes the new mode */
    assert_int_equal(gen2.addrs[0].proxy, PF_PROXY_V1);
    assert_int_equal(gen1.addrs[0].proxy, PF_PROXY_OFF);
    /* The old generation's sockets close; the file and the socket live on in gen2's. */
    pf_listeners_close(&gen1);
    assert_int_equal(connect_unix(path), 0);
    /* A reload that fails on its second address keeps the shared file and removes the
     * one it bound. */
    FILE *f = fopen(regular, "w");
    assert_non_null(f);
    fclose(f);
    struct pf_listeners gen3;
    config(&cfg, "listen:\n  - unix:@DIR@/r.sock\n  - unix:@DIR@/x.sock\n"
                 "  - unix:@DIR@/regular\n");
    assert_int_equal(pf_listeners_open(&gen3, &cfg, 2, &gen2, err, sizeof(err)), -EEXIST);
    char x[128];
    path_of(x, sizeof(x), "x.sock");
    assert_int_equal(access(x, F_OK), -1);
    assert_int_equal(connect_unix(path), 0);
    assert_int_equal(connect_unix(fresh), 0);
    pf_listeners_close(&gen2);
    unlink(path);
    unlink(fresh);
    unlink(regular);
}

static void test_refuse_new_spares_a_replaced_file(void **state)
{
    (void)state;
    struct pf_config cfg;
    config(&cfg, "listen: unix:@DIR@/s.sock\n");
    struct pf_listeners ls;
    char err[256] = "";
    if (pf_listeners_open(&ls, &cfg, 1, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    char path[128];
    path_of(path, sizeof(path), "s.sock");
    /* Someone else took the path meanwhile: the stop must not remove their socket. */
    assert_int_equal(unlink(path), 0);
    int other = bind_unix(path, true);
    assert_int_equal(pf_listeners_refuse_new(&ls), 0);
    assert_int_equal(connect_unix(path), 0);
    pf_listeners_close(&ls);
    close(other);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binds_with_mode_and_owner),
        cmocka_unit_test(test_stale_file_is_replaced),
        cmocka_unit_test(test_live_socket_is_in_use),
        cmocka_unit_test(test_other_file_is_left_alone),
        cmocka_unit_test(test_unknown_owner_fails_before_touching_the_path),
        cmocka_unit_test(test_reload_shares_and_failure_cleans_up),
        cmocka_unit_test(test_refuse_new_spares_a_replaced_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
