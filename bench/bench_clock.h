/*
 * bench_clock: the two clocks the C benchmarks read, in seconds: wall (monotonic) and this
 * process's CPU time (their ratio says whether a run had its core to itself).
 */
#ifndef VOUCH_BENCH_CLOCK_H
#define VOUCH_BENCH_CLOCK_H

#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
