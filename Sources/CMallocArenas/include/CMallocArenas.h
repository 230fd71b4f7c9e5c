#ifndef NESTCACHE_CMALLOCARENAS_H
#define NESTCACHE_CMALLOCARENAS_H
#include <malloc.h>
#include <stdlib.h>

// Caps glibc malloc's arenas at `n`, unless MALLOC_ARENA_MAX is set (the operator's choice wins).
// glibc gives each thread that finds the arenas busy a new one, up to 8 per core; nestcached's
// long-lived state is allocated from every Dispatch worker, and each arena keeps its own free
// holes: with 1,000 simulated VMs on 2 cores, 2 arenas instead of up to 16 held about 10 MiB
// less (BENCHMARKS.md, "Memory: 1,000 simulated VMs"). mallopt and M_ARENA_MAX are not visible
// from Swift, hence C.
static inline void nestcache_limit_malloc_arenas(int n) {
    if (getenv("MALLOC_ARENA_MAX") == NULL) {
        (void)mallopt(M_ARENA_MAX, n);
    }
}

#endif
