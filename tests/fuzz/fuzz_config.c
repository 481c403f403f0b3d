/* libFuzzer target: YAML text into configuration loading and validation. A bad file
 * must come back as FILE:LINE:COLUMN: message, never as a crash. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "preforkd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pf_config cfg;
    char err[512];
    err[0] = '\0';
    int rc = pf_config_load_string(&cfg, "f.yaml", (const char *)data, size, err, sizeof(err));
    if (rc < 0 && strncmp(err, "f.yaml:", 7) != 0)
        __builtin_trap(); /* every error names the file and a position */
    if (rc == 0 && (cfg.nlisten < 1 || cfg.nlisten > PF_MAX_LISTEN))
        __builtin_trap();
    return 0;
}
