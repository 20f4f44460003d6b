/* An LD_PRELOAD shim that counts the process's heap calls (malloc, calloc, realloc, free and the
 * aligned variants; every thread) and writes the counts to the file named by MALLOC_COUNT_OUT at
 * exit, as "malloc calloc realloc free aligned". The calls go on to glibc's own allocator
 * (__libc_*), so nothing else changes. With MALLOC_COUNT_SNAPSHOTS set, each SIGUSR2 appends the
 * counts so far to that file (a snapshot of a running process, free of the races of its exit).
 * Used by tests/bench_alloc.rs, tests/daemon.rs and bench/daemon/heap-per-token. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);

static unsigned long n_malloc, n_calloc, n_realloc, n_free, n_aligned;

#define COUNT(c) __atomic_fetch_add(&(c), 1, __ATOMIC_RELAXED)

void *malloc(size_t size) {
    COUNT(n_malloc);
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
    COUNT(n_calloc);
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size) {
    COUNT(n_realloc);
    return __libc_realloc(p, size);
}
void free(void *p) {
    if (p) COUNT(n_free);
    __libc_free(p);
}
void *memalign(size_t align, size_t size) {
    COUNT(n_aligned);
    return __libc_memalign(align, size);
}
void *aligned_alloc(size_t align, size_t size) {
    COUNT(n_aligned);
    return __libc_memalign(align, size);
}
int posix_memalign(void **out, size_t align, size_t size) {
    COUNT(n_aligned);
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(align, size);
    if (!p && size) return ENOMEM;
    *out = p;
    return 0;
}

__attribute__((destructor)) static void malloc_count_report(void) {
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%lu %lu %lu %lu %lu\n", __atomic_load_n(&n_malloc, __ATOMIC_RELAXED),
            __atomic_load_n(&n_calloc, __ATOMIC_RELAXED), __atomic_load_n(&n_realloc, __ATOMIC_RELAXED),
            __atomic_load_n(&n_free, __ATOMIC_RELAXED), __atomic_load_n(&n_aligned, __ATOMIC_RELAXED));
    fclose(f);
}

/* Appends "malloc calloc realloc free aligned\n" to MALLOC_COUNT_SNAPSHOTS: open(2), write(2)
 * and the digit formatting are async-signal-safe. */
static const char *snap_path;

static size_t put_u(char *b, unsigned long v) {
    char t[24];
    size_t n = 0, i = 0;
    do t[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    while (n) b[i++] = t[--n];
    return i;
}

static void malloc_count_snapshot(int sig) {
    (void)sig;
    const int saved = errno;
    unsigned long v[5] = {__atomic_load_n(&n_malloc, __ATOMIC_RELAXED), __atomic_load_n(&n_calloc, __ATOMIC_RELAXED),
                          __atomic_load_n(&n_realloc, __ATOMIC_RELAXED), __atomic_load_n(&n_free, __ATOMIC_RELAXED),
                          __atomic_load_n(&n_aligned, __ATOMIC_RELAXED)};
    char b[5 * 24];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        n += put_u(b + n, v[i]);
        b[n++] = i == 4 ? '\n' : ' ';
    }
    const int fd = open(snap_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, b, n);
        (void)w;
        close(fd);
    }
    errno = saved;
}

__attribute__((constructor)) static void malloc_count_init(void) {
    snap_path = getenv("MALLOC_COUNT_SNAPSHOTS");
    if (!snap_path) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = malloc_count_snapshot;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
