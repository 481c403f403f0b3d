#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../common/promcheck.h"
#include "preforkd/config.h"
#include "preforkd/metrics.h"
#include "preforkd/readiness.h"

static struct pf_scoreboard *b;

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pf_scoreboard_new(&b, 8), 0);
    atomic_store(&b->cluster->configured, 2);
    atomic_store(&b->cluster->serving, 2);
    atomic_store(&b->cluster->generation, 1);
    atomic_store(&b->cluster->started_ms, 1000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pf_scoreboard_free(&b);
    return 0;
}

/* The text, checked and NUL-terminated (the renderer gives a length, as it is sent). */
static char *render_cfg(const struct pf_config *cfg, int64_t now)
{
    char *text;
    size_t len;
    assert_int_equal(pf_metrics_render(b, cfg, NULL, now, &text, &len), 0);
    char *z = realloc(text, len + 1);
    assert_non_null(z);
    z[len] = '\0';
    char err[256];
    if (promcheck(z, len, err, sizeof(err)) < 0)
        fail_msg("%s\n%s", err, z);
    return z;
}

static char *render(int64_t now)
{
    return render_cfg(NULL, now);
}

static void test_sums_and_format(void **state)
{
    (void)state;
    int w0 = pf_scoreboard_claim(b, 11, 0, 1, 1000);
    int w1 = pf_scoreboard_claim(b, 12, 1, 1, 1000);
    atomic_store(&b->rows[w0].state, PF_WSTATE_SERVING);
    atomic_store(&b->rows[w1].state, PF_WSTATE_SERVING);
    pf_count(&b->rows[w0].c.requests[0][1], 30);
    pf_count(&b->rows[w1].c.requests[0][1], 12);
    pf_count(&b->rows[w1].c.requests[PF_STAT_OTHER][3], 5);
    pf_count(&b->rows[w0].c.accepted, 9);
    atomic_store(&b->rows[w1].rss, 2097152);
    char *t = render(61000);
    assert_true(promsum(t, "preforkd_requests_total", "route=\"/\",code=\"2xx\"") == 42);
    assert_true(promsum(t, "preforkd_requests_total", "worker=\"1\",code=\"4xx\"") == 5);
    assert_true(promsum(t, "preforkd_connections_accepted_total", "worker=\"0\"") == 9);
    assert_true(promsum(t, "preforkd_worker_resident_memory_bytes", "worker=\"1\"") == 2097152);
    assert_true(promsum(t, "preforkd_uptime_seconds", "") == 60);
    assert_true(promsum(t, "preforkd_workers_configured", "") == 2);
    assert_non_null(strstr(t, "preforkd_worker_info{worker=\"1\",pid=\"12\",generation=\"1\","
                              "state=\"serving\"} 1\n"));
    free(t);
}

static void test_counters_survive_a_worker_exit(void **state)
{
    (void)state;
    int w0 = pf_scoreboard_claim(b, 11, 0, 1, 1000);
    pf_count(&b->rows[w0].c.requests[1][1], 100);
    char *t = render(2000);
    double before = promsum(t, "preforkd_requests_total", "worker=\"0\",route=\"/health\"");
    free(t);
    /* The worker dies: the primary folds its counters into the slot, then a successor
     * starts from zero and serves 3 more. */
    pf_counters_add(&b->cluster->retired[0], &b->rows[w0].c);
    pf_scoreboard_release(b, w0);
    int w2 = pf_scoreboard_claim(b, 13, 0, 1, 3000);
    pf_count(&b->rows[w2].c.requests[1][1], 3);
    pf_count(&b->cluster->slot_restarts[0], 1);
    t = render(4000);
    assert_true(before == 100);
    assert_true(promsum(t, "preforkd_requests_total", "worker=\"0\",route=\"/health\"") == 103);
    assert_true(promsum(t, "preforkd_worker_restarts_total", "worker=\"0\"") == 1);
    free(t);
}

static void test_draining_slot_beyond_the_count_still_shows(void **state)
{
    (void)state;
    int w = pf_scoreboard_claim(b, 21, 5, 1, 1000); /* slot 5 after SIGTTOU, draining */
    pf_count(&b->rows[w].c.requests[0][1], 4);
    char *t = render(2000);
    assert_true(promsum(t, "preforkd_requests_total", "worker=\"5\",route=\"/\"") == 4);
    free(t);
}

