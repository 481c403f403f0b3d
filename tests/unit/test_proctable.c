/* The primary's rules, with a fake clock and no processes: each test drives the table
 * with events (a fork happened, a worker is ready, a worker died, time passed) and
 * checks the actions it returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "preforkd/proctable.h"

#define CAP 64

static const struct pf_proctable_rules rules = {
    .worker_timeout_ms = 30000, .shutdown_timeout_ms = 30000, .min_uptime_ms = 1000, .cover = true};

struct world {
    struct pf_proctable t;
    struct pf_action a[CAP];
    size_t n;
    pid_t next_pid;
    int64_t now;
};

static size_t count(const struct world *w, enum pf_action_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < w->n; i++)
        c += w->a[i].kind == k;
    return c;
}

static const struct pf_action *find(const struct world *w, enum pf_action_kind k)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->a[i].kind == k)
            return &w->a[i];
    return NULL;
}

/* What the primary's loop does with SPAWN: fork (here: invent a pid) and record it. */
static void do_spawns(struct world *w)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->a[i].kind == PF_ACT_SPAWN)
            assert_int_equal(pf_proctable_add(&w->t, ++w->next_pid, w->a[i].slot, 0, -1, w->now, 0),
                             0);
}

static void decide(struct world *w)
{
    w->n = pf_proctable_decide(&w->t, w->now, w->a, CAP);
    do_spawns(w);
}

static bool tick(struct world *w)
{
    bool vouch;
    w->n = pf_proctable_tick(&w->t, w->now, &vouch, w->a, CAP);
    do_spawns(w);
    return vouch;
}

static void ready(struct world *w, pid_t pid)
{
    w->n = pf_proctable_ready(&w->t, pid, w->now, w->a, CAP);
}

static struct pf_exit died(struct world *w, pid_t pid)
{
    struct pf_exit e;
    w->n = pf_proctable_exited(&w->t, pid, w->now, &e, w->a, CAP);
    return e;
}

static pid_t pid_of(struct world *w, uint32_t slot, uint32_t gen)
{
    for (size_t i = 0; i < w->t.nprocs; i++) {
        const struct pf_proc *p = &w->t.procs[i];
        if (p->pid && p->slot == slot && p->gen == gen && p->state != PF_PROC_DRAINING &&
            !p->retiring)
            return p->pid;
    }
    return 0;
}

/* A world with n slots whose workers all serve. */
static void start(struct world *w, uint32_t n)
{
    memset(w, 0, sizeof(*w));
    w->next_pid = 100;
    w->now = 1000000;
    assert_int_equal(pf_proctable_init(&w->t, &rules, 1, n), 0);
    decide(w);
    assert_int_equal(count(w, PF_ACT_SPAWN), n);
    for (uint32_t s = 0; s < n; s++)
        ready(w, pid_of(w, s, 1));
    decide(w);
    assert_int_equal(count(w, PF_ACT_READY), 1);
}

static void stop_world(struct world *w)
{
    pf_proctable_free(&w->t);
}

static void test_backoff_sequence(void **state)
{
    (void)state;
    assert_int_equal(pf_proctable_backoff(0, 5000, 1000), 0);
    /* A long run after a crash loop resets the backoff. */
    assert_int_equal(pf_proctable_backoff(PF_BACKOFF_MAX_MS, 1000, 1000), 0);
    uint32_t b = 0;
    uint32_t expect[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        b = pf_proctable_backoff(b, 10, 1000);
        assert_int_equal(b, expect[i]);
    }
    assert_int_equal(pf_proctable_backoff(0, 0, 0), 0); /* min_uptime 0: never */
}

static void test_ready_once_every_slot_serves(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    w.next_pid = 100;
    assert_int_equal(pf_proctable_init(&w.t, &rules, 1, 2), 0);
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 2);
    decide(&w);
    assert_int_equal(w.n, 0); /* nothing twice */
    ready(&w, 101);
    decide(&w);
    assert_null(find(&w, PF_ACT_READY));
    ready(&w, 102);
    decide(&w);
    assert_non_null(find(&w, PF_ACT_READY));
    decide(&w);
    assert_null(find(&w, PF_ACT_READY)); /* announced once */
    stop_world(&w);
}

