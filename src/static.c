#include "preforkd/static.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the path ---------------------------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A decoded segment between two slashes: never empty, "." or "..". */
static int check_segment(const char *seg, size_t len)
{
    if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
        return -EPERM;
    return 0;
}

int pf_static_check_path(const char *raw, size_t raw_len, char *decoded, size_t cap,
                         size_t *decoded_len)
{
    assert(decoded && cap > 0);
    if (raw_len == 0 || raw[0] != '/')
        return -EINVAL;
    size_t n = 0;   /* bytes in decoded */
    size_t seg = 0; /* where the segment being decoded starts */
    for (size_t i = 0; i < raw_len; i++) {
        unsigned char c = (unsigned char)raw[i];
        bool escaped = c == '%';
        if (escaped) {
            int hi = raw_len - i > 2 ? hex_value((unsigned char)raw[i + 1]) : -1;
            int lo = raw_len - i > 2 ? hex_value((unsigned char)raw[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == ' ' || c == '#') {
            return -EINVAL;
        }
        if (c < 0x20 || c == 0x7f)
            return -EINVAL;
        /* A backslash is a separator to some file systems and proxies, never to us: a
         * name holding one is refused rather than given two meanings. */
        if (c == '\\' || (c == '/' && escaped))
            return -EPERM;
        if (c == '/' && n > 0) {
            int rc = check_segment(decoded + seg, n - seg);
            if (rc < 0)
                return rc;
        }
        if (c == '/')
            seg = n + 1;
        if (n + 1 >= cap)
            return -ENAMETOOLONG;
        decoded[n++] = (char)c;
    }
    /* The last segment may be empty: a trailing slash names a directory. */
    if (n > seg) {
        int rc = check_segment(decoded + seg, n - seg);
        if (rc < 0)
            return rc;
    }
    decoded[n] = '\0';
    *decoded_len = n;
    return 0;
}

/* ---- the file ---------------------------------------------------------------------- */

/* Tests run every lookup through the walk below too (pf_static_walk_only). */
static bool walk_only;

void pf_static_walk_only(bool on)
{
    walk_only = on;
}

/* openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) done by hand, for where the system
 * call is missing (ENOSYS: valgrind, kernels before 5.6): component by component, each
 * opened with O_NOFOLLOW beneath the directory before it; a symbolic link is read and
 * followed the same way, an absolute one or a ".." above the root refused (-EXDEV), 40
 * links at most (-ELOOP), as the kernel's rules are. */
#define WALK_DEPTH_MAX 256
static int walk_beneath(int root_fd, const char *name)
{
    int dirs[WALK_DEPTH_MAX];
    size_t depth = 0, links = 0;
    dirs[0] = root_fd;
    char rest[2 * PF_STATIC_PATH_MAX], link[PF_STATIC_PATH_MAX];
    if (snprintf(rest, sizeof(rest), "%s", name) >= (int)sizeof(rest))
        return -ENAMETOOLONG;
    int rc = -ENOENT, result = -1;
    char *p = rest;
    for (;;) {
        while (*p == '/')
            p++;
        char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char comp[NAME_MAX + 1];
        if (n > NAME_MAX) {
            rc = -ENAMETOOLONG;
            goto out;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        p += n;
        while (*p == '/')
            p++;
        bool last = *p == '\0';
        if (n == 0 || strcmp(comp, ".") == 0) {
            if (!last)
                continue;
            strcpy(comp, ".");
        } else if (strcmp(comp, "..") == 0) {
            if (depth == 0) {
                rc = -EXDEV;
                goto out;
            }
            close(dirs[depth--]);
            if (!last)
                continue;
            strcpy(comp, ".");
        }
        struct stat st;
        if (fstatat(dirs[depth], comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = -errno;
            goto out;
        }
        if (S_ISLNK(st.st_mode)) {
            ssize_t ln = readlinkat(dirs[depth], comp, link, sizeof(link) - 1);
            if (ln < 0) {
                rc = -errno;
                goto out;
            }
            link[ln] = '\0';
            if (link[0] == '/') {
                rc = -EXDEV;
                goto out;
            }
            if (++links > 40) {
                rc = -ELOOP;
                goto out;
            }
            /* The link's target takes its place in what is left to walk. */
            char next[2 * PF_STATIC_PATH_MAX];
            if (snprintf(next, sizeof(next), "%s/%s", link, p) >= (int)sizeof(next)) {
                rc = -ENAMETOOLONG;
                goto out;
            }
            strcpy(rest, next);
            p = rest;
            continue;
        }
        int flags = last ? O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW
                         : O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
        int fd = openat(dirs[depth], comp, flags);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        if (last) {
            result = fd;
            rc = 0;
            goto out;
        }
        if (depth + 1 == WALK_DEPTH_MAX) {
            close(fd);
            rc = -ENAMETOOLONG;
            goto out;
        }
        dirs[++depth] = fd;
    }
out:
    while (depth > 0)
        close(dirs[depth--]);
    return rc < 0 ? rc : result;
}

static int openat2_beneath(int root_fd, const char *name)
{
    /* O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer. No
     * O_NOFOLLOW: RESOLVE_BENEATH already keeps every component, the last included,
     * inside the root. */
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    for (int tries = 0;; tries++) {
        long fd = walk_only ? -1 : syscall(SYS_openat2, root_fd, name, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (walk_only || errno == ENOSYS)
            return walk_beneath(root_fd, name);
        /* EAGAIN: a rename raced a ".." walk and the kernel could not prove it stayed
         * beneath; openat2(2) says to try again. */
        if (errno != EAGAIN || tries == 2)
            return -errno;
    }
}

/* Opens name beneath root_fd into out when it is a regular file; -EISDIR for a
 * directory, -EACCES for anything else. */
static int open_regular(int root_fd, const char *name, struct pf_static_file *out)
{
    int fd = openat2_beneath(root_fd, name);
    /* ENXIO: a socket, or a device without a driver; neither is a file to serve. */
    if (fd == -ENXIO)
        return -EACCES;
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;
        goto fail;
    }
    /* The descriptor goes to sendfile and reads as open(2) would have given it: the
     * O_NONBLOCK needed above has no meaning for a regular file, so it does not stay. */
    if (fcntl(fd, F_SETFL, 0) < 0) {
        rc = -errno;
        goto fail;
    }
    *out = (struct pf_static_file){
        .fd = fd,
        .size = (uint64_t)st.st_size,
        .mtime = st.st_mtim,
        .inode = (uint64_t)st.st_ino,
        .dev = (uint64_t)st.st_dev,
        .is_regular = true,
    };
    return 0;
fail:
    close(fd);
    return rc;
}

/* Joins the parts into buf; -ENAMETOOLONG when they do not fit. */
static int join(char *buf, size_t cap, const char *a, const char *b, const char *c)
{
    int n = snprintf(buf, cap, "%s%s%s", a, b, c);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* rel as openat2 takes it: without its leading '/' (RESOLVE_BENEATH refuses absolute
 * paths); "" for the root, which the callers complete. */
static const char *relative(const char *rel)
{
    return rel[0] == '/' ? rel + 1 : rel;
}

static bool names_directory(const char *rel)
{
    size_t len = strlen(rel);
    return len > 0 && rel[len - 1] == '/';
}

int pf_static_open(int root_fd, const char *rel, const char *index, struct pf_static_file *out)
{
    *out = (struct pf_static_file){.fd = -1};
    if (rel[0] == '\0')
        return -EISDIR; /* the root, named without its slash */
    const char *name = relative(rel);
    if (!names_directory(rel))
        return open_regular(root_fd, name, out);
    char path[PATH_MAX];
    int rc = -ENOENT;
    if (index && index[0]) {
        rc = join(path, sizeof(path), name, index, "");
        if (rc == 0)
            rc = open_regular(root_fd, path, out);
        if (rc == 0) {
            out->is_index = true;
            return 0;
        }
        if (rc == -EISDIR)
            return -EACCES;
    }
    if (rc != -ENOENT)
        return rc;
    /* No index to serve: a directory is forbidden to list, anything else is as absent
     * or as refused as the directory itself. */
    struct pf_static_file dir;
    rc = open_regular(root_fd, name[0] ? name : ".", &dir);
    if (rc == 0) {
        /* A regular file named with a trailing slash; the kernel refuses that itself
         * (ENOTDIR), this is only its answer made certain. */
        pf_static_close(&dir);
        return -ENOTDIR;
    }
    return rc == -EISDIR ? -EACCES : rc;
}

int pf_static_open_gz(int root_fd, const char *rel, const char *index, struct pf_static_file *out)
{
    *out = (struct pf_static_file){.fd = -1};
    bool is_index = names_directory(rel);
    if (is_index && !(index && index[0]))
        return -ENOENT;
    char path[PATH_MAX];
    int rc = join(path, sizeof(path), relative(rel), is_index ? index : "", ".gz");
    if (rc == 0)
        rc = open_regular(root_fd, path, out);
    if (rc < 0)
        return rc == -EISDIR ? -EACCES : rc;
    out->is_index = is_index;
    return 0;
}

void pf_static_close(struct pf_static_file *f)
{
    if (!f || f->fd < 0)
        return;
    close(f->fd);
    f->fd = -1;
}

/* Keyed by errno; 0 means 500. */
static const uint16_t status_by_errno[] = {
    [EISDIR] = 301,  [EINVAL] = 400, [EACCES] = 403, [EPERM] = 404,        [ENOENT] = 404,
    [ENOTDIR] = 404, [EXDEV] = 404,  [ELOOP] = 404,  [ENAMETOOLONG] = 414,
};

uint16_t pf_static_status_for(int rc)
{
    assert(rc <= 0);
    if (rc == 0)
        return 200;
    size_t count = sizeof(status_by_errno) / sizeof(status_by_errno[0]);
    if (rc < -(int)count + 1 || !status_by_errno[-rc])
        return 500;
    return status_by_errno[-rc];
}

/* ---- validators -------------------------------------------------------------------- */

void pf_static_etag(const struct pf_static_file *f, char *out, size_t cap)
{
    assert(cap >= PF_STATIC_ETAG_MAX);
    snprintf(out, cap, "\"%" PRIx64 "-%lx-%" PRIx64 "\"", (uint64_t)f->mtime.tv_sec,
             (unsigned long)f->mtime.tv_nsec, f->size);
}

/* A piece of a field value: ptr[0..len), not NUL-terminated. */
struct span {
    const char *ptr;
    size_t len;
};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static struct span trim(const char *p, size_t len)
{
    while (len && is_ows(*p))
        p++, len--;
    while (len && is_ows(p[len - 1]))
        len--;
    return (struct span){p, len};
}

static bool span_is(struct span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static bool span_is_nocase(struct span s, const char *lit)
{
    return s.len == strlen(lit) && strncasecmp(s.ptr, lit, s.len) == 0;
}

/* The next member of the list in *rest (RFC 9110 5.6.1), trimmed, and *rest moved past
 * it; a comma inside a quoted string (an entity tag may hold one) does not end it, and
 * empty members are skipped. false at the end. */
static bool next_member(struct span *rest, struct span *member)
{
    while (rest->len) {
        size_t i = 0;
        bool quoted = false;
        for (; i < rest->len && (quoted || rest->ptr[i] != ','); i++)
            if (rest->ptr[i] == '"')
                quoted = !quoted;
        *member = trim(rest->ptr, i);
        i += i < rest->len; /* the comma */
        rest->ptr += i;
        rest->len -= i;
        if (member->len)
            return true;
    }
    return false;
}

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; false when member is not one. */
static bool parse_etag(struct span member, bool *weak, struct span *opaque)
{
    *weak = member.len >= 2 && memcmp(member.ptr, "W/", 2) == 0;
    if (*weak)
        member.ptr += 2, member.len -= 2;
    if (member.len < 2 || member.ptr[0] != '"' || member.ptr[member.len - 1] != '"' ||
        memchr(member.ptr + 1, '"', member.len - 2))
        return false;
    *opaque = member;
    return true;
}

/* If-Match and If-None-Match: "*" matches a representation that exists, else any member
 * compared to etag (strong: both strong and equal; weak: opaque tags equal). */
static bool etag_list_matches(const char *value, const char *etag, bool strong)
{
    struct span rest = trim(value, strlen(value));
    if (span_is(rest, "*"))
        return true;
    struct span member, opaque;
    bool weak;
    while (next_member(&rest, &member))
        if (parse_etag(member, &weak, &opaque) && !(strong && weak) && span_is(opaque, etag))
            return true;
    return false;
}

static bool parse_date(const char *value, time_t now, time_t *t)
{
    struct span s = trim(value, strlen(value));
    return pf_clock_parse_http_date(s.ptr, s.len, now, t) == 0;
}

/* ---- Accept-Encoding --------------------------------------------------------------- */

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 when
 * malformed. */
static int parse_qvalue(struct span v)
{
    if (v.len == 0 || (v.ptr[0] != '0' && v.ptr[0] != '1') || v.len > 5 ||
        (v.len > 1 && v.ptr[1] != '.'))
        return -1;
    int q = (v.ptr[0] - '0') * 1000;
    int scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        q += (v.ptr[i] - '0') * scale;
    }
    return q <= 1000 ? q : -1;
}

/* codings = content-coding *( OWS ";" OWS parameter ): the coding and its weight (1000
 * unless "q=" says otherwise); false when the weight is malformed. */
static bool parse_coding(struct span member, struct span *coding, int *q)
{
    const char *semi = memchr(member.ptr, ';', member.len);
    size_t head = semi ? (size_t)(semi - member.ptr) : member.len;
    *coding = trim(member.ptr, head);
    *q = 1000;
    while (semi) {
        const char *p = semi + 1;
        size_t rest = member.len - (size_t)(p - member.ptr);
        semi = memchr(p, ';', rest);
        struct span param = trim(p, semi ? (size_t)(semi - p) : rest);
        if (param.len >= 2 && (param.ptr[0] == 'q' || param.ptr[0] == 'Q') && param.ptr[1] == '=') {
            *q = parse_qvalue((struct span){param.ptr + 2, param.len - 2});
            if (*q < 0)
                return false;
        }
    }
    return true;
}

bool pf_static_accepts_gzip(const char *accept_encoding)
{
    if (!accept_encoding)
        return false;
    int gzip = -1, identity = -1, any = -1;
    struct span rest = {accept_encoding, strlen(accept_encoding)};
    struct span member, coding;
    int q;
    while (next_member(&rest, &member)) {
        if (!parse_coding(member, &coding, &q))
            continue;
        if (span_is_nocase(coding, "gzip") || span_is_nocase(coding, "x-gzip"))
            gzip = q > gzip ? q : gzip;
        else if (span_is_nocase(coding, "identity"))
            identity = q;
        else if (span_is(coding, "*"))
            any = q;
    }
    if (gzip < 0)
        gzip = any;
    if (identity < 0)
        identity = any;
    return gzip > 0 && gzip >= identity;
}

/* ---- Range ------------------------------------------------------------------------- */

enum range_kind {
    RANGE_IGNORED,       /* absent, malformed, several ranges: the whole file */
    RANGE_SATISFIABLE,   /* 206 */
    RANGE_UNSATISFIABLE, /* 416 */
};

/* 1*DIGIT, saturating: a position past any file is still a position. */
static bool parse_position(struct span s, uint64_t *v)
{
    if (s.len == 0)
        return false;
    *v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        unsigned d = (unsigned)(s.ptr[i] - '0');
        *v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
    }
    return true;
}

/* Range: bytes=first-[last] or bytes=-suffix (RFC 9110 14.1.2), on a file of size. */
static enum range_kind parse_range(const char *value, uint64_t size, uint64_t *start, uint64_t *len)
{
    struct span set = trim(value, strlen(value));
    if (set.len < 6 || strncasecmp(set.ptr, "bytes=", 6) != 0)
        return RANGE_IGNORED;
    set.ptr += 6;
    set.len -= 6;
    /* The range-set is a list; exactly one member is served. */
    struct span spec, more;
    if (!next_member(&set, &spec) || next_member(&set, &more))
        return RANGE_IGNORED;
    const char *dash = memchr(spec.ptr, '-', spec.len);
    if (!dash)
        return RANGE_IGNORED;
    struct span first = {spec.ptr, (size_t)(dash - spec.ptr)};
    struct span last = {dash + 1, spec.len - first.len - 1};
    uint64_t a, b;
    if (first.len == 0) {
        /* suffix-range: the last b bytes; a suffix of an empty file names no bytes a
         * Content-Range could state. */
        if (!parse_position(last, &b))
            return RANGE_IGNORED;
        if (b == 0)
            return RANGE_UNSATISFIABLE;
        if (size == 0)
            return RANGE_IGNORED;
        *len = b < size ? b : size;
        *start = size - *len;
        return RANGE_SATISFIABLE;
    }
    if (!parse_position(first, &a))
        return RANGE_IGNORED;
    b = UINT64_MAX;
    if (last.len && (!parse_position(last, &b) || b < a))
        return RANGE_IGNORED;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    if (b > size - 1)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return RANGE_SATISFIABLE;
}

/* If-Range: an entity tag by strong comparison, or exactly the Last-Modified date. */
static bool if_range_holds(const char *value, const char *etag, time_t last_modified, time_t now)
{
    struct span v = trim(value, strlen(value));
    if (v.len && (v.ptr[0] == '"' || (v.len >= 2 && memcmp(v.ptr, "W/", 2) == 0)))
        return span_is(v, etag);
    time_t t;
    return parse_date(value, now, &t) && t == last_modified;
}

/* ---- the decision ------------------------------------------------------------------ */

/* RFC 9110 13.2.2, steps 1-4: 412, 304, or 0 to go on. */
static uint16_t preconditions(const struct pf_static_request *req, const char *etag,
                              time_t last_modified)
{
    time_t t;
    if (req->if_match) {
        if (!etag_list_matches(req->if_match, etag, true))
            return 412;
    } else if (req->if_unmodified_since && parse_date(req->if_unmodified_since, req->now, &t) &&
               last_modified > t) {
        return 412;
    }
    if (req->if_none_match)
        return etag_list_matches(req->if_none_match, etag, false) ? 304 : 0;
    /* A date later than now is the client's clock, not a version we sent: honouring it
     * would answer 304 for changes made before that date comes. */
    if (req->if_modified_since && parse_date(req->if_modified_since, req->now, &t) &&
        t <= req->now && last_modified <= t)
        return 304;
    return 0;
}

void pf_static_decide(const struct pf_static_file *f, const struct pf_static_request *req,
                      struct pf_static_decision *out)
{
    assert(f->is_regular && (!req->gz || req->gz->is_regular));
    bool use_gz = req->gz && pf_static_accepts_gzip(req->accept_encoding);
    const struct pf_static_file *file = use_gz ? req->gz : f;
    *out = (struct pf_static_decision){
        .status = 200,
        .use_gz = use_gz,
        .vary = req->gz != NULL,
        .file = file,
        .length = file->size,
    };
    pf_static_etag(file, out->etag, sizeof(out->etag));
    /* Never later than the Date it is sent with (RFC 9110 8.8.2.1). */
    time_t last_modified = file->mtime.tv_sec < req->now ? file->mtime.tv_sec : req->now;
    pf_clock_http_date(last_modified, out->last_modified);

    uint16_t status = preconditions(req, out->etag, last_modified);
    if (status) {
        out->status = status;
        out->length = 0;
        return;
    }
    if (!req->range || req->head ||
        (req->if_range && !if_range_holds(req->if_range, out->etag, last_modified, req->now)))
        return;
    uint64_t start = 0, len = 0;
    switch (parse_range(req->range, file->size, &start, &len)) {
    case RANGE_IGNORED:
        return;
    case RANGE_SATISFIABLE:
        out->status = 206;
        out->start = start;
        out->length = len;
        snprintf(out->content_range, sizeof(out->content_range),
                 "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, start + len - 1, file->size);
        return;
    case RANGE_UNSATISFIABLE:
        out->status = 416;
        out->length = 0;
        snprintf(out->content_range, sizeof(out->content_range), "bytes */%" PRIu64, file->size);
        return;
    }
}
