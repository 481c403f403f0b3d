#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "preforkd/handlers.h"
#include "preforkd/readiness.h"

static int samples;
static int fake_memory(struct pf_memory *m)
{
    samples++;
    m->rss = 1000 + (uint64_t)samples;
    m->virt = 5000;
    m->shared = 300;
    return 0;
}

static struct pf_handler_ctx ctx;
static struct pf_answer last_answer;
static char mem[PF_RESPONSE_MAX + 1];

static struct pf_config cfg;
static struct pf_router router;
static struct pf_http http;

static int setup(void **state)
{
    (void)state;
    pf_handler_ctx_free(&ctx);
    pf_handler_ctx_init(&ctx, 4242, 10000, 100000, 1000000);
    pf_config_defaults(&cfg);
    pf_router_init(&router, &cfg);
    for (uint32_t i = 0; i < router.n; i++)
        router.routes[i].fn = pf_handlers_builtin(router.routes[i].kind);
    ctx.router = &router;
    ctx.sample_memory = fake_memory;
    samples = 0;
    pf_handler_ctx_tick(&ctx, 10000, 784111777);
    return 0;
}

static const char *answer(enum pf_method m, const char *path, bool keep_alive, uint8_t minor)
{
    http.req = (struct pf_request){.method = m,
                                   .keep_alive = keep_alive,
                                   .http_minor = minor,
                                   .path = path,
                                   .path_len = (uint32_t)strlen(path)};
    pf_handlers_route(&ctx, &http.req);
    struct pf_buf b;
    pf_buf_init(&b, mem, PF_RESPONSE_MAX);
    struct pf_answer answer;
    pf_handlers_respond(&ctx, &http, NULL, 0, NULL, &b, &answer);
    last_answer = answer;
    assert_false(b.full);
    mem[b.len] = '\0';
    return mem;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    assert_non_null(p);
    return p + 4;
}

static unsigned status_of(const char *resp)
{
    unsigned status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %u ", &status), 1);
    return status;
}

static void test_sum_is_computed(void **state)
{
    (void)state;
    assert_int_equal(pf_handlers_sum(0), 0);
    assert_int_equal(pf_handlers_sum(1), 0);
    assert_int_equal(pf_handlers_sum(5), 10);
    assert_int_equal(pf_handlers_sum(100000), 4999950000ULL);
    assert_int_equal(pf_handlers_sum(1000000), 499999500000ULL);
}

static void test_sum_route_bodies(void **state)
{
    (void)state;
    assert_string_equal(body_of(answer(PF_METHOD_GET, "/", true, 1)), "{\"sum\":4999950000}");
    assert_string_equal(body_of(answer(PF_METHOD_GET, "/heavy", true, 1)),
                        "{\"sum\":499999500000,\"worker\":4242}");
    /* Iteration counts come from the configuration. */
    ctx.sum_iterations = 10;
    assert_string_equal(body_of(answer(PF_METHOD_GET, "/", true, 1)), "{\"sum\":45}");
}

static void test_health_body_and_sampling(void **state)
{
    (void)state;
    pf_handler_ctx_tick(&ctx, 12345, 784111777);
    assert_string_equal(body_of(answer(PF_METHOD_GET, "/health", true, 1)),
                        "{\"status\":\"healthy\",\"worker\":4242,\"uptime\":2.345,"
                        "\"memory\":{\"rss\":1001,\"virtual\":5000,\"shared\":300}}");
    /* Within the same second the sample is reused... */
    pf_handler_ctx_tick(&ctx, 13000, 784111778);
    answer(PF_METHOD_GET, "/health", true, 1);
    assert_int_equal(samples, 1);
    /* ...and refreshed once a second has passed. */
    pf_handler_ctx_tick(&ctx, 13345, 784111778);
    assert_non_null(strstr(answer(PF_METHOD_GET, "/health", true, 1), "\"rss\":1002"));
    assert_int_equal(samples, 2);
}