static void test_crash_loop_backs_off_then_a_healthy_run_resets(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    uint32_t want[] = {0, 100, 200, 400};
    /* The first death after a healthy run respawns at once, then quick deaths back off. */
    w.now += 5000;
    for (int round = 0; round < 4; round++) {
        pid_t victim = pid_of(&w, 1, 1);
        struct pf_exit e = died(&w, victim);
        assert_true(e.counted);
        assert_int_equal(e.backoff_ms, want[round]);
        if (want[round]) {
            w.now += want[round] - 1;
            decide(&w);
            assert_int_equal(count(&w, PF_ACT_SPAWN), 0); /* not a millisecond early */
            assert_true(pf_proctable_next_ms(&w.t, w.now) <= 1);
            w.now += 1;
        }
        decide(&w);
        assert_int_equal(count(&w, PF_ACT_SPAWN), 1);
        assert_int_equal(find(&w, PF_ACT_SPAWN)->slot, 1);
        w.now += 10; /* dies quickly */
    }
    /* A run of min_uptime resets it. */
    w.now += 1000;
    assert_int_equal(died(&w, pid_of(&w, 1, 1)).backoff_ms, 0);
    assert_int_equal(w.t.slots[1].restarts, 5);
    stop_world(&w);
}

static void test_slot_is_covered_after_100_ms_without_a_worker(void **state)
{
    (void)state;
    struct world w;
    start(&w, 3);
    w.now += 5000;
    assert_int_equal(died(&w, pid_of(&w, 1, 1)).backoff_ms, 0); /* after a healthy run */
    decide(&w);
    int64_t unserved = w.now;
    w.now += 10;
    assert_int_equal(died(&w, pid_of(&w, 1, 1)).backoff_ms, 100); /* quick death: backoff */
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 0);
    assert_int_equal(count(&w, PF_ACT_COVER), 0);
    w.now = unserved + PF_COVER_AFTER_MS - 1;
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_COVER), 0);
    assert_int_equal(pf_proctable_next_ms(&w.t, w.now), 1);
    w.now += 1;
    decide(&w);
    const struct pf_action *c = find(&w, PF_ACT_COVER);
    assert_non_null(c);
    assert_int_equal(c->slot, 1);
    assert_int_equal(c->pid, 0); /* every serving worker of the generation */
    assert_true(pf_proctable_slot_covered(&w.t, 1));
    /* A worker that becomes ready while slot 1 is covered joins the cover. */
    w.now += 1;
    died(&w, pid_of(&w, 2, 1));
    decide(&w);
    pid_t two = pid_of(&w, 2, 1);
    ready(&w, two);
    c = find(&w, PF_ACT_COVER);
    assert_non_null(c);
    assert_int_equal(c->pid, two);
    assert_int_equal(c->slot, 1);
    /* Slot 1 is served again: covering ends. */
    w.now = unserved + 10 + 100;
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 1);
    ready(&w, pid_of(&w, 1, 1));
    decide(&w);
    assert_non_null(find(&w, PF_ACT_UNCOVER));
    assert_false(pf_proctable_slot_covered(&w.t, 1));
    stop_world(&w);
}

static void test_covering_only_with_reuseport(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    w.t.rules.cover = false;
    w.now += 10;
    died(&w, pid_of(&w, 1, 1));
    w.now += 1000;
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_COVER), 0);
    stop_world(&w);
}

