/* A preforkd handler module: a JSON greeting that reads a query parameter and counts
 * visits across every worker. Build it with the daemon (CMake builds
 * build/examples/hello.so), or on its own:
 *
 *     cc -shared -fPIC -O2 -I/usr/include hello.c -o hello.so
 *
 * and route to it (README, "Your own handlers"):
 *
 *     modules:
 *       hello:
 *         path: /usr/lib/preforkd/hello.so
 *         config: {greeting: Hello}
 *     routes:
 *       - {path: /hello, handler: hello.greet}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <preforkd/module.h>

struct hello {
    char greeting[64];
    struct pf_counter *visits;
};

static int init(const struct pf_module_config *config, void **state, char *err, size_t errlen)
{
    struct hello *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *g = pf_config_get(config, "greeting");
    snprintf(h->greeting, sizeof(h->greeting), "%s", g ? g : "Hello");
    /* Shared by every worker, kept across crashes and reloads; /metrics shows it. */
    h->visits = pf_counter("hello.visits");
    if (!h->visits) {
        snprintf(err, errlen, "no room for the hello.visits counter");
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static void fini(void *state)
{
    free(state);
}

/* The answer, once the visit is counted: at once with the memory store, after Redis
 * has replied with shared.backend redis (the request is still readable then). */
static int greet_counted(void *state, const struct pf_req *req, struct pf_resp *resp,
                         uint64_t visits)
{
    struct hello *h = state;
    char name[64];
    if (pf_req_query_param(req, "name", name, sizeof(name)) < 0)
        strcpy(name, "world");
    char text[160];
    int n = snprintf(text, sizeof(text), "%s, %s!", h->greeting, name);
    pf_resp_write(resp, "{\"greeting\":", 12);
    pf_resp_json_string(resp, text, (size_t)n);
    pf_resp_write(resp, ",\"visits\":", 10);
    pf_resp_u64(resp, visits);
    pf_resp_write(resp, "}", 1);
    return 0;
}

/* GET /hello?name=Ada -> {"greeting":"Hello, Ada!","visits":42} */
static int greet(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)req;
    struct hello *h = state;
    return pf_counter_add_then(resp, h->visits, 1, greet_counted, h);
}

static const struct pf_handler handlers[] = {{"greet", greet}, {NULL, NULL}};

PF_MODULE(.name = "hello", .init = init, .fini = fini, .handlers = handlers);
