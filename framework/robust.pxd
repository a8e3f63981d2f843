# The compiled form of robust.py: its pthread calls as inline C over glibc's robust,
# process-shared mutex (the interpreted module makes the same calls through ctypes).
cdef extern from *:
    """
    #include <pthread.h>
    #include <time.h>
    static int segalloc_mutex_init(Py_ssize_t at) {
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
    static int segalloc_mutex_consistent(Py_ssize_t at) {
        return pthread_mutex_consistent((pthread_mutex_t *)at);
    }
    /* wait at most until CLOCK_MONOTONIC reaches `deadline` seconds (< 0: for ever) */
    static int segalloc_mutex_wait(Py_ssize_t at, double deadline) {
        struct timespec when;
        if (deadline < 0) return pthread_mutex_lock((pthread_mutex_t *)at);
        when.tv_sec = (time_t)deadline;
        when.tv_nsec = (long)((deadline - (double)when.tv_sec) * 1e9);
        return pthread_mutex_clocklock((pthread_mutex_t *)at, CLOCK_MONOTONIC, &when);
    }
    static int segalloc_mutex_owner(Py_ssize_t at) {
        return ((pthread_mutex_t *)at)->__data.__owner;
    }
    """
    int mutex_init "segalloc_mutex_init" (Py_ssize_t at) nogil
    int mutex_trylock "segalloc_mutex_trylock" (Py_ssize_t at) nogil
    int mutex_unlock "segalloc_mutex_unlock" (Py_ssize_t at) nogil
    int mutex_consistent "segalloc_mutex_consistent" (Py_ssize_t at) nogil
    int mutex_wait "segalloc_mutex_wait" (Py_ssize_t at, double deadline) nogil
    int mutex_owner "segalloc_mutex_owner" (Py_ssize_t at) nogil

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
