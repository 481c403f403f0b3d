#ifndef PREFORKD_STATIC_H
#define PREFORKD_STATIC_H

/* The static file handler's data and file system core: which path a request names, the
 * file it opens beneath the root, and what to answer (RFC 9110 13, 14), as functions of
 * plain values. No connections, no allocation per request: callers pass the buffers.
 *
 * The handler's order: pf_static_check_path (the raw path) -> pf_static_open (the
 * decoded path) -> pf_static_open_gz when precompressed files are enabled ->
 * pf_static_decide -> headers and sendfile of decision.file from decision.start for
 * decision.length bytes. Any negative return becomes pf_static_status_for(rc). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "preforkd/clock.h"

/* The longest decoded path pf_static_check_path gives, NUL included. */
#define PF_STATIC_PATH_MAX 4096
/* "\"" 16 hex "-" 8 hex "-" 16 hex "\"" and NUL. */
#define PF_STATIC_ETAG_MAX 48
/* "bytes " 20 digits "-" 20 digits "/" 20 digits and NUL. */
#define PF_STATIC_CONTENT_RANGE_MAX 72

/* Percent-decodes raw_path (the request target up to '?', as sent) into decoded
 * (NUL-terminated, *decoded_len bytes without the NUL). It starts with '/' and names a
 * file beneath a root without any resolution: what the kernel is given is what the
 * client asked for, and no two accepted raw paths differ only in spelling a dot, a
 * slash or an empty segment.
 *   -EINVAL (400), the target is not a path: empty, no leading '/', an invalid escape
 *     ("%zz", "%4", "%"), a control character raw or decoded (NUL, CR, LF, DEL: "%00",
 *     "%0a", "%7f"), a raw space or '#'.
 *   -EPERM (404), a valid path that names nothing a root serves: a "." or ".." segment,
 *     plain or encoded ("%2e%2e", ".%2e"); an encoded slash ("%2F"); a backslash, raw or
 *     "%5C"; an empty segment ("//", "/a//b"); "/a/" (a trailing slash) is allowed. A
 *     conforming client removes dot segments before it sends (RFC 3986 5.2.4), so these
 *     come from probes, and "no such resource" tells a probe nothing.
 *   -ENAMETOOLONG (414), the decoded path does not fit in cap.
 * Escapes are decoded once: "%252e" is the three characters "%2e", a file name. */
int pf_static_check_path(const char *raw_path, size_t raw_len, char *decoded, size_t cap,
                         size_t *decoded_len);

/* An open regular file and what its validators are made of. */
struct pf_static_file {
    int fd; /* -1 when not open */
    uint64_t size;
    struct timespec mtime;
    uint64_t inode;
    uint64_t dev;
    bool is_regular; /* true for every file pf_static_open* returns */
    bool is_index;   /* reached as a directory's index: its name is the index's */
};

/* Opens rel, a path from pf_static_check_path ("/" is the root), beneath root_fd (a
 * directory, O_PATH will do) with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): a
 * symbolic link may point anywhere inside the root, but one that leads out of it
 * (absolute links included, "/etc/passwd" or an absolute path to the root itself) fails
 * with -EXDEV, in any component. There is no O_NOFOLLOW: it would only refuse links in
 * the last component, and those within the root are allowed. Returns 0 with out filled
 * (out->fd to be closed with pf_static_close), or:
 *   -EISDIR (301): a directory named without a trailing slash ("" names the root); the
 *     handler redirects to the path with "/" appended.
 *   -EACCES (403): not a regular file (fifo, socket, device: opened with O_NONBLOCK, so
 *     a fifo without a writer does not block), a directory whose index is absent or
 *     not configured (index NULL), or the file system's own permission refusal.
 *   -ENOENT, -ENOTDIR (404); -EXDEV, -ELOOP (404: an escape or a loop, not told apart
 *     from a missing file); others (EMFILE, EIO...) 500.
 * With a trailing slash, rel + index is opened beneath root_fd, so an index may itself
 * be a link within the root. index is a file name from the configuration. */
int pf_static_open(int root_fd, const char *rel, const char *index, struct pf_static_file *out);
/* The precompressed sibling of what pf_static_open(root_fd, rel, index) opened: the same
 * path with ".gz" appended, by the same rules; -ENOENT (or any error) means there is
 * none to offer. */
int pf_static_open_gz(int root_fd, const char *rel, const char *index, struct pf_static_file *out);
/* For tests: every lookup by the by-hand walk that stands in for openat2 where the
 * kernel lacks it (ENOSYS: valgrind, kernels before 5.6), with the same rules. */