static void test_reload_promotes_only_when_every_new_worker_serves(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    pid_t old0 = pid_of(&w, 0, 1), old1 = pid_of(&w, 1, 1);
    assert_int_equal(pf_proctable_begin_reload(&w.t, 2, 2, &rules, w.now), 0);
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 2);
    ready(&w, pid_of(&w, 0, 2));
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_DRAIN), 0); /* old ones serve on */
    assert_null(find(&w, PF_ACT_PROMOTED));
    w.now += 7;
    ready(&w, pid_of(&w, 1, 2));
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_DRAIN), 2);
    for (size_t i = 0; i < w.n; i++)
        if (w.a[i].kind == PF_ACT_DRAIN)
            assert_true(w.a[i].pid == old0 || w.a[i].pid == old1);
    const struct pf_action *p = find(&w, PF_ACT_PROMOTED);
    assert_non_null(p);
    assert_int_equal(p->gen, 2);
    assert_int_equal(p->value, 7);
    assert_false(w.t.reloading);
    assert_int_equal(pf_proctable_count(&w.t, 1, false), 2); /* draining, not gone */
    died(&w, old0);
    died(&w, old1);
    assert_int_equal(pf_proctable_count(&w.t, 1, false), 0);
    stop_world(&w);
}

static void test_reload_abandoned_when_a_new_worker_dies(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    assert_int_equal(pf_proctable_begin_reload(&w.t, 2, 3, &rules, w.now), 0);
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 3);
    ready(&w, pid_of(&w, 0, 2));
    struct pf_exit e = died(&w, pid_of(&w, 1, 2));
    assert_true(e.abandoned);
    assert_false(e.counted);
    /* The other new workers are told to go, and generation 1 is current again. */
    assert_int_equal(count(&w, PF_ACT_TERM), 2);
    assert_non_null(find(&w, PF_ACT_ABANDONED));
    assert_int_equal(w.t.gen, 1);
    assert_int_equal(w.t.nslots, 2);
    decide(&w);
    assert_int_equal(w.n, 0); /* the old generation serves: nothing to do */
    stop_world(&w);
}

static void test_reload_abandoned_when_not_serving_in_time(void **state)
{
    (void)state;
    struct world w;
    start(&w, 1);
    assert_int_equal(pf_proctable_begin_reload(&w.t, 2, 1, &rules, w.now), 0);
    decide(&w);
    w.now += rules.worker_timeout_ms;
    tick(&w);
    assert_null(find(&w, PF_ACT_ABANDONED));
    w.now += 1;
    tick(&w);
    const struct pf_action *a = find(&w, PF_ACT_ABANDONED);
    assert_non_null(a);
    assert_int_equal(a->why, PF_WHY_NEW_GEN_SLOW);
    assert_int_equal(count(&w, PF_ACT_TERM), 1);
    assert_int_equal(w.t.gen, 1);
    stop_world(&w);
}

static void test_recycling_one_slot_at_a_time(void **state)
{
    (void)state;
    struct world w;
    start(&w, 3);
    for (size_t i = 0; i < w.t.nprocs; i++) {
        w.t.procs[i].request_limit = 10;
        w.t.procs[i].requests = 50; /* all three over their limit */
        w.t.procs[i].heartbeat_ms = w.now;
    }
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 1);
    uint32_t slot = find(&w, PF_ACT_SPAWN)->slot;
    assert_int_equal(find(&w, PF_ACT_SPAWN)->why, PF_WHY_RECYCLE_REQS);
    pid_t old = find(&w, PF_ACT_SPAWN)->pid;
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 0); /* one at a time */
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_DRAIN), 0); /* the replacement does not serve yet */
    ready(&w, pid_of(&w, slot, 1));
    decide(&w);
    const struct pf_action *d = find(&w, PF_ACT_DRAIN);
    assert_non_null(d);
    assert_int_equal(d->pid, old);
    assert_int_equal(d->why, PF_WHY_RECYCLED);
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 1); /* the next slot */
    assert_int_not_equal(find(&w, PF_ACT_SPAWN)->slot, slot);
    stop_world(&w);
}

static void test_recycling_by_memory_and_a_replacement_that_dies(void **state)
{
    (void)state;
    struct world w;
    start(&w, 1);
    w.t.rules.max_memory = 1000;
    w.t.procs[0].rss = 2000;
    w.t.procs[0].heartbeat_ms = w.now;
    pid_t old = w.t.procs[0].pid;
    tick(&w);
    assert_int_equal(find(&w, PF_ACT_SPAWN)->why, PF_WHY_RECYCLE_MEM);
    assert_int_equal(find(&w, PF_ACT_SPAWN)->value, 2000);
    struct pf_exit e = died(&w, pid_of(&w, 0, 1));
    assert_true(e.replacement);
    assert_false(e.counted);
    assert_int_equal(pid_of(&w, 0, 1), old); /* the old worker is the occupant again */
    stop_world(&w);
}

