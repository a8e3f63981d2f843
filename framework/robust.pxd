# The compiled form of robust.py: its pthread calls as inline C over glibc's robust,
# process-shared mutex (the interpreted module makes the same calls through ctypes).
cdef extern from *:
    """
    #include <pthread.h>
    #include <time.h>
    #include <errno.h>
    /* the trailer's layout (segalloc.locking, robust.MUTEX_BYTES): the version word at +40 */
    _Static_assert(sizeof(pthread_mutex_t) == 40, "a pthread mutex of 40 bytes (64-bit glibc)");
    static inline int segalloc_mutex_init(Py_ssize_t at) {
        pthread_mutexattr_t attr;
        int rc = pthread_mutexattr_init(&attr);
        if (rc) return rc;
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (!rc) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        if (!rc) rc = pthread_mutex_init((pthread_mutex_t *)at, &attr);
        pthread_mutexattr_destroy(&attr);
        return rc;
    }
    static inline int segalloc_mutex_trylock(Py_ssize_t at) {
        return pthread_mutex_trylock((pthread_mutex_t *)at);
    }
    static inline int segalloc_mutex_unlock(Py_ssize_t at) {
        return pthread_mutex_unlock((pthread_mutex_t *)at);
    }
    /* a refused lock: watch the lock word (no writes, so the holder's cache line stays put)
       for about `rounds` x 4 pauses and take the mutex when it looks free; EBUSY if it
       stayed held (then the caller waits in the kernel) */
    static inline int segalloc_mutex_spin(Py_ssize_t at, int rounds) {
        pthread_mutex_t *mutex = (pthread_mutex_t *)at;
        int rc, pause;
        for (; rounds > 0; rounds--) {
            for (pause = 0; pause < 4; pause++) {
    #if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
    #endif
            }
            if (__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) == 0) {
                rc = pthread_mutex_trylock(mutex);
                if (rc != EBUSY) return rc;
            }
        }
        return EBUSY;
    }
    static inline int segalloc_mutex_consistent(Py_ssize_t at) {
        return pthread_mutex_consistent((pthread_mutex_t *)at);
    }
    /* wait at most until CLOCK_MONOTONIC reaches `deadline` seconds (< 0: for ever) */
    static inline int segalloc_mutex_wait(Py_ssize_t at, double deadline) {
        struct timespec when;
        if (deadline < 0) return pthread_mutex_lock((pthread_mutex_t *)at);
        when.tv_sec = (time_t)deadline;
        when.tv_nsec = (long)((deadline - (double)when.tv_sec) * 1e9);
        return pthread_mutex_clocklock((pthread_mutex_t *)at, CLOCK_MONOTONIC, &when);
    }
    static inline int segalloc_mutex_owner(Py_ssize_t at) {
        return ((pthread_mutex_t *)at)->__data.__owner;
    }
    /* the version word (a seqlock's sequence, robust.py says how it is used) */
    static inline long long segalloc_version_read(Py_ssize_t at) {
        return __atomic_load_n((long long *)at, __ATOMIC_ACQUIRE);
    }
    static inline int segalloc_version_holds(Py_ssize_t at, long long seen) {
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return __atomic_load_n((long long *)at, __ATOMIC_RELAXED) == seen;
    }
    static inline void segalloc_version_open(Py_ssize_t at) {
        long long seen = __atomic_load_n((long long *)at, __ATOMIC_RELAXED);
        if (!(seen & 1)) __atomic_store_n((long long *)at, seen + 1, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
    }
    static inline void segalloc_version_close(Py_ssize_t at) {
        long long seen = __atomic_load_n((long long *)at, __ATOMIC_RELAXED);
        __atomic_store_n((long long *)at, (seen | 1) + 1, __ATOMIC_RELEASE);
    }
    """
    int mutex_init "segalloc_mutex_init" (Py_ssize_t at) nogil
    int mutex_trylock "segalloc_mutex_trylock" (Py_ssize_t at) nogil
    int mutex_unlock "segalloc_mutex_unlock" (Py_ssize_t at) nogil
    int mutex_spin "segalloc_mutex_spin" (Py_ssize_t at, int rounds) nogil
    int mutex_consistent "segalloc_mutex_consistent" (Py_ssize_t at) nogil
    int mutex_wait "segalloc_mutex_wait" (Py_ssize_t at, double deadline) nogil
    int mutex_owner "segalloc_mutex_owner" (Py_ssize_t at) nogil
    long long version_read "segalloc_version_read" (Py_ssize_t at) nogil
    bint version_holds "segalloc_version_holds" (Py_ssize_t at, long long seen) nogil
    void version_open "segalloc_version_open" (Py_ssize_t at) nogil
    void version_close "segalloc_version_close" (Py_ssize_t at) nogil

cdef extern from "Python.h":
    unsigned long thread_ident "PyThread_get_thread_ident" () nogil
    int check_signals "PyErr_CheckSignals" () except -1

cdef class RobustMutex:
    cdef Py_ssize_t _address
    cdef Py_ssize_t _depth
    cdef unsigned long _owner
    cdef Py_ssize_t _abandoned

    cdef int _take(self, object timeout) except -1
    cdef int _wait(self, object timeout) except -1
    cdef int _taken(self, int rc, unsigned long me) except -1
    cdef int _check_open(self) except -1
    cdef int _give(self) except -1
