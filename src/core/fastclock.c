/* SPDX-License-Identifier: MIT */
/*
 * A cheaper CLOCK_MONOTONIC for hot paths that read the clock on every
 * call (the rate limiter): the CPU's time-stamp counter, scaled to
 * nanoseconds and anchored to clock_gettime.
 *
 * DESIGN
 *
 * clock_gettime through the vDSO reads the TSC itself, then scales it
 * under the kernel's sequence lock, with serialising instructions around
 * the read; on a VM that is ~23 ns against ~10 for a bare RDTSC. Here a
 * reading is the TSC minus an anchor's, times a 32.32 fixed-point scale,
 * plus the anchor's nanoseconds, all read under our own sequence lock.
 *
 * The read is a bare RDTSC, not ordered with the instructions around it
 * (the vDSO fences it: ~10 ns more, the whole gain): a reading may be a
 * few tens of ns out of order with memory operations near it, hence with
 * another thread's reading that happened before it (within one thread
 * too, by as much). Hot paths that take it (the rate limiter) must not
 * care at that scale; the limiter clamps a reading before its last.
 *
 * Only where the kernel itself uses the TSC: x86-64, the CPU reporting an
 * invariant TSC (CPUID 0x80000007 EDX bit 8: constant rate, running in
 * every C-state) and the current clocksource being "tsc". Anywhere else,
 * and until calibrated, ctx__tsc_now is clock_gettime.
 *
 * Calibration: the first call takes a base (TSC, ns) pair and reads the
 * real clock for CALIBRATE; then the scale is (ns - base ns) / (TSC -
 * base TSC). After an eighth of the span since the base (at most RESYNC)
 * the caller that crosses it re-reads the real clock (one caller: the
 * others keep extrapolating), moves the anchor there and refines the
 * scale over the whole span, so its error (tens of ns of sampling error
 * over the span) shrinks with time, and the drift before the next resync
 * stays a few ns (more only while NTP changes the clock's rate). A resync
 * does not step the reading: it slews the offset it finds (the sampling
 * error, tens of ns) out over the next interval. A resync that
 * finds the extrapolation off by more than TOLERANCE (a VM migrated to a
 * host of another TSC rate, a clocksource change) turns the fast clock
 * off for good.
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#else
#define HAVE_TSC 0
#endif

#define CALIBRATE (1 * CTX_MILLISECOND)
#define RESYNC    (50 * CTX_MILLISECOND)
#define TOLERANCE (100 * CTX_MICROSECOND)

enum { FC_UNKNOWN, FC_CALIBRATING, FC_ON, FC_OFF };

static struct {
    atomic_int mode;
    _Atomic uint32_t seq;   /* sequence lock over the anchor; odd: writing */
    _Atomic uint64_t tsc;   /* the anchor: a TSC reading ... */
    _Atomic int64_t ns;     /* ... and CLOCK_MONOTONIC then */
    _Atomic uint64_t mult;  /* ns per tick, 32.32 fixed point */
    _Atomic uint64_t ticks; /* resync after this many ticks */
    uint64_t base_tsc;      /* the calibration base; written once, */
    int64_t base_ns;        /* before mode leaves FC_UNKNOWN */
} fc;

#if HAVE_TSC

static bool tsc_usable(void)
{
    unsigned a, b, c, d;
    char buf[16];
    ssize_t n;
    int fd;

    if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007)
        return false;
    __get_cpuid(0x80000007, &a, &b, &c, &d);
    if (!(d & (1u << 8)))
        return false; /* no invariant TSC */
    fd = open("/sys/devices/system/clocksource/clocksource0/"
              "current_clocksource",
              O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n == 4 && memcmp(buf, "tsc\n", 4) == 0;
}

/* A (TSC, ns) pair, the TSC taken as the middle of the clock read. */
static uint64_t sample(int64_t *ns)
{
    uint64_t t1 = __rdtsc(), t2;
    *ns = ctx__real_now();
    t2 = __rdtsc();
    return t1 + (t2 - t1) / 2;
}

static uint64_t scale(int64_t dns, uint64_t dtsc)
{
    return (uint64_t)(((unsigned __int128)(uint64_t)dns << 32) / dtsc);
}

static int64_t extrapolate(uint64_t d, uint64_t mult)
{
    return (int64_t)(((unsigned __int128)d * mult) >> 32);
}

/*
 * As the only writer (seq is odd, ours): anchor at a fresh sample. The
 * scale is the best estimate of the TSC's rate (over the span since the
 * base). At the first anchor the reading starts at the sample; at a
 * resync it goes on from where the old anchor's extrapolation is, with
 * the scale bent to absorb the offset from the real clock over the next
 * interval (a slew, as NTP does): so the reading never steps, and stays
 * within the sampling error of CLOCK_MONOTONIC. Returns the reading.
 */