void pf_static_walk_only(bool on);
/* Closes f->fd if open and sets it to -1; NULL is accepted. */
void pf_static_close(struct pf_static_file *f);

/* The status for rc, 0 or a negative errno from this module: 0 200, -EISDIR 301,
 * -EINVAL 400, -EACCES 403, -EPERM, -ENOENT, -ENOTDIR, -EXDEV and -ELOOP 404,
 * -ENAMETOOLONG 414, anything else 500. */
uint16_t pf_static_status_for(int rc);

/* The strong entity tag of f: "SEC-NSEC-SIZE", the modification time's seconds and
 * nanoseconds and the size in lower-case hex ("65f1a2b3-1c9c380-3e8"). The nanoseconds
 * tell apart two writes of the same size within a second; the inode is left out so that
 * hosts serving the same deployed tree (mtimes kept) agree on every tag. cap must be at
 * least PF_STATIC_ETAG_MAX. */
void pf_static_etag(const struct pf_static_file *f, char *out, size_t cap);

/* Accept-Encoding (RFC 9110 12.5.3): whether a gzip coding is preferred to none. gzip
 * (or x-gzip; else "*") must have a q above 0, and not below identity's (identity
 * unnamed, and not covered by "*", counts as the least preferred). NULL (no field):
 * false, as nginx's gzip_static does. */
bool pf_static_accepts_gzip(const char *accept_encoding);

/* The request fields pf_static_decide reads: NULL when absent, several field lines of
 * the same name joined with ", " (RFC 9110 5.3), leading and trailing spaces allowed. */
struct pf_static_request {
    time_t now;                      /* the response's Date */
    bool head;                       /* HEAD, else GET: Range is GET's only (14.2) */
    const char *if_match;            /* 13.1.1 */
    const char *if_none_match;       /* 13.1.2 */
    const char *if_modified_since;   /* 13.1.3 */
    const char *if_unmodified_since; /* 13.1.4 */
    const char *if_range;            /* 13.1.5 */
    const char *range;               /* 14.2 */
    const char *accept_encoding;     /* 12.5.3 */
    const struct pf_static_file *gz; /* the ".gz" sibling, open; NULL when none */
};

/* What to answer. The headers it implies:
 *   always: ETag, Last-Modified; Vary: Accept-Encoding when vary.
 *   200, 206: Content-Type (of the file as named, also for gzip), Accept-Ranges: bytes,
 *     Content-Encoding: gzip when use_gz; 206 and 416: Content-Range, content_range
 *     ("bytes 0-9/100"; for 416 the unsatisfied form, an asterisk for the range).
 *   Content-Length: length (the would-be length for HEAD; 0 for 304, 412, 416). */
struct pf_static_decision {
    uint16_t status;                                 /* 200, 206, 304, 412 or 416 */
    bool use_gz;                                     /* file is the .gz sibling */
    bool vary;                                       /* a .gz sibling exists: the answer varies */
    const struct pf_static_file *file;               /* the representation: f or the sibling */
    uint64_t start;                                  /* the first byte of file to send */
    uint64_t length;                                 /* how many */
    char etag[PF_STATIC_ETAG_MAX];                   /* file's */
    char last_modified[PF_HTTP_DATE_LEN + 1];        /* file's mtime, no later than now */
    char content_range[PF_STATIC_CONTENT_RANGE_MAX]; /* 206, 416 (see above); else "" */
};

/* Evaluates the preconditions in RFC 9110 13.2.2's order against the representation
 * chosen by Accept-Encoding (f, or req->gz):
 *   If-Match (strong comparison; "*") false: 412; else If-Unmodified-Since (only without
 *   If-Match) before Last-Modified: 412.
 *   If-None-Match (weak comparison, a list, "*") matching: 304; else If-Modified-Since
 *   (only without If-None-Match; a date later than now is ignored) not before
 *   Last-Modified: 304.
 *   Range (GET only; If-Range, when present, must match by strong ETag comparison or
 *   the exact Last-Modified date, else the whole file is sent): one range "a-b", "a-",
 *   "-n" gives 206, the end clamped to the size; a first byte at or past the size, or
 *   "-0", gives 416 with the unsatisfied form ("bytes", a space, '*', '/', the size).
 *   Several ranges give 200, the whole file, as 14.2 allows (no multipart); a malformed
 *   Range or another unit is ignored (200); on an empty file a suffix range is ignored,
 *   as no Content-Range can name zero bytes.
 * Malformed validators do not match; dates parse in all three HTTP-date forms. */
void pf_static_decide(const struct pf_static_file *f, const struct pf_static_request *req,
                      struct pf_static_decision *out);

#endif
