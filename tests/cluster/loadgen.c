/* A keep-alive HTTP/1.1 load client for the cluster test (tests/cluster/test_cluster.sh):
 * CONNS connections, each sending GET PATH and reading the whole answer before the next,
 * until TOTAL requests have been answered or SIGTERM/SIGINT comes (a request under way
 * then still finishes). It prints one line:
 *
 *     ok=N failed=N non200=N errors=N first_error="..."
 *
 * ok counts complete 200 answers; failed counts every other outcome: a complete answer
 * with another status (non200), or an error (errors: connect refused, reset, the server
 * closing before a whole answer, no answer within 30 s). With --free-port it prints a
 * loopback port free at that moment instead. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *host = "127.0.0.1";
static int port;
static const char *path = "/";
static long total = -1; /* -1: until a signal */
static atomic_long issued, ok, non200, errors;
static atomic_bool stop;
static char first_error[200];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, true);
}

static void failed(const char *what, int err)
{
    atomic_fetch_add(&errors, 1);
    pthread_mutex_lock(&error_lock);
    if (!first_error[0])
        snprintf(first_error, sizeof(first_error), "%s%s%s", what, err ? ": " : "",
                 err ? strerror(err) : "");
    pthread_mutex_unlock(&error_lock);
}

static int connect_to(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Reads one whole answer (head and Content-Length body) into buf: its status, or -1
 * (errno set; 0 for a close before the end). */
static int read_answer(int fd, char *buf, size_t cap, bool *closes)
{
    size_t len = 0;
    for (;;) {
        char *end = len ? strstr(buf, "\r\n\r\n") : NULL;
        if (end) {
            size_t head = (size_t)(end - buf) + 4;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= head + body) {
                *closes = strcasestr(buf, "\r\nconnection: close") != NULL;
                int status = 0;
                sscanf(buf, "HTTP/1.%*d %d", &status);
                return status;
            }
        }
        if (len == cap - 1) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = 0;
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
}

static void *run(void *arg)
{
    (void)arg;
    char req[512], buf[65536];
    int reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: cluster\r\n\r\n", path);
    int fd = -1;
    while (!atomic_load(&stop)) {
        if (total >= 0 && atomic_fetch_add(&issued, 1) >= total)
            break;
        if (fd < 0 && (fd = connect_to()) < 0) {
            failed("connect", errno);
            usleep(10000);
            continue;
        }
        if (send(fd, req, (size_t)reqlen, MSG_NOSIGNAL) != reqlen) {
            failed("send", errno);
            close(fd);
            fd = -1;
            continue;
        }
        bool closes = false;
        int status = read_answer(fd, buf, sizeof(buf), &closes);
        if (status < 0) {
            failed(errno ? "no whole answer" : "closed before a whole answer", errno);
            close(fd);
            fd = -1;
            continue;
        }
        if (status == 200) {
            atomic_fetch_add(&ok, 1);
        } else {
            atomic_fetch_add(&non200, 1);
            pthread_mutex_lock(&error_lock);
            if (!first_error[0])
                snprintf(first_error, sizeof(first_error), "status %d", status);
            pthread_mutex_unlock(&error_lock);
        }
        if (closes) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
    int conns = 8;
    int opt;
    if (argc == 2 && strcmp(argv[1], "--free-port") == 0) {
        int p = free_port();
        if (p < 0)
            return 1;
        printf("%d\n", p);
        return 0;
    }
    while ((opt = getopt(argc, argv, "h:p:c:n:P:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'n':
            total = atol(optarg);
            break;
        case 'P':
            path = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s -p PORT [-h HOST] [-c CONNS] [-n TOTAL] [-P PATH] | "
                    "--free-port\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || conns <= 0 || conns > 1024)
        return 2;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t *t = calloc((size_t)conns, sizeof(*t));
    if (!t)
        return 1;
    for (int i = 0; i < conns; i++)
        if (pthread_create(&t[i], NULL, run, NULL) != 0)
            return 1;
    for (int i = 0; i < conns; i++)
        pthread_join(t[i], NULL);
    free(t);
    long f = atomic_load(&non200) + atomic_load(&errors);
    printf("ok=%ld failed=%ld non200=%ld errors=%ld first_error=\"%s\"\n", atomic_load(&ok), f,
           atomic_load(&non200), atomic_load(&errors), first_error);
    return 0;
}