static void test_watchdog_aborts_then_kills_a_hung_worker(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    int64_t hung_since = w.now;
    for (size_t i = 0; i < w.t.nprocs; i++)
        w.t.procs[i].heartbeat_ms = hung_since;
    pid_t victim = pid_of(&w, 0, 1);
    w.now = hung_since + rules.worker_timeout_ms;
    w.t.procs[1].heartbeat_ms = w.now; /* slot 1 is fine */
    assert_true(tick(&w));
    assert_int_equal(count(&w, PF_ACT_ABORT), 0);
    w.now += 1;
    w.t.procs[1].heartbeat_ms = w.now;
    assert_true(tick(&w)); /* the primary handles it: systemd is still pinged */
    assert_int_equal(count(&w, PF_ACT_ABORT), 1);
    assert_int_equal(find(&w, PF_ACT_ABORT)->pid, victim);
    struct pf_census c;
    pf_proctable_census(&w.t, w.now, &c);
    assert_int_equal(c.stuck, 1);
    assert_int_equal(c.serving, 1);
    assert_true(c.degraded);
    w.now += PF_ABORT_GRACE_MS - 1;
    w.t.procs[1].heartbeat_ms = w.now;
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 0);
    w.now += 1;
    w.t.procs[1].heartbeat_ms = w.now;
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 1);
    assert_int_equal(find(&w, PF_ACT_KILL)->why, PF_WHY_IGNORED_ABORT);
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 0); /* once */
    /* A worker that outlives SIGKILL: the primary stops vouching for the service. */
    w.now = hung_since + rules.worker_timeout_ms + 2 * PF_ABORT_GRACE_MS + 1;
    w.t.procs[1].heartbeat_ms = w.now;
    assert_false(tick(&w));
    stop_world(&w);
}

static void test_watchdog_vouch_rule(void **state)
{
    (void)state;
    assert_true(pf_proctable_vouches(0, 30000));
    assert_true(pf_proctable_vouches(1999, 30000));
    assert_true(pf_proctable_vouches(2000, 30000));  /* stale: being watched */
    assert_true(pf_proctable_vouches(31000, 30000)); /* SIGABRT sent */
    assert_true(pf_proctable_vouches(36000, 30000)); /* SIGKILL sent */
    assert_true(pf_proctable_vouches(40000, 30000));
    assert_false(pf_proctable_vouches(40001, 30000));
}

static void test_drain_deadline_kills(void **state)
{
    (void)state;
    struct world w;
    start(&w, 1);
    assert_int_equal(pf_proctable_begin_reload(&w.t, 2, 1, &rules, w.now), 0);
    decide(&w);
    ready(&w, pid_of(&w, 0, 2));
    decide(&w);
    pid_t old = find(&w, PF_ACT_DRAIN)->pid;
    for (size_t i = 0; i < w.t.nprocs; i++)
        w.t.procs[i].heartbeat_ms = w.now + rules.shutdown_timeout_ms + 1;
    w.now += rules.shutdown_timeout_ms;
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 0);
    w.now += 1;
    tick(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 1);
    assert_int_equal(find(&w, PF_ACT_KILL)->pid, old);
    assert_int_equal(find(&w, PF_ACT_KILL)->why, PF_WHY_DRAIN_TIMEOUT);
    stop_world(&w);
}