static void test_head_and_errors(void **state)
{
    (void)state;
    const char *r = answer(PF_METHOD_HEAD, "/", true, 1);
    assert_non_null(strstr(r, "Content-Length: 18\r\n\r\n"));
    assert_string_equal(body_of(r), "");
    r = answer(PF_METHOD_GET, "/nope", false, 1);
    assert_true(strncmp(r, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_string_equal(body_of(r), "{\"error\":\"not found\"}");
    r = answer(PF_METHOD_OTHER, "/health", true, 0);
    assert_true(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\nConnection: keep-alive\r\n"));

    /* /health is never stored by a cache; the sums may be. */
    assert_non_null(
        strstr(answer(PF_METHOD_GET, "/health", true, 1), "\r\nCache-Control: no-store\r\n"));
    assert_non_null(
        strstr(answer(PF_METHOD_HEAD, "/health", true, 1), "\r\nCache-Control: no-store\r\n"));
    assert_null(strstr(answer(PF_METHOD_GET, "/", true, 1), "Cache-Control"));
    /* No scoreboard here: 500, not stored either. */
    r = answer(PF_METHOD_GET, "/metrics", true, 1);
    assert_true(strncmp(r, "HTTP/1.1 500 ", 13) == 0);
    assert_non_null(strstr(r, "\r\nCache-Control: no-store\r\n"));

    /* OPTIONS *: the methods, no content and so no Content-Type. */
    r = answer(PF_METHOD_OPTIONS, "*", true, 1);
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r, "\r\nContent-Length: 0\r\nAllow: GET, HEAD\r\n\r\n"));
    assert_null(strstr(r, "Content-Type"));
    assert_string_equal(body_of(r), "");
    assert_int_equal(last_answer.status, 200);
    assert_int_equal(last_answer.body_bytes, 0);

    struct pf_buf b;
    pf_buf_init(&b, mem, PF_RESPONSE_MAX);
    pf_handlers_error(&ctx, 417, &b);
    mem[b.len] = '\0';
    const char *line = "HTTP/1.1 417 Expectation Failed\r\n";
    assert_true(strncmp(mem, line, strlen(line)) == 0);
    pf_buf_init(&b, mem, PF_RESPONSE_MAX);
    pf_handlers_error(&ctx, 431, &b);
    mem[b.len] = '\0';
    assert_true(strncmp(mem, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
    assert_non_null(strstr(mem, "Connection: close\r\n"));
    assert_string_equal(body_of(mem),
                        "{\"error\":\"Request Header Fields Too Large\",\"status\":431}");
}

/* Expect: 100-continue: is the body worth asking for, or is the answer already known? */
static void test_takes_body(void **state)
{
    (void)state;
    struct pf_request req = {.method = PF_METHOD_GET,
                             .keep_alive = true,
                             .http_minor = 1,
                             .path = "/health",
                             .path_len = 7};
    pf_handlers_route(&ctx, &req);
    assert_true(pf_handlers_takes_body(&ctx, &req));
    req.method = PF_METHOD_OTHER; /* 405 */
    pf_handlers_route(&ctx, &req);
    assert_false(pf_handlers_takes_body(&ctx, &req));
    req.method = PF_METHOD_GET;
    req.path_len = 5; /* "/heal": 404 */
    pf_handlers_route(&ctx, &req);
    assert_false(pf_handlers_takes_body(&ctx, &req));
}

/* GET /ready: 200 only while serving (and not degraded, unless configured so); the state
 * in the body; never stored by a cache; the lame duck closes every connection. */
static void test_ready(void **state)
{
    (void)state;
    /* No daemon around it: serving. */
    const char *r = answer(PF_METHOD_GET, "/ready", true, 1);
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r, "\r\nCache-Control: no-store\r\n"));
    assert_string_equal(body_of(r), "{\"ready\":true,\"state\":\"serving\",\"degraded\":false}");
    assert_false(pf_handlers_closes_connections(&ctx));

    struct pf_scoreboard *b;
    assert_int_equal(pf_scoreboard_new(&b, 4), 0);
    ctx.scoreboard = b;
    struct pf_request req = {.method = PF_METHOD_GET,
                             .keep_alive = true,
                             .http_minor = 1,
                             .path = "/ready",
                             .path_len = 6};
    pf_handlers_route(&ctx, &req);
    static const struct {
        enum pf_service_state state;
        bool degraded, ready_when_degraded;
        unsigned status;
        const char *body;
    } cases[] = {
        {PF_SVC_STARTING, false, true, 503,
         "{\"ready\":false,\"state\":\"starting\",\"degraded\":false}"},
        {PF_SVC_SERVING, false, false, 200,
         "{\"ready\":true,\"state\":\"serving\",\"degraded\":false}"},
        {PF_SVC_SERVING, true, true, 200,
         "{\"ready\":true,\"state\":\"serving\",\"degraded\":true}"},
        {PF_SVC_SERVING, true, false, 503,
         "{\"ready\":false,\"state\":\"serving\",\"degraded\":true}"},
        {PF_SVC_LAME_DUCK, false, true, 503,
         "{\"ready\":false,\"state\":\"lame_duck\",\"degraded\":false}"},
        {PF_SVC_DRAINING, false, true, 503,
         "{\"ready\":false,\"state\":\"draining\",\"degraded\":false}"},
        {PF_SVC_STOPPING, false, true, 503,
         "{\"ready\":false,\"state\":\"stopping\",\"degraded\":false}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        atomic_store(&b->cluster->state, cases[i].state);
        atomic_store(&b->cluster->degraded, cases[i].degraded);
        ctx.ready_when_degraded = cases[i].ready_when_degraded;
        r = answer(PF_METHOD_GET, "/ready", true, 1);
        assert_int_equal(status_of(r), cases[i].status);
        assert_int_equal(last_answer.status, cases[i].status);
        assert_string_equal(body_of(r), cases[i].body);
        assert_non_null(strstr(r, "\r\nCache-Control: no-store\r\n"));
        /* Expect: 100-continue gets the 503 at once. */
        assert_int_equal(pf_handlers_takes_body(&ctx, &req), cases[i].status == 200);
        assert_int_equal(pf_handlers_closes_connections(&ctx), cases[i].state == PF_SVC_LAME_DUCK);
        /* HEAD: the same status and length, no body. */
        r = answer(PF_METHOD_HEAD, "/ready", true, 1);
        assert_int_equal(status_of(r), cases[i].status);
        assert_string_equal(body_of(r), "");
    }
    ctx.scoreboard = NULL;
    pf_scoreboard_free(&b);
}

/* x86-64 (%xmm, %ymm, %zmm) or AArch64 (v0.2d, q0) vector registers. */
static bool uses_vector_register(const char *insn)
{
    if (strstr(insn, "%xmm") || strstr(insn, "%ymm") || strstr(insn, "%zmm"))
        return true;
    for (const char *p = insn; *p; p++)
        if ((*p == ' ' || *p == ',' || *p == '\t') && (p[1] == 'v' || p[1] == 'q') &&
            isdigit((unsigned char)p[2]))
            return true;
    return false;
}

/* Reads the disassembly of pf_handlers_sum in this executable (built from the same
 * objects, with the same flags, as the daemon) and reports whether it holds a loop: a
 * branch back to an earlier address of the function, with no vector register between
 * its target and itself. A loop folded into n*(n-1)/2 has no backward branch; a
 * vectorised one works on xmm/ymm/zmm (or v.N) registers. */
static bool sum_is_a_scalar_loop(const char *binary, char *why, size_t cap)
{
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "'%s' -d --no-show-raw-insn '%s'", PF_TEST_OBJDUMP, binary);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char insn[512][160];
    static unsigned long addr[512];
    unsigned long start = 0;
    size_t n = 0;
    bool inside = false;
    char line[512];
    while (fgets(line, sizeof(line), p)) {
        unsigned long a;
        if (strstr(line, "<pf_handlers_sum>:") && sscanf(line, "%lx", &start) == 1) {
            inside = true;
            continue;
        }
        if (!inside)
            continue;
        if (line[0] == '\n')
            break; /* the end of the function */
        if (n < 512 && sscanf(line, " %lx:", &a) == 1) {
            addr[n] = a;
            snprintf(insn[n++], sizeof(insn[0]), "%.159s", line);
        }
    }
    pclose(p);
    if (!n) {
        snprintf(why, cap, "no pf_handlers_sum in the disassembly of %.150s", binary);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = strstr(insn[i], "<pf_handlers_sum");
        if (!t)
            continue;
        unsigned long off = 0;
        sscanf(t, "<pf_handlers_sum+%lx>", &off);
        if (start + off > addr[i])
            continue; /* a forward branch */
        for (size_t k = 0; k <= i; k++) {
            if (addr[k] < start + off)
                continue;
            if (uses_vector_register(insn[k])) {
                snprintf(why, cap, "the loop is vectorised: %.100s", insn[k]);
                return false;
            }
        }
        return true;
    }
    snprintf(why, cap, "pf_handlers_sum has no backward branch: the loop was folded");
    return false;
}

static void test_sum_loop_is_not_folded(void **state)
{
    (void)state;
    /* The guard for the asm barrier in pf_handlers_sum, read from the generated code,
     * not timed: without the barrier clang replaces the loop by a multiplication. How
     * much /heavy costs against / is measured by bench/ (its "loop cost" table). */
    char self[PATH_MAX], why[256] = "";
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(len > 0);
    self[len] = '\0';
    if (!sum_is_a_scalar_loop(self, why, sizeof(why)))
        fail_msg("%s", why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sum_is_computed, setup),
        cmocka_unit_test_setup(test_sum_route_bodies, setup),
        cmocka_unit_test_setup(test_health_body_and_sampling, setup),
        cmocka_unit_test_setup(test_head_and_errors, setup),
        cmocka_unit_test_setup(test_takes_body, setup),
        cmocka_unit_test_setup(test_ready, setup),
        cmocka_unit_test(test_sum_loop_is_not_folded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
