#include "preforkd/modules.h"

#include "preforkd/counters.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The module API's view of a module's `config:` map. */
struct pf_module_config {
    const struct pf_config *cfg;
    const struct pf_module_config_entry *entry;
};

const char *pf_config_get(const struct pf_module_config *config, const char *key)
{
    const struct pf_module_config_entry *e = config->entry;
    for (uint32_t i = 0; i < e->kv_count; i++) {
        const struct pf_kv *kv = &config->cfg->module_kv[e->kv_first + i];
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    }
    return NULL;
}

static int fail_entry(char *err, size_t errlen, const struct pf_config *cfg, uint32_t line,
                      uint32_t column, const char *fmt, const char *a, const char *b)
{
    int n = snprintf(err, errlen, "%s:%u:%u: ", cfg->file[0] ? cfg->file : "(configuration)", line,
                     column);
    if (n >= 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, fmt, a, b);
    return -EINVAL;
}

int pf_modules_load(struct pf_modules *mods, const struct pf_config *cfg, struct pf_router *router,
                    char *err, size_t errlen)
{
    *mods = (struct pf_modules){0};
    for (uint32_t i = 0; i < cfg->nmodules; i++) {
        const struct pf_module_config_entry *e = &cfg->modules[i];
        struct pf_loaded_module *m = &mods->m[mods->n];
        /* RTLD_LOCAL: two modules' own symbols never meet; RTLD_NOW: a missing symbol
         * fails here, not at the first request that needs it. */
        m->dl = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
        if (!m->dl) {
            const char *why = dlerror();
            fail_entry(err, errlen, cfg, e->line, e->column, "module '%s': cannot load: %s",
                       e->name, why ? why : "unknown error");
            goto fail;
        }
        mods->n++;
        m->desc = dlsym(m->dl, "preforkd_module");
        if (!m->desc) {
            fail_entry(err, errlen, cfg, e->line, e->column,
                       "module '%s': %s exports no preforkd_module descriptor (PF_MODULE)", e->name,
                       e->path);
            goto fail;
        }
        if (m->desc->api_version != PF_MODULE_API_VERSION) {
            char versions[64];
            snprintf(versions, sizeof(versions), "%u, this preforkd speaks %u",
                     m->desc->api_version, PF_MODULE_API_VERSION);
            fail_entry(err, errlen, cfg, e->line, e->column,
                       "module '%s': built for module API version %s; rebuild it against this "
                       "preforkd's <preforkd/module.h>",
                       e->name, versions);
            goto fail;
        }
        if (m->desc->init) {
            char why[256] = "";
            struct pf_module_config mc = {cfg, e};
            if (m->desc->init(&mc, &m->state, why, sizeof(why)) != 0) {
                fail_entry(err, errlen, cfg, e->line, e->column, "module '%s': init failed: %s",
                           e->name, why[0] ? why : "(no message)");
                goto fail;
            }
        }
        m->initialised = true;
    }
    for (uint32_t r = 0; router && r < router->n; r++) {
        struct pf_route *rt = &router->routes[r];
        if (rt->kind != PF_HANDLER_MODULE)
            continue;
        const struct pf_route_config *rc = rt->cfg;
        const struct pf_loaded_module *m = &mods->m[rc->module];
        const struct pf_handler *h = m->desc->handlers;
        while (h && h->name && strcmp(h->name, rc->handler) != 0)
            h++;
        if (!h || !h->name || !h->fn) {
            snprintf(err, errlen, "%s:%u:%u: route %s: module '%s' has no handler '%s'",
                     cfg->file[0] ? cfg->file : "(configuration)", rc->line, rc->column, rc->path,
                     cfg->modules[rc->module].name, rc->handler);
            goto fail;
        }
        rt->fn = h->fn;
        rt->state = m->state;
    }
    return 0;
fail:
    pf_modules_unload(mods);
    return -EINVAL;
}

void pf_modules_unload(struct pf_modules *mods)
{
    for (uint32_t i = mods->n; i-- > 0;) {
        struct pf_loaded_module *m = &mods->m[i];
        if (m->initialised && m->desc->fini)
            m->desc->fini(m->state);
        dlclose(m->dl);
    }
    *mods = (struct pf_modules){0};
}

int pf_modules_check(const struct pf_config *cfg, char *err, size_t errlen)
{
    if (!cfg->nmodules)
        return 0;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot check the modules: pipe: %s", strerror(errno));
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        snprintf(err, errlen, "cannot check the modules: fork: %s", strerror(e));
        return -e;
    }
    if (pid == 0) {
        close(pipefd[0]);
        /* Counters of its own: a module's init may look its counters up. */
        struct pf_counters_region *scratch = NULL;
        if (pf_counters_new(&scratch, PF_COUNTERS_DEFAULT_CAPACITY) == 0)
            pf_counters_set_current(scratch);
        struct pf_modules mods;
        struct pf_router router;
        pf_router_init(&router, cfg);
        char msg[1024] = "";
        int rc = pf_modules_load(&mods, cfg, &router, msg, sizeof(msg));
        if (rc == 0)
            pf_modules_unload(&mods);
        else if (write(pipefd[1], msg, strlen(msg)) < 0)
            _exit(2);
        _exit(rc == 0 ? 0 : 1);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < errlen && (r = read(pipefd[0], err + n, errlen - n - 1)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    err[n] = '\0';
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (!n)
        snprintf(err, errlen, "%s: loading the modules %s %d", cfg->file,
                 WIFSIGNALED(status) ? "crashed with signal" : "failed with status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return -EINVAL;
}
