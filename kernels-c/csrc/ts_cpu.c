/* CPU feature checks that need more than a cpuid bit, compiled with the baseline flags so they
 * run on any x86-64 CPU.
 *
 * AMX: the CPU must have AMX-TILE and AMX-INT8 (cpuid leaf 7), the OS must have enabled the tile
 * state in XCR0 (bits 17 and 18), and on Linux (5.16+) a process must ask for the tile data
 * before its first tile instruction (arch_prctl ARCH_REQ_XCOMP_PERM); without that request the
 * first tile load faults. The request is process-wide and idempotent. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TS_ARCH_REQ_XCOMP_PERM 0x1023
#define TS_XFEATURE_XTILEDATA 18

int ts_amx_int8_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return 0; /* AMX-TILE, AMX-INT8 */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & (3u << 17)) != (3u << 17)) return 0; /* XTILECFG, XTILEDATA */
#if defined(__linux__)
    return syscall(SYS_arch_prctl, TS_ARCH_REQ_XCOMP_PERM, TS_XFEATURE_XTILEDATA) == 0;
#else
    return 0; /* not verified elsewhere: stay on the AVX-512 tier */
#endif
}
