#ifndef NESTCACHE_CTHREADPRIORITY_H
#define NESTCACHE_CTHREADPRIORITY_H
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

// Lowers the calling thread's scheduling priority to `nice`, once per thread. Engine work runs
// on Dispatch's worker threads at a lower priority than the control socket's event loop, so
// monitoring stays responsive when the engines use every core. syscall(2) is variadic, hence C.
static inline void nestcache_lower_thread_priority_once(int nice) {
    static __thread int done;
    if (!done) {
        done = 1;
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
    }
}

#endif
