#ifndef PREFORKD_MIME_H
#define PREFORKD_MIME_H

#include <stddef.h>

/* Media types by file name extension, for the static handler's Content-Type. Loaded once
 * per worker at start; lookups allocate nothing. No "; charset=" is added to text types:
 * nginx adds none by default, and a file's encoding is not ours to assert. */

#define PF_MIME_TYPES_PATH "/etc/mime.types" /* Debian's media-types package */
#define PF_MIME_DEFAULT    "application/octet-stream"
/* The longest extension looked up; longer ones have the default type. */
#define PF_MIME_EXT_MAX 15

struct pf_mime_type {
    const char *ext; /* lower case, without the dot */
    const char *type;
};

struct pf_mime {
    char *text;                 /* the file, cut into NUL-terminated words */
    struct pf_mime_type *types; /* sorted by ext, one entry per ext */
    size_t count;
};

/* Reads a mime.types file (path; NULL: PF_MIME_TYPES_PATH): lines "type ext ext ...",
 * '#' to the end of a line a comment, words apart by spaces or tabs. Extensions are
 * matched without regard to case; the first line naming one wins; extensions holding a
 * dot ("tm.json") are skipped, a lookup uses the last extension only. Whatever the
 * result, m is usable afterwards and must be released with pf_mime_free: on failure
 * (-ENOENT, -EFBIG past 16 MiB, -ENOMEM, a read error) it holds the built-in table
 * alone, which every lookup also falls back on for an extension the file lacks. */
int pf_mime_load(struct pf_mime *m, const char *path);
void pf_mime_free(struct pf_mime *m);

/* The type for filename's last extension (after the last '.' of the last '/'-segment, a
 * leading dot not counting: ".profile" has none), else PF_MIME_DEFAULT. m may be an
 * unloaded, zeroed struct: the built-in table answers. */
const char *pf_mime_lookup(const struct pf_mime *m, const char *filename);

#endif