static int64_t anchor(uint32_t s, bool resync)
{
    int64_t now, at, off = 0;
    uint64_t t = sample(&now), rate, ticks, max;

    at = now;
    if (resync) {
        at =
            atomic_load_explicit(&fc.ns, memory_order_relaxed) +
            extrapolate(t - atomic_load_explicit(&fc.tsc, memory_order_relaxed),
                        atomic_load_explicit(&fc.mult, memory_order_relaxed));
        off = now - at;
        if (off > TOLERANCE || off < -TOLERANCE || t < fc.base_tsc) {
            atomic_store(&fc.mode, FC_OFF);
            atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
            return now;
        }
    }
    rate = scale(now - fc.base_ns, t - fc.base_tsc);
    /* The next resync after an eighth of the span (at most RESYNC): the
     * rate's error is the sampling error over the span, so the drift
     * before the next resync stays an eighth of a sampling error. */
    ticks = (t - fc.base_tsc) / 8;
    max = rate ? (uint64_t)(((unsigned __int128)RESYNC << 32) / rate) : 0;
    if (ticks > max)
        ticks = max;
    if (ticks && off) { /* slew: off more ns over the next ticks */
        int64_t bend =
            (int64_t)((__int128)off * ((__int128)1 << 32) / (int64_t)ticks);
        if (bend > -(int64_t)(rate / 2)) /* stays increasing */
            rate = (uint64_t)((int64_t)rate + bend);
    }
    atomic_store_explicit(&fc.tsc, t, memory_order_relaxed);
    atomic_store_explicit(&fc.ns, at, memory_order_relaxed);
    atomic_store_explicit(&fc.mult, rate, memory_order_relaxed);
    atomic_store_explicit(&fc.ticks, ticks, memory_order_relaxed);
    atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
    return at;
}

/* Become the writer: seq from even s to odd. */
static bool write_begin(uint32_t *s)
{
    uint32_t v = atomic_load_explicit(&fc.seq, memory_order_relaxed);
    if ((v & 1) || !atomic_compare_exchange_strong(&fc.seq, &v, v + 1))
        return false;
    *s = v + 1;
    return true;
}

__attribute__((noinline)) static ctx_time_t slow(int mode)
{
    uint32_t s;
    int64_t now;

    switch (mode) {
    case FC_UNKNOWN:
        if (!write_begin(&s))
            return ctx__real_now();
        if (atomic_load(&fc.mode) != FC_UNKNOWN) { /* lost the race */
            atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
            return ctx__real_now();
        }
        if (!tsc_usable()) {
            atomic_store(&fc.mode, FC_OFF);
            atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
            return ctx__real_now();
        }
        fc.base_tsc = sample(&now);
        fc.base_ns = now;
        atomic_store(&fc.mode, FC_CALIBRATING);
        atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
        return now;
    case FC_CALIBRATING:
        now = ctx__real_now();
        if (now - fc.base_ns < CALIBRATE || !write_begin(&s))
            return now;
        if (atomic_load(&fc.mode) != FC_CALIBRATING) {
            atomic_store_explicit(&fc.seq, s + 1, memory_order_release);
            return now;
        }
        now = anchor(s, false);
        atomic_store(&fc.mode, FC_ON);
        return now;
    case FC_ON: /* a resync is due */
        if (!write_begin(&s))
            return ctx__real_now();
        return anchor(s, true);
    default:
        return ctx__real_now();
    }
}

ctx_time_t ctx__tsc_now(void)
{
    int mode = atomic_load_explicit(&fc.mode, memory_order_acquire);
    uint32_t s1, s2;
    uint64_t tsc, mult, ticks, d;
    int64_t ns;

    if (CTX_UNLIKELY(mode != FC_ON))
        return slow(mode);
    s1 = atomic_load_explicit(&fc.seq, memory_order_acquire);
    tsc = atomic_load_explicit(&fc.tsc, memory_order_relaxed);
    ns = atomic_load_explicit(&fc.ns, memory_order_relaxed);
    mult = atomic_load_explicit(&fc.mult, memory_order_relaxed);
    ticks = atomic_load_explicit(&fc.ticks, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    s2 = atomic_load_explicit(&fc.seq, memory_order_relaxed);
    if (CTX_UNLIKELY(s1 != s2 || (s1 & 1)))
        return ctx__real_now(); /* a resync is under way */
    d = __rdtsc() - tsc;
    if (CTX_UNLIKELY(d >= ticks)) /* also a TSC before the anchor */
        return slow(FC_ON);
    return ns + extrapolate(d, mult);
}

bool ctx__tsc_active(void)
{
    return atomic_load(&fc.mode) == FC_ON;
}

void ctx__tsc_off(void)
{
    atomic_store(&fc.mode, FC_OFF);
}

#else /* !HAVE_TSC */

ctx_time_t ctx__tsc_now(void)
{
    return ctx__real_now();
}

bool ctx__tsc_active(void)
{
    return false;
}

void ctx__tsc_off(void)
{
    atomic_store(&fc.mode, FC_OFF);
}

#endif
