/* Modules for the module tests, one source built several ways:
 *   TESTMOD_VERSION=N   a working module whose /version answers N
 *   TESTMOD_BAD_API     a descriptor for another API version
 *   TESTMOD_NO_DESC     no preforkd_module at all
 *   TESTMOD_INIT_FAILS  init refuses, with a message */
#include <stdio.h>
#include <string.h>

#include <preforkd/module.h>

#ifndef TESTMOD_VERSION
#define TESTMOD_VERSION 0
#endif

__attribute__((unused)) static int init(const struct pf_module_config *config, void **state,
                                        char *err, size_t errlen)
{
    (void)state;
#ifdef TESTMOD_INIT_FAILS
    (void)config;
    snprintf(err, errlen, "cannot reach the database");
    return -1;
#else
    const char *must = pf_config_get(config, "must");
    if (must && strcmp(must, "pass") != 0) {
        snprintf(err, errlen, "config says must=%s", must);
        return -1;
    }
    (void)err;
    (void)errlen;
    return 0;
#endif
}

static int version(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    (void)req;
    char text[32];
    int n = snprintf(text, sizeof(text), "{\"version\":%d}", TESTMOD_VERSION);
    return pf_resp_write(resp, text, (size_t)n);
}

/* Everything the request view offers, as JSON. */
static int echo(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_str s = pf_req_method(req);
    pf_resp_write(resp, "{\"method\":", 10);
    pf_resp_json_string(resp, s.ptr, s.len);
    s = pf_req_path(req);
    pf_resp_write(resp, ",\"path\":", 8);
    pf_resp_json_string(resp, s.ptr, s.len);
    s = pf_req_raw_path(req);
    pf_resp_write(resp, ",\"raw_path\":", 12);
    pf_resp_json_string(resp, s.ptr, s.len);
    s = pf_req_query(req);
    pf_resp_write(resp, ",\"query\":", 9);
    pf_resp_json_string(resp, s.ptr, s.len);
    char v[64];
    int n = pf_req_query_param(req, "q", v, sizeof(v));
    pf_resp_write(resp, ",\"q\":", 5);
    pf_resp_json_string(resp, n < 0 ? "" : v, n < 0 ? 0 : (size_t)n);
    struct pf_str h;
    bool has = pf_req_header(req, "x-test", &h);
    pf_resp_write(resp, ",\"x_test\":", 10);
    pf_resp_json_string(resp, has ? h.ptr : "", has ? h.len : 0);
    pf_resp_write(resp, ",\"headers\":", 11);
    pf_resp_u64(resp, pf_req_header_count(req));
    s = pf_req_body(req);
    pf_resp_write(resp, ",\"body\":", 8);
    pf_resp_json_string(resp, s.ptr, s.len);
    socklen_t len;
    const struct sockaddr *peer = pf_req_peer(req, &len);
    pf_resp_write(resp, ",\"peer_family\":", 15);
    pf_resp_u64(resp, peer ? (uint64_t)peer->sa_family : 0);
    pf_resp_write(resp, ",\"worker\":", 10);
    pf_resp_u64(resp, pf_req_worker(req));
    pf_resp_write(resp, "}", 1);
    pf_resp_header(resp, "X-Echo", "yes");
    return 0;
}

static int crash(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    (void)req;
    (void)resp;
    /* A real crash (SIGILL), and one the sanitizers leave to the kernel, so the test
     * sees what production sees. */
    __builtin_trap();
}

/* Tries to smuggle a header line: the daemon must refuse it and answer 500. */
static int inject(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    (void)req;
    pf_resp_header(resp, "X-Ok", "fine");
    pf_resp_header(resp, "X-Evil", "a\r\nSet-Cookie: stolen=1");
    return pf_resp_write(resp, "{}", 2);
}

static int teapot(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    (void)req;
    pf_resp_status(resp, 418);
    pf_resp_header(resp, "Content-Type", "text/plain");
    return pf_resp_write(resp, "short and stout\n", 16);
}

__attribute__((unused)) static const struct pf_handler handlers[] = {
    {"version", version}, {"echo", echo},     {"crash", crash},
    {"inject", inject},   {"teapot", teapot}, {NULL, NULL}};

#ifndef TESTMOD_NO_DESC
#ifdef TESTMOD_BAD_API
__attribute__((visibility("default"))) const struct pf_module preforkd_module = {
    .api_version = PF_MODULE_API_VERSION + 1, .name = "bad", .handlers = handlers};
#else
PF_MODULE(.name = "test", .init = init, .handlers = handlers);
#endif
#else
__attribute__((visibility("default"))) int not_a_module = 1;
#endif
