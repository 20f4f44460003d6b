/* An LD_PRELOAD shim that counts the process's heap calls (malloc, calloc, realloc, free and the
 * aligned variants; every thread) and writes the counts to the file named by MALLOC_COUNT_OUT at
 * exit, as "malloc calloc realloc free aligned". The calls go on to glibc's own allocator
 * (__libc_*), so nothing else changes. Used by tests/bench_alloc.rs, tests/daemon.rs and bench/daemon/heap-per-token. */
#define _GNU_SOURCE
#include <errno.h>
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