static void test_heartbeat_age(void **state)
{
    (void)state;
    /* Slot 0: a serving worker that beat at 9.9 s and an old one draining, stuck since
     * 7.655 s; the oldest beat is the slot's age. Slot 1: a worker that just beat. */
    int w0 = pf_scoreboard_claim(b, 11, 0, 2, 1000);
    int old = pf_scoreboard_claim(b, 10, 0, 1, 500);
    int w1 = pf_scoreboard_claim(b, 12, 1, 2, 1000);
    pf_scoreboard_heartbeat(&b->rows[w0], 9900, 0);
    pf_scoreboard_heartbeat(&b->rows[old], 7655, 0);
    pf_scoreboard_heartbeat(&b->rows[w1], 10000, 0);
    char *t = render(10000);
    assert_non_null(strstr(t, "preforkd_worker_heartbeat_age_seconds{worker=\"0\"} 2.345\n"));
    assert_non_null(strstr(t, "preforkd_worker_heartbeat_age_seconds{worker=\"1\"} 0.000\n"));
    free(t);
    /* The stuck one gone, the slot's age is its live worker's. */
    pf_scoreboard_release(b, old);
    t = render(10000);
    assert_true(promsum(t, "preforkd_worker_heartbeat_age_seconds", "worker=\"0\"") == 0.1);
    free(t);
}

/* preforkd_ready follows the readiness rule; preforkd_state has one sample per state,
 * 1 for the current one. */
static void test_ready_and_state(void **state)
{
    (void)state;
    char *t = render(2000);
    assert_true(promsum(t, "preforkd_ready", "") == 0); /* starting */
    assert_true(promsum(t, "preforkd_state", "state=\"starting\"") == 1);
    assert_true(promsum(t, "preforkd_state", "") == 1);
    free(t);
    atomic_store(&b->cluster->state, PF_SVC_SERVING);
    t = render(2000);
    assert_true(promsum(t, "preforkd_ready", "") == 1);
    assert_non_null(strstr(t, "preforkd_state{state=\"serving\"} 1\n"));
    assert_non_null(strstr(t, "preforkd_state{state=\"lame_duck\"} 0\n"));
    free(t);
    /* Degraded: ready by default (health.ready_when_degraded), not when configured off. */
    atomic_store(&b->cluster->degraded, 1);
    t = render(2000);
    assert_true(promsum(t, "preforkd_ready", "") == 1);
    free(t);
    struct pf_config cfg;
    pf_config_defaults(&cfg);
    cfg.health_ready_when_degraded = false;
    t = render_cfg(&cfg, 2000);
    assert_true(promsum(t, "preforkd_ready", "") == 0);
    free(t);
    atomic_store(&b->cluster->degraded, 0);
    atomic_store(&b->cluster->state, PF_SVC_LAME_DUCK);
    t = render(2000);
    assert_true(promsum(t, "preforkd_ready", "") == 0);
    assert_true(promsum(t, "preforkd_state", "state=\"lame_duck\"") == 1);
    assert_true(promsum(t, "preforkd_state", "") == 1);
    free(t);
}

static void test_checker_rejects_bad_text(void **state)
{
    (void)state;
    /* The checker itself must catch what it claims to. */
    char err[256];
    static const char *bad[] = {
        "x 1\n",                   /* no TYPE */
        "# TYPE x counter\nx 1\n", /* counter without _total */
        "# TYPE x_total counter\nx_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n", /* duplicate */
        "# TYPE x gauge\nx{a=1} 1\n",                                       /* unquoted label */
        "# TYPE x gauge\nx one\n",                                          /* not a number */
        "# TYPE x gauge\n# TYPE x gauge\nx 1\n",                            /* two TYPEs */
        "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 2\n",         /* not contiguous */
        "# TYPE x gauge\nx 1",                                              /* no final newline */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(promcheck(bad[i], strlen(bad[i]), err, sizeof(err)), -1);
    const char *good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"q\\\"\"} 1.5\n";
    assert_int_equal(promcheck(good, strlen(good), err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sums_and_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_survive_a_worker_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_draining_slot_beyond_the_count_still_shows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_and_state, setup, teardown),
        cmocka_unit_test(test_checker_rejects_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
