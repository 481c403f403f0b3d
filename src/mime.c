#include "preforkd/mime.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A media-types file is ~75 KiB; anything far larger is not one. */
#define MIME_FILE_MAX (16u << 20)

/* What a site is likely to serve, for when /etc/mime.types is missing or lacks one.
 * Types as IANA registers them (text/javascript per RFC 9239). */
static const struct pf_mime_type builtin[] = {
    {"avif", "image/avif"},
    {"css", "text/css"},
    {"csv", "text/csv"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"ico", "image/vnd.microsoft.icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript"},
    {"json", "application/json"},
    {"md", "text/markdown"},
    {"mjs", "text/javascript"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain"},
    {"wasm", "application/wasm"},
    {"webm", "video/webm"},
    {"webmanifest", "application/manifest+json"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xml", "application/xml"},
    {"zip", "application/zip"},
};

static char lower(char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

/* NUL too: the second pass reads the words the first one cut. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\0';
}

/* Walks text's lines and counts the extensions worth keeping; with types non-NULL also
 * cuts the words (NUL after each), lower-cases the extensions and records them, in the
 * file's order. */
static size_t parse_types(char *text, size_t len, struct pf_mime_type *types)
{
    size_t count = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *hash = memchr(p, '#', (size_t)(eol - p));
        char *stop = hash ? hash : eol;
        const char *type = NULL;
        while (p < stop) {
            while (p < stop && is_blank(*p))
                p++;
            char *word = p;
            while (p < stop && !is_blank(*p))
                p++;
            size_t n = (size_t)(p - word);
            if (n == 0)
                break;
            if (types)
                word[n] = '\0'; /* a blank, the '#', the '\n' or the terminator */
            if (!type) {
                /* A line whose first word is not type/subtype is not a mapping. */
                if (!memchr(word, '/', n))
                    break;
                type = word;
                continue;
            }
            if (memchr(word, '.', n) || n > PF_MIME_EXT_MAX)
                continue;
            if (types) {
                for (size_t i = 0; i < n; i++)
                    word[i] = lower(word[i]);
                types[count] = (struct pf_mime_type){.ext = word, .type = type};
            }
            count++;
        }
        p = eol + 1;
    }
    return count;
}

static int by_ext_then_order(const void *a, const void *b)
{
    const struct pf_mime_type *x = a, *y = b;
    int c = strcmp(x->ext, y->ext);
    if (c)
        return c;
    /* Both point into the one text buffer: an earlier address is an earlier line. */
    return (uintptr_t)x->ext < (uintptr_t)y->ext ? -1 : (uintptr_t)x->ext > (uintptr_t)y->ext;
}

static int read_all(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *text = NULL;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MIME_FILE_MAX) {
        rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
        goto fail;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        rc = -ENOMEM;
        goto fail;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, text + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break; /* shrank while read: what there is */
        n += (size_t)r;
    }
    text[n] = '\0';
    close(fd);
    *out = text;
    *len = n;
    return 0;
fail:
    free(text);
    close(fd);
    return rc;
}

int pf_mime_load(struct pf_mime *m, const char *path)
{
    *m = (struct pf_mime){0};
    size_t len = 0;
    int rc = read_all(path ? path : PF_MIME_TYPES_PATH, &m->text, &len);
    if (rc < 0)
        return rc;
    size_t count = parse_types(m->text, len, NULL);
    if (count == 0)
        return 0;
    m->types = malloc(count * sizeof(*m->types));
    if (!m->types) {
        pf_mime_free(m);
        return -ENOMEM;
    }
    size_t again = parse_types(m->text, len, m->types);
    assert(again == count);
    (void)again;
    qsort(m->types, count, sizeof(*m->types), by_ext_then_order);
    /* Keep the first line's type for each extension. */
    size_t kept = 0;
    for (size_t i = 0; i < count; i++)
        if (kept == 0 || strcmp(m->types[kept - 1].ext, m->types[i].ext) != 0)
            m->types[kept++] = m->types[i];
    m->count = kept;
    return 0;
}

void pf_mime_free(struct pf_mime *m)
{
    if (!m)
        return;
    free(m->types);
    free(m->text);
    *m = (struct pf_mime){0};
}

static int compare_ext(const void *key, const void *entry)
{
    return strcmp(key, ((const struct pf_mime_type *)entry)->ext);
}

const char *pf_mime_lookup(const struct pf_mime *m, const char *filename)
{
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return PF_MIME_DEFAULT;
    size_t n = strlen(dot + 1);
    if (n == 0 || n > PF_MIME_EXT_MAX)
        return PF_MIME_DEFAULT;
    char key[PF_MIME_EXT_MAX + 1];
    for (size_t i = 0; i <= n; i++)
        key[i] = lower(dot[1 + i]);
    if (m && m->count) {
        const struct pf_mime_type *t =
            bsearch(key, m->types, m->count, sizeof(*m->types), compare_ext);
        if (t)
            return t->type;
    }
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (strcmp(key, builtin[i].ext) == 0)
            return builtin[i].type;
    return PF_MIME_DEFAULT;
}
