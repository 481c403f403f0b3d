#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preforkd/config.h"
#include "preforkd/control.h"
#include "preforkd/cpu.h"
#include "preforkd/env.h"
#include "preforkd/log.h"
#include "preforkd/modules.h"
#include "preforkd/primary.h"
#include "preforkd/status.h"
#include "preforkd/version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: preforkd [-c FILE] [-w N] [-t] [-f]\n"
            "       preforkd status [-c FILE] [--json]\n"
            "       preforkd reload [-c FILE] [--pid PID] [--timeout T]\n"
            "       preforkd upgrade [-c FILE] [--pid PID] [--timeout T]\n"
            "       preforkd stop [--graceful] [-c FILE] [--pid PID] [--timeout T]\n"
            "\n"
            "A prefork HTTP/1.1 server: one primary supervising one worker per CPU.\n"
            "\n"
            "  -c, --config FILE   YAML configuration (default " PF_DEFAULT_CONFIG ")\n"
            "  -w, --workers N     worker count, overriding the file (N, auto or auto-1)\n"
            "  -t, --test          validate the configuration and exit 0 or 1\n"
            "  -f, --foreground    run in the foreground (the only mode: systemd supervises)\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "  status              the worker table of the running daemon (from /metrics)\n"
            "  reload              validate FILE, reload the running daemon and wait for\n"
            "                      the outcome: exit 0 once the new workers serve\n"
            "  upgrade             run the binary on disk again, handing over the sockets;\n"
            "                      exit 0 once the new primary serves (SIGUSR2)\n"
            "  stop                stop the running daemon (--graceful: with its lame duck and\n"
            "                      drain) and wait until it has exited\n"
            "\n"
            "Signals to the primary: TERM/INT fast stop, QUIT graceful stop, HUP reload,\n"
            "USR1 reopen log file, USR2 upgrade the binary, TTIN/TTOU one worker more/fewer.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"test", no_argument, NULL, 't'},
                                         {"foreground", no_argument, NULL, 'f'},
                                         {"version", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct pf_env env;
    pf_env_read(&env);
    pf_log_set_journal(env.journal);
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return pf_status_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "reload") == 0)
        return pf_control_reload_main(argc - 1, argv + 1, &env);
    if (argc > 1 && strcmp(argv[1], "upgrade") == 0)
        return pf_control_upgrade_main(argc - 1, argv + 1, &env);
    if (argc > 1 && strcmp(argv[1], "stop") == 0)
        return pf_control_stop_main(argc - 1, argv + 1, &env);
    const char *path = NULL;
    const char *workers = NULL;
    int test_only = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:w:tfvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'w':
            workers = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'f':
            break;
        case 'v':
            printf("preforkd %s\n", PF_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "preforkd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct pf_config cfg;
    char err[512];
    uint32_t override = 0; /* -w: lasts for the life of the process, reloads included */
    if (pf_config_load_default(&cfg, &path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (workers) {
        char yaml[64];
        snprintf(yaml, sizeof(yaml), "workers: %s\n", workers);
        struct pf_config w;
        if (strlen(workers) > 20 ||
            pf_config_load_string(&w, "-w", yaml, strlen(yaml), err, sizeof(err)) < 0) {
            fprintf(stderr, "preforkd: -w: expected a positive integer, auto or auto-1\n");
            return 1;
        }
        cfg.workers_mode = w.workers_mode;
        cfg.workers = w.workers;
        override = pf_config_worker_count(&cfg);
    }
    /* Modules load in a child first: a file that names a missing or broken module fails
     * here, with the entry's line and column, before anything is bound. */
    if (cfg.nmodules && pf_modules_check(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (test_only) {
        printf("%s: configuration is valid (%u workers)\n", path ? path : "(built-in defaults)",
               pf_config_worker_count(&cfg));
        return 0;
    }
    pf_log_set_level(cfg.log_level);
    if (cfg.log_file[0] && pf_log_reopen(cfg.log_file) < 0) {
        fprintf(stderr, "preforkd: cannot open log file %s: %s\n", cfg.log_file, strerror(errno));
        return 1;
    }
    pf_log_info("preforkd %s, config %s, %u usable CPUs", PF_VERSION,
                path ? path : "(built-in defaults)", pf_cpu_usable());
    int rc = pf_primary_run(&cfg, path, override, &env, argv);
    pf_env_free(&env);
    return rc;
}
