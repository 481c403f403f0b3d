#ifndef PREFORKD_MODULE_H
#define PREFORKD_MODULE_H

/* The preforkd handler-module API: the whole contract between the daemon and a module.
 *
 * A module is a shared object that exports one descriptor, `preforkd_module`:
 *
 *     #include <preforkd/module.h>
 *     static int hello(void *state, const struct pf_req *req, struct pf_resp *resp)
 *     {
 *         pf_resp_write(resp, "{\"hello\":\"world\"}", 17);
 *         return 0;
 *     }
 *     static const struct pf_handler handlers[] = {{"hello", hello}, {NULL, NULL}};
 *     PF_MODULE(.name = "greeting", .handlers = handlers);
 *
 * Each worker loads the modules named in `modules:` after it is forked, calls init once
 * with the module's `config:` map, and fini when it exits. A route names a handler as
 * `MODULE.HANDLER`. The daemon owns the framing: status line, Content-Length, Date,
 * Server, keep-alive, HEAD (no body) and the order of pipelined answers; a handler sets
 * a status, headers and body bytes, and cannot produce a malformed response.
 *
 * Versioning: PF_MODULE_API_VERSION changes whenever anything in this file changes in
 * a way that breaks a compiled module; the daemon refuses a module built for another
 * version, naming both. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PF_MODULE_API_VERSION 1

/* A byte string that is not NUL-terminated; valid until the handler returns. */
struct pf_str {
    const char *ptr;
    size_t len;
};

struct pf_req;  /* the request, read-only */
struct pf_resp; /* the response being written */

/* ---- the request ------------------------------------------------------------------- */

struct pf_str pf_req_method(const struct pf_req *req);   /* "GET" */
struct pf_str pf_req_raw_path(const struct pf_req *req); /* as sent, up to '?' */
struct pf_str pf_req_path(const struct pf_req *req);     /* percent-decoded */
struct pf_str pf_req_query(const struct pf_req *req);    /* after '?', as sent; may be empty */
/* The first query parameter called name, percent-decoded ('+' is a space) into out
 * (NUL-terminated): its length, or -1 when absent or longer than cap - 1. */
int pf_req_query_param(const struct pf_req *req, const char *name, char *out, size_t cap);
/* The first header field called name (case-insensitive); false when absent. */
bool pf_req_header(const struct pf_req *req, const char *name, struct pf_str *value);
size_t pf_req_header_count(const struct pf_req *req);
void pf_req_header_at(const struct pf_req *req, size_t i, struct pf_str *name,
                      struct pf_str *value);
/* The complete body (up to limits.body; chunked bodies are de-chunked). */
struct pf_str pf_req_body(const struct pf_req *req);
/* The client's address (the PROXY protocol's, where a listener uses it). */
const struct sockaddr *pf_req_peer(const struct pf_req *req, socklen_t *len);
unsigned pf_req_worker(const struct pf_req *req); /* the worker's slot, 0..N-1 */

/* ---- the response ------------------------------------------------------------------ */

/* 200 unless set; 100-999 (1xx, 204 and 304 are sent without a body). */
void pf_resp_status(struct pf_resp *resp, unsigned status);
/* Adds a header field. A name that is not an RFC 9110 token, a value with CR, LF or NUL,
 * or a field the daemon owns (Content-Length, Transfer-Encoding, Connection, Date,
 * Server, Keep-Alive, Upgrade) is refused with -EINVAL: the answer becomes a 500 and the
 * attempt is logged. Content-Type defaults to "application/json". */
int pf_resp_header(struct pf_resp *resp, const char *name, const char *value);
/* Appends body bytes; -ENOMEM past what the daemon will buffer (the answer becomes
 * 500). */
int pf_resp_write(struct pf_resp *resp, const void *data, size_t len);
/* Appends s as a JSON string: quotes, and every character JSON requires escaped. */
int pf_resp_json_string(struct pf_resp *resp, const char *s, size_t len);
/* Appends a number in decimal. */
int pf_resp_u64(struct pf_resp *resp, uint64_t value);

/* ---- shared counters --------------------------------------------------------------- */

/* Named 64-bit counters in memory shared by every worker (and kept across worker
 * crashes and reloads), exported in /metrics as preforkd_counter_total{name="NAME"}. Look a
 * counter up once, in init; names are [a-zA-Z0-9_.-], at most 63 bytes. */
struct pf_counter;
struct pf_counter *pf_counter(const char *name); /* NULL: bad name or no room left */
/* Adds delta atomically; returns the value after the addition. */
uint64_t pf_counter_add(struct pf_counter *counter, uint64_t delta);
uint64_t pf_counter_value(const struct pf_counter *counter);

/* The same counter in the store that `shared.backend` names, for a handler whose answer
 * depends on it: adds delta, then answers with then(state, req, resp, value), value being
 * the counter after the addition. With `memory` (the default), then runs at once. With
 * `redis`, shared by several hosts, then runs after the handler has returned, once Redis
 * has replied (the worker serves other connections meanwhile). If the store cannot be
 * reached, or is slower than shared.timeout, then never runs and the daemon answers 503
 * with a JSON body. Call it last and return what it returns; once per answer.
 * (pf_counter_add and pf_counter_value always use this host's memory.) */
typedef int (*pf_counter_then_fn)(void *state, const struct pf_req *req, struct pf_resp *resp,
                                  uint64_t value);
int pf_counter_add_then(struct pf_resp *resp, struct pf_counter *counter, uint64_t delta,
                        pf_counter_then_fn then, void *state);

/* ---- the module -------------------------------------------------------------------- */

/* The module's `config:` map from the YAML file, flattened: nested keys joined with '.'
 * ("greeting.text"), sequence items by index ("names.0"). */
struct pf_module_config;
const char *pf_config_get(const struct pf_module_config *config, const char *key);

/* Returns 0, or a non-zero value after setting status and body. */
typedef int (*pf_handler_fn)(void *state, const struct pf_req *req, struct pf_resp *resp);

struct pf_handler {
    const char *name;
    pf_handler_fn fn;
};

struct pf_module {
    unsigned api_version; /* PF_MODULE_API_VERSION */
    const char *name;
    /* Once per worker, before it serves. Returns 0, or non-zero with a message in err:
     * the worker does not start, and a reload that brought the module in fails. */
    int (*init)(const struct pf_module_config *config, void **state, char *err, size_t errlen);
    void (*fini)(void *state);
    const struct pf_handler *handlers; /* terminated by {NULL, NULL} */
};

#define PF_MODULE(...)                                                                             \
    __attribute__((visibility("default")))                                                         \
    const struct pf_module preforkd_module = {.api_version = PF_MODULE_API_VERSION, __VA_ARGS__}

#endif
