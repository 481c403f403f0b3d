#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/promcheck.h"
#include "preforkd/counters.h"
#include "preforkd/module.h"

static struct pf_counters_region *r;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pf_counters_new(&r, 64), 0);
    pf_counters_set_current(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pf_counters_set_current(NULL);
    pf_counters_free(&r);
    return 0;
}

/* How many READY entries are called name (0 or 1, if creation is right). */
static int entries_named(const char *name)
{
    int n = 0;
    uint32_t cursor = 0;
    for (const struct pf_counter *c; (c = pf_counters_next(r, &cursor));)
        n += strcmp(c->name, name) == 0;
    return n;
}

static int ready_entries(void)
{
    int n = 0;
    uint32_t cursor = 0;
    while (pf_counters_next(r, &cursor))
        n++;
    return n;
}

/* Forks a child running fn; its exit status is fn's return value. */
static pid_t child(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    return pid;
}

static void reap(pid_t pid, int want_signal)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (want_signal) {
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), want_signal);
    } else {
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

static void test_create_and_look_up(void **state)
{
    (void)state;
    struct pf_counter *a = pf_counter("hits");
    assert_non_null(a);
    assert_int_equal(pf_counter_value(a), 0);
    assert_int_equal(pf_counter_add(a, 1), 1);
    assert_int_equal(pf_counter_add(a, 41), 42);
    struct pf_counter *b = pf_counter("misses");
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(pf_counter("hits"), a); /* the same entry, not a new one */
    assert_int_equal(pf_counter_value(a), 42);
    assert_int_equal(pf_counter_value(b), 0);
    assert_int_equal(ready_entries(), 2);
    /* Iteration is in creation order. */
    uint32_t cursor = 0;
    assert_ptr_equal(pf_counters_next(r, &cursor), a);
    assert_ptr_equal(pf_counters_next(r, &cursor), b);
    assert_null(pf_counters_next(r, &cursor));
    assert_null(pf_counters_next(r, &cursor));
}

static void test_names(void **state)
{
    (void)state;
    char longest[PF_COUNTER_NAME_MAX], too_long[PF_COUNTER_NAME_MAX + 1];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(too_long, 'y', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    static const char *good[] = {"a", "Z", "0", "count", "app.requests-ok_2", "..", "-"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(pf_counters_name_valid(good[i]));
        assert_non_null(pf_counter(good[i]));
    }
    assert_non_null(pf_counter(longest));
    static const char *bad[] = {"",     "a b",         "a/b",  "a\"b", "a\\b",
                                "a\nb", "caf\xc3\xa9", "a{b}", "a=b",  "a,b"};
    struct pf_counter *c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(pf_counters_name_valid(bad[i]));
        assert_null(pf_counter(bad[i]));
        assert_int_equal(pf_counters_get(r, bad[i], &c), -EINVAL);
    }
    assert_false(pf_counters_name_valid(too_long));
    assert_null(pf_counter(too_long));
    assert_false(pf_counters_name_valid(NULL));
    assert_null(pf_counter(NULL));
    assert_int_equal(ready_entries(), sizeof(good) / sizeof(good[0]) + 1);
}

static void test_capacity(void **state)
{
    (void)state;
    struct pf_counters_region *small = NULL;
    assert_int_equal(pf_counters_new(&small, 0), -EINVAL);
    assert_int_equal(pf_counters_new(&small, PF_COUNTERS_MAX_CAPACITY + 1), -EINVAL);
    assert_null(small);
    assert_int_equal(pf_counters_new(&small, 3), 0);
    struct pf_counter *c[4];
    assert_int_equal(pf_counters_get(small, "a", &c[0]), 0);
    assert_int_equal(pf_counters_get(small, "b", &c[1]), 0);
    assert_int_equal(pf_counters_get(small, "c", &c[2]), 0);
    assert_int_equal(pf_counters_get(small, "d", &c[3]), -ENOSPC);
    assert_int_equal(pf_counters_get(small, "b", &c[3]), 0); /* full, yet existing names work */
    assert_ptr_equal(c[3], c[1]);
    pf_counters_set_current(small);
    assert_null(pf_counter("e"));
    assert_non_null(pf_counter("c"));
    pf_counters_set_current(NULL);
    assert_null(pf_counter("c")); /* no region in this process */
    pf_counters_free(&small);
    assert_null(small);
    pf_counters_free(&small); /* NULL is fine */
}

/* ---- several processes ------------------------------------------------------------- */

#define ADDERS 4
/* Enough adds that the adders overlap, even on two cores: a few thousand fit in one time
 * slice, and a non-atomic add then loses nothing. */
#define ADDS   3000000
#define SHARED 40 /* names that every adder creates, each in its own order */
#define MANY   50 /* names only the namer creates */

struct start {
    int gate[2]; /* a pipe: EOF, when the parent closes its write end, starts every child */
    int who;
};

static void wait_gate(const int gate[2])
{
    char byte;
    close(gate[1]);
    while (read(gate[0], &byte, 1) > 0)
        ;
}

static int adder(void *arg)
{
    const struct start *s = arg;
    wait_gate(s->gate);
    for (int k = 0; k < SHARED; k++) {
        char name[16];
        snprintf(name, sizeof(name), "shared%d", (k + s->who * 7) % SHARED);
        struct pf_counter *c = pf_counter(name);
        if (!c || strcmp(c->name, name) != 0)
            return 1;
        pf_counter_add(c, 1);
    }
    struct pf_counter *hits = pf_counter("hits");
    if (!hits)
        return 2;
    for (int i = 0; i < ADDS; i++)
        pf_counter_add(hits, 1);
    return 0;
}

static int namer(void *arg)
{
    const struct start *s = arg;
    wait_gate(s->gate);
    for (int k = 0; k < MANY; k++) {
        char name[16];
        snprintf(name, sizeof(name), "own%d", k);
        struct pf_counter *c = pf_counter(name);
        if (!c || pf_counter_add(c, (uint64_t)k) != (uint64_t)k)
            return 1;
    }
    return 0;
}

static void test_processes_create_the_same_name_once(void **state)
{
    (void)state;
    struct pf_counters_region *big = NULL;
    assert_int_equal(pf_counters_new(&big, 128), 0);
    struct pf_counters_region *keep = r;
    r = big;
    pf_counters_set_current(big);
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    struct start starts[ADDERS + 1];
    pid_t pids[ADDERS + 1];
    for (int i = 0; i <= ADDERS; i++) {
        starts[i] = (struct start){.gate = {gate[0], gate[1]}, .who = i};
        pids[i] = child(i < ADDERS ? adder : namer, &starts[i]);
    }
    close(gate[1]);
    close(gate[0]);
    for (int i = 0; i <= ADDERS; i++)
        reap(pids[i], 0);
    struct pf_counter *hits;
    assert_int_equal(pf_counters_get(big, "hits", &hits), 0);
    assert_int_equal(pf_counter_value(hits), ADDERS * ADDS);
    assert_int_equal(entries_named("hits"), 1);
    for (int k = 0; k < SHARED; k++) {
        char name[16];
        snprintf(name, sizeof(name), "shared%d", k);
        assert_int_equal(entries_named(name), 1);
        struct pf_counter *c;
        assert_int_equal(pf_counters_get(big, name, &c), 0);
        assert_int_equal(pf_counter_value(c), ADDERS);
    }
    assert_int_equal(ready_entries(), 1 + SHARED + MANY);
    r = keep;
    pf_counters_set_current(r);
    pf_counters_free(&big);
}

/* Adds one at a time for ever, telling the parent each new value. */
static int endless_adder(void *arg)
{
    int report = *(const int *)arg;
    struct pf_counter *c = pf_counter("survivor");
    if (!c)
        return 1;
    for (;;) {
        uint64_t v = pf_counter_add(c, 1);
        if (write(report, &v, sizeof(v)) != (ssize_t)sizeof(v))
            return 2;
    }
}

static int finite_adder(void *arg)
{
    int report = *(const int *)arg;
    struct pf_counter *c = pf_counter("survivor");
    if (!c)
        return 1;
    for (int i = 0; i < 500; i++)
        pf_counter_add(c, 1);
    uint64_t done = 1;
    if (write(report, &done, sizeof(done)) != (ssize_t)sizeof(done))
        return 2;
    pause();
    return 3;
}

static void test_values_survive_a_killed_worker(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* Killed mid-run: what it added is all there. It may have added one more than it
     * reported, between its add and its write. */
    pid_t pid = child(endless_adder, &p[1]);
    uint64_t last = 0;
    while (last < 2000)
        assert_int_equal(read(p[0], &last, sizeof(last)), sizeof(last));
    assert_int_equal(kill(pid, SIGKILL), 0);
    reap(pid, SIGKILL);
    close(p[1]);
    for (uint64_t v; read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v);)
        last = v;
    close(p[0]);
    struct pf_counter *c = pf_counter("survivor");
    assert_non_null(c);
    uint64_t total = pf_counter_value(c);
    assert_true(total == last || total == last + 1);
    /* Killed after its adds: exactly what it added; a successor goes on from there. */
    assert_int_equal(pipe(p), 0);
    pid = child(finite_adder, &p[1]);
    uint64_t done = 0;
    assert_int_equal(read(p[0], &done, sizeof(done)), sizeof(done));
    assert_int_equal(kill(pid, SIGKILL), 0);
    reap(pid, SIGKILL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(pf_counter_value(c), total + 500);
    assert_int_equal(pf_counter_add(pf_counter("survivor"), 1), total + 501);
    assert_int_equal(entries_named("survivor"), 1);
}

/* A claim left by a process that died between its swap and READY is taken over; one held
 * by a live process makes the lookup give up rather than risk a second entry. */
static void test_stale_claims(void **state)
{
    (void)state;
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    reap(dead, 0);
    atomic_store(&r->entries[0].state, pf_counter_state_word(PF_COUNTER_CLAIMING, dead));
    memcpy(r->entries[0].name, "half", 4);
    struct pf_counter *c;
    assert_int_equal(pf_counters_get(r, "taken", &c), 0);
    assert_ptr_equal(c, &r->entries[0]);
    assert_string_equal(c->name, "taken");
    atomic_store(&r->entries[1].state, pf_counter_state_word(PF_COUNTER_CLAIMING, getpid()));
    assert_int_equal(pf_counters_get(r, "taken", &c), 0); /* found before the stuck entry */
    assert_int_equal(pf_counters_get(r, "later", &c), -ETIMEDOUT);
    assert_null(pf_counter("later"));
    assert_int_equal(ready_entries(), 1);
}

static int look_up_hits(void *arg)
{
    (void)arg;
    struct pf_counter *c = pf_counter("hits");
    return c ? (int)(c - r->entries) : 99;
}

/* A lookup that meets an entry another (live) process is claiming waits for it: the
 * name may be its own. Here the parent is that process, and names the entry "hits" a
 * moment after the child started looking; whether the child waited or came later, it
 * must find entry 0 rather than create a second "hits". */
static void test_lookup_waits_for_a_claim_in_progress(void **state)
{
    (void)state;
    struct pf_counter *e = &r->entries[0];
    atomic_store(&e->state, pf_counter_state_word(PF_COUNTER_CLAIMING, getpid()));
    pid_t pid = child(look_up_hits, NULL);
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    strcpy(e->name, "hits");
    atomic_store(&e->state, pf_counter_state_word(PF_COUNTER_READY, 0));
    reap(pid, 0); /* exit status 0: entry 0 */
    assert_int_equal(entries_named("hits"), 1);
}

/* ---- the file descriptor ----------------------------------------------------------- */

static void test_attach_from_fd(void **state)
{
    (void)state;
    pf_counter_add(pf_counter("hits"), 7);
    struct pf_counters_region *other = NULL;
    assert_int_equal(pf_counters_from_fd(&other, pf_counters_fd(r)), 0);
    assert_int_not_equal(pf_counters_fd(other), pf_counters_fd(r));
    assert_int_equal(other->capacity, 64);
    struct pf_counter *c;
    assert_int_equal(pf_counters_get(other, "hits", &c), 0);
    assert_ptr_not_equal(c, pf_counter("hits")); /* another mapping... */
    assert_int_equal(pf_counter_value(c), 7);    /* ...of the same memory */
    pf_counter_add(c, 3);
    assert_int_equal(pf_counter_value(pf_counter("hits")), 10);
    assert_int_equal(pf_counters_get(other, "new", &c), 0);
    assert_int_equal(entries_named("new"), 1);
    /* The descriptor is close-on-exec until a hand-over clears it. */
    assert_true(fcntl(pf_counters_fd(other), F_GETFD) & FD_CLOEXEC);
    /* Each holder's view is its own: the memory outlives the creator's. */
    pf_counters_free(&r);
    pf_counters_set_current(other);
    assert_int_equal(pf_counter_value(pf_counter("hits")), 10);
    r = other;
}

/* A memfd holding a copy of r's bytes, with byte `at` replaced by `with`, truncated to
 * size and sealed when asked. */
static int forged(size_t at, uint8_t with, size_t size, bool seal)
{
    int fd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    size_t n = size < r->size ? size : r->size;
    uint8_t *copy = (uint8_t *)r->header;
    assert_int_equal(pwrite(fd, copy, n, 0), (ssize_t)n);
    if (at < size)
        assert_int_equal(pwrite(fd, &with, 1, (off_t)at), 1);
    if (seal)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    return fd;
}

static void test_attach_refuses_what_is_not_a_region(void **state)
{
    (void)state;
    pf_counter_add(pf_counter("x"), 1);
    struct pf_counters_region *other = NULL;
    const uint8_t *h = (const uint8_t *)r->header;
    size_t nowhere = SIZE_MAX;
    struct {
        int fd, rc;
    } cases[] = {
        {forged(nowhere, 0, r->size, true), 0}, /* the control: a faithful copy attaches */
        {forged(0, h[0] ^ 1, r->size, true), -EINVAL},
        {forged(offsetof(struct pf_counters_header, version), PF_COUNTERS_VERSION + 1, r->size,
                true),
         -EPROTONOSUPPORT},
        {forged(offsetof(struct pf_counters_header, entry_size), 64, r->size, true), -EINVAL},
        {forged(offsetof(struct pf_counters_header, capacity), 65, r->size, true), -EINVAL},
        {forged(nowhere, 0, r->size - sizeof(struct pf_counter), true), -EINVAL},
        {forged(nowhere, 0, r->size + 4096, true), -EINVAL},
        {forged(nowhere, 0, 16, true), -EINVAL},
        {forged(nowhere, 0, r->size, false), -EINVAL}, /* could shrink under us: SIGBUS */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = pf_counters_from_fd(&other, cases[i].fd);
        if (rc != cases[i].rc)
            fail_msg("case %zu: %d, not %d", i, rc, cases[i].rc);
        if (rc == 0) {
            struct pf_counter *c;
            assert_int_equal(pf_counters_get(other, "x", &c), 0);
            assert_int_equal(pf_counter_value(c), 1);
            pf_counters_free(&other);
        }
        assert_null(other);
        close(cases[i].fd);
    }
    /* Not a memfd at all: a pipe. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pf_counters_from_fd(&other, p[0]), -EINVAL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(pf_counters_from_fd(&other, -1), -EBADF);
}

/* ---- /metrics ---------------------------------------------------------------------- */

static char text[8192];

static size_t render(void)
{
    struct pf_buf b;
    pf_buf_init(&b, text, sizeof(text) - 1);
    pf_counters_render(r, &b);
    assert_false(b.full);
    text[b.len] = '\0';
    char err[256];
    if (promcheck(text, b.len, err, sizeof(err)) < 0)
        fail_msg("%s\n%s", err, text);
    return b.len;
}

static void test_render(void **state)
{
    (void)state;
    render();
    assert_string_equal(text, "# HELP preforkd_counter_total Shared counters that handlers and "
                              "modules add to, by name.\n"
                              "# TYPE preforkd_counter_total counter\n");
    pf_counter_add(pf_counter("count"), 3);
    pf_counter_add(pf_counter("app.cache-miss_2"), UINT64_C(18446744073709551615));
    pf_counter("zero");
    render();
    assert_true(promsum(text, "preforkd_counter_total", "name=\"count\"") == 3);
    assert_true(promsum(text, "preforkd_counter_total", "name=\"zero\"") == 0);
    assert_non_null(
        strstr(text, "preforkd_counter_total{name=\"app.cache-miss_2\"} 18446744073709551615\n"));
    /* A region from another binary may hold names this one refuses: escaped, still
     * valid text, and a name without its NUL stops at the entry's end. */
    struct pf_counter *e = &r->entries[3];
    strcpy(e->name, "q\"b\\s\nn");
    atomic_store(&e->value, 5);
    atomic_store(&e->state, pf_counter_state_word(PF_COUNTER_READY, 0));
    e = &r->entries[4];
    memset(e->name, 'L', sizeof(e->name));
    atomic_store(&e->state, pf_counter_state_word(PF_COUNTER_READY, 0));
    render();
    assert_non_null(strstr(text, "preforkd_counter_total{name=\"q\\\"b\\\\s\\nn\"} 5\n"));
    char full[PF_COUNTER_NAME_MAX + 1];
    memset(full, 'L', PF_COUNTER_NAME_MAX);
    full[PF_COUNTER_NAME_MAX] = '\0';
    assert_non_null(strstr(text, full));
    /* Too little room: the buffer says so. */
    struct pf_buf small;
    char tiny[64];
    pf_buf_init(&small, tiny, sizeof(tiny));
    pf_counters_render(r, &small);
    assert_true(small.full);
}

static void test_layout(void **state)
{
    (void)state;
    /* Adds from all workers at once: no two counters share a cache line. */
    assert_int_equal(_Alignof(struct pf_counter), 64);
    assert_int_equal(sizeof(struct pf_counter) % 64, 0);
    assert_int_equal((uintptr_t)r->entries % 64, 0);
    assert_int_equal(r->header->magic, PF_COUNTERS_MAGIC);
    assert_int_equal(r->header->version, PF_COUNTERS_VERSION);
    assert_int_equal(r->size, sizeof(struct pf_counters_header) + 64 * sizeof(struct pf_counter));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_look_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_create_the_same_name_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_survive_a_killed_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_waits_for_a_claim_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_from_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_refuses_what_is_not_a_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
