# The ensemble's graph as one C program over a float32 arena (cext/ensemble.pyx): the
# fused decision path (cext.hotpath) runs it without Python in between.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t

cdef extern from "ensemble_kernels.h" nogil:
    ctypedef struct cs_node:
        int16_t feat
        int8_t mode
        float thr
        int32_t next[2]

cdef class Program:
    cdef float *A
    cdef const int64_t *ops
    cdef Py_ssize_t n_ops
    cdef const int32_t *feat
    cdef const float *thr
    cdef const int8_t *mode
    cdef const int32_t *tnext
    cdef const int32_t *fnext
    cdef const int32_t *wstart
    cdef const int32_t *wcount
    cdef const int32_t *roots
    cdef const cs_node *nodes
    cdef const int32_t *wcls
    cdef const float *wval
    cdef readonly object arena
    cdef object _keep
    cdef public int64_t runs
    cdef const int64_t *commit_pairs
    cdef Py_ssize_t n_commit
    cdef Py_ssize_t row_off, row_n
    cdef readonly Py_ssize_t n_pre       # ops [0, n_pre): the prelude, read only the recurrent state and constants
    cdef bint pre_fresh                  # its results are those of the current state

    cdef _check(self, int64_t size, int64_t n_nodes, int64_t n_w, int64_t n_roots)
    cdef _check_tree(self, int32_t root, int64_t k, int64_t n, int64_t n_nodes, set modes)
    cdef bint run_ptr(self, const double *row, Py_ssize_t n, bint commit) noexcept nogil
    cpdef void run(self, bint commit=*) noexcept
    cdef void _run_commit(self, bint commit, bint cached) noexcept nogil
    cdef void _run(self) noexcept nogil
    cdef void _op(self, const int64_t *o) noexcept nogil