static void test_stop_deadlines(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    w.n = pf_proctable_stop(&w.t, true, 30000, w.now, w.a, CAP);
    assert_int_equal(count(&w, PF_ACT_DRAIN), 2);
    /* A second graceful stop changes nothing; a fast one overrides it. */
    assert_int_equal(pf_proctable_stop(&w.t, true, 30000, w.now, w.a, CAP), 0);
    w.n = pf_proctable_stop(&w.t, false, 3000, w.now, w.a, CAP);
    assert_int_equal(count(&w, PF_ACT_TERM), 2);
    assert_int_equal(pf_proctable_stop(&w.t, false, 3000, w.now, w.a, CAP), 0);
    died(&w, pid_of(&w, 0, 1) ? pid_of(&w, 0, 1) : w.t.procs[0].pid);
    assert_false(find(&w, PF_ACT_SPAWN)); /* no respawn while stopping */
    w.now += 2999;
    decide(&w);
    assert_int_equal(w.n, 0);
    w.now += 1;
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 1);
    assert_int_equal(find(&w, PF_ACT_KILL)->why, PF_WHY_STOP_TIMEOUT);
    decide(&w);
    assert_int_equal(w.n, 0);
    w.now += PF_KILL_REPEAT_MS;
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_KILL), 1); /* again, until it is gone */
    stop_world(&w);
}

static void test_ttin_ttou(void **state)
{
    (void)state;
    struct world w;
    start(&w, 2);
    size_t n;
    assert_int_equal(pf_proctable_set_slots(&w.t, 3, w.now, w.a, CAP, &n), 0);
    w.n = n;
    assert_int_equal(n, 0);
    decide(&w);
    assert_int_equal(count(&w, PF_ACT_SPAWN), 1);
    assert_int_equal(find(&w, PF_ACT_SPAWN)->slot, 2);
    ready(&w, pid_of(&w, 2, 1));
    assert_int_equal(pf_proctable_set_slots(&w.t, 1, w.now, w.a, CAP, &n), 0);
    w.n = n;
    assert_int_equal(count(&w, PF_ACT_DRAIN), 2);
    for (size_t i = 0; i < w.n; i++)
        assert_true(w.a[i].slot >= 1 && w.a[i].why == PF_WHY_FEWER);
    assert_int_equal(pf_proctable_set_slots(&w.t, 1, w.now, w.a, CAP, &n), -EINVAL);
    assert_int_equal(pf_proctable_begin_reload(&w.t, 2, 1, &rules, w.now), 0);
    assert_int_equal(pf_proctable_set_slots(&w.t, 2, w.now, w.a, CAP, &n), -EBUSY);
    stop_world(&w);
}

static void test_full_action_array_defers_the_rest(void **state)
{
    (void)state;
    struct world w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(pf_proctable_init(&w.t, &rules, 1, 5), 0);
    struct pf_action small[2];
    assert_int_equal(pf_proctable_decide(&w.t, 0, small, 2), 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pf_proctable_add(&w.t, 200 + i, small[i].slot, 0, -1, 0, 0), 0);
    assert_int_equal(pf_proctable_decide(&w.t, 0, small, 2), 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pf_proctable_add(&w.t, 210 + i, small[i].slot, 0, -1, 0, 0), 0);
    assert_int_equal(pf_proctable_decide(&w.t, 0, small, 2), 1);
    assert_int_equal(small[0].slot, 4);
    stop_world(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_sequence),
        cmocka_unit_test(test_ready_once_every_slot_serves),
        cmocka_unit_test(test_crash_loop_backs_off_then_a_healthy_run_resets),
        cmocka_unit_test(test_slot_is_covered_after_100_ms_without_a_worker),
        cmocka_unit_test(test_covering_only_with_reuseport),
        cmocka_unit_test(test_reload_promotes_only_when_every_new_worker_serves),
        cmocka_unit_test(test_reload_abandoned_when_a_new_worker_dies),
        cmocka_unit_test(test_reload_abandoned_when_not_serving_in_time),
        cmocka_unit_test(test_recycling_one_slot_at_a_time),
        cmocka_unit_test(test_recycling_by_memory_and_a_replacement_that_dies),
        cmocka_unit_test(test_watchdog_aborts_then_kills_a_hung_worker),
        cmocka_unit_test(test_watchdog_vouch_rule),
        cmocka_unit_test(test_drain_deadline_kills),
        cmocka_unit_test(test_stop_deadlines),
        cmocka_unit_test(test_ttin_ttou),
        cmocka_unit_test(test_full_action_array_defers_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
