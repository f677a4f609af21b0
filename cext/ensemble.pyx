# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ensemble's ONNX graph executed in C: a flat program over one float32 arena.

``engine.models.native.compile_graph`` turns the fused ONNX graph (fixed shapes, batch 1)
into what ``Program`` takes: every tensor and initializer at an offset of one float32
arena, and a list of operations, each a row of ``OP_WIDTH`` int64:

    code, a, b, out, r, k, n, p1, p2, p3, p4, p5

with offsets into the arena (a, b, out) and shapes (r rows, k inner, n columns); what
p1..p5 mean depends on the code (below). The tree ensembles' nodes are in separate flat
arrays shared by all tree operations: per node its feature (-1 for a leaf), threshold,
comparison, true and false successors (absolute indexes), and for a leaf the range of its
class weights.

The semantics are ONNX's (MatMul, Add, Mul, Sigmoid, Tanh, Softmax, and ONNX-ML's
LinearClassifier and TreeEnsembleClassifier, opset 3); ``EnsembleRuntime`` checks the
program against ONNX Runtime on the same graph before using it.

The first ``n_prelude`` operations (the prelude) read only the recurrent state and
constants: the LSTM's recurrent products, h @ W_hh for each layer, which change only when
the state is committed. ``run`` executes everything; ``run_row`` / ``run_ptr`` run the
prelude only when the state moved since it last ran (a commit, ``invalidate`` after the
state was written from outside), then the rest: per row the LSTM reads its input weights
only (~90 of ~220 KB of its weights).
"""
from libc.math cimport expf, isfinite
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE, PyBUF_FORMAT

cdef extern from "ensemble_kernels.h" nogil:
    void cs_matvec(const float *x, const float *W, float *y, int64_t k, int64_t n, const float *init)
    void cs_sigmoid(const float *x, float *y, int64_t n)
    void cs_tanh(const float *x, float *y, int64_t n)
    int cs_kernels_init(int allow_wide)
    void cs_trees(const cs_node *nodes, const int32_t *roots, int64_t n_trees, int mode,
                  const int32_t *wcls, const float *wval, const float *x, float *y)
    void cs_trees_complete(const float *nodes, const float *leaves, const int32_t *cls, int64_t n_trees,
                           int depth, int mode, int64_t n, const float *x, float *y)

OP_WIDTH = 12
cdef int _wide = cs_kernels_init(1)


def kernel() -> str:
    """The matrix kernel in use: "avx2+fma" or "baseline"."""
    return "avx2+fma" if _wide else "baseline"


def activation(str name, x):
    """The program's vector ``sigmoid`` or ``tanh`` (the kernel in use) over a float32
    array: a new float32 array. For tests and benchmarks."""
    import numpy as np
    a = np.ascontiguousarray(x, np.float32).ravel()
    out = np.empty_like(a)
    cdef float[::1] av = a
    cdef float[::1] ov = out
    if a.size == 0:
        return out
    if name == "sigmoid":
        cs_sigmoid(&av[0], &ov[0], a.size)
    elif name == "tanh":
        cs_tanh(&av[0], &ov[0], a.size)
    else:
        raise ValueError(f"sigmoid or tanh, not {name!r}")
    return out


def use_wide(bint allow) -> str:
    """Allow (the default) or forbid the AVX2+FMA kernel; returns ``kernel()``. For tests
    and for comparing the two; the results agree to float rounding."""
    global _wide
    _wide = cs_kernels_init(allow)
    return kernel()

# operation codes (engine.models.native emits them)
COPY, MATMUL, ADD, MUL, SIGMOID, TANH, SOFTMAX, LINEAR, TREES, MATMUL_FROM, TREES_COMPLETE = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
# post transforms of the ONNX-ML classifiers
POST_NONE, POST_SOFTMAX, POST_LOGISTIC, POST_SOFTMAX_ZERO = 0, 1, 2, 3
POST_BINARY_PROB, POST_BINARY_LOGIT = 4, 5      # one score in column 0 -> [1 - p, p] / [sigmoid(-s), sigmoid(s)]
# tree node comparisons: true branch when x <=, <, >=, >, ==, != threshold
LEQ, LT, GTE, GT, EQ, NEQ = 0, 1, 2, 3, 4, 5


cdef void *_ptr(object a, Py_ssize_t itemsize, str what) except NULL:
    cdef Py_buffer b
    if a.dtype.itemsize != itemsize or not a.flags.c_contiguous:
        raise ValueError(f"{what}: a C-contiguous array of {itemsize}-byte items expected, got {a.dtype}")
    PyObject_GetBuffer(a, &b, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
    cdef void *p = b.buf
    PyBuffer_Release(&b)            # the Program holds the array: its data stays where it is
    return p


class _Inside:
    def __init__(self, i, code, size):
        self.i, self.code, self.size = i, code, size

    def __call__(self, off, count, what):
        if off < 0 or off + count > self.size:
            raise ValueError(f"op {self.i} (code {self.code}): {what} [{off}, {off + count}) "
                             f"outside the arena of {self.size}")


cdef inline void _post(float *s, int n, int post) noexcept nogil:
    cdef int j
    cdef float m, t
    if post == 1 or post == 3:          # SOFTMAX (SOFTMAX_ZERO: zeros stay zero)
        m = s[0]
        for j in range(1, n):
            if s[j] > m:
                m = s[j]
        t = 0
        for j in range(n):
            if post == 3 and s[j] == 0:
                continue
            s[j] = expf(s[j] - m)
            t += s[j]
        if t > 0:
            for j in range(n):
                s[j] /= t
    elif post == 2:                     # LOGISTIC
        for j in range(n):
            s[j] = 1.0 / (1.0 + expf(-s[j]))
    elif post == 4:                     # binary, s[0] a probability: [1 - p, p]
        s[1] = s[0]
        s[0] = 1.0 - s[1]
    elif post == 5:                     # binary, s[0] a logit: [sigmoid(-s), sigmoid(s)]
        m = s[0]
        s[1] = 1.0 / (1.0 + expf(-m))
        s[0] = 1.0 / (1.0 + expf(m))


cdef class Program:
    # attributes: cext/ensemble.pxd
    def __init__(self, arena, ops, feat, thr, mode, tnext, fnext, wstart, wcount, roots, wcls, wval,
                 Py_ssize_t n_prelude=0):
        import numpy as np
        if ops.ndim != 2 or ops.shape[1] != OP_WIDTH:
            raise ValueError(f"ops: [n, {OP_WIDTH}] int64 expected, got shape {ops.shape}")
        if not 0 <= n_prelude <= ops.shape[0]:
            raise ValueError(f"a prelude of {n_prelude} operations in a program of {ops.shape[0]}")
        self.n_pre = n_prelude
        self.pre_fresh = False
        n_nodes = len(feat)
        if not (len(thr) == len(mode) == len(tnext) == len(fnext) == len(wstart) == len(wcount) == n_nodes):
            raise ValueError("tree node arrays differ in length")
        if len(wcls) != len(wval):
            raise ValueError("tree weight arrays differ in length")
        # at least one element each, so that every pointer is valid
        pad = lambda a, dt: np.ascontiguousarray(a if len(a) else np.zeros(1, dt), dt)
        self._keep = [pad(ops.ravel(), np.int64), pad(feat, np.int32), pad(thr, np.float32), pad(mode, np.int8),
                      pad(tnext, np.int32), pad(fnext, np.int32), pad(wstart, np.int32), pad(wcount, np.int32),
                      pad(roots, np.int32), pad(wcls, np.int32), pad(wval, np.float32)]
        if arena.dtype != np.float32 or not arena.flags.c_contiguous or not arena.flags.writeable:
            raise ValueError("arena: a writable C-contiguous float32 array expected")
        self.arena = arena
        self.A = <float *>_ptr(arena, 4, "arena")
        k = self._keep
        self.ops = <const int64_t *>_ptr(k[0], 8, "ops")
        self.n_ops = ops.shape[0]
        self.feat = <const int32_t *>_ptr(k[1], 4, "feat")
        self.thr = <const float *>_ptr(k[2], 4, "thr")
        self.mode = <const int8_t *>_ptr(k[3], 1, "mode")
        self.tnext = <const int32_t *>_ptr(k[4], 4, "tnext")
        self.fnext = <const int32_t *>_ptr(k[5], 4, "fnext")
        self.wstart = <const int32_t *>_ptr(k[6], 4, "wstart")
        self.wcount = <const int32_t *>_ptr(k[7], 4, "wcount")
        self.roots = <const int32_t *>_ptr(k[8], 4, "roots")
        self.wcls = <const int32_t *>_ptr(k[9], 4, "wcls")
        self.wval = <const float *>_ptr(k[10], 4, "wval")
        self._check(int(arena.size), n_nodes, len(wval), len(roots))
        if n_nodes and int(np.max(feat)) >= 32768:
            raise ValueError("a tree splits on a feature index >= 32768")
        packed = np.zeros(max(n_nodes, 1), np.dtype([("feat", "<i2"), ("mode", "i1"), ("pad", "i1"), ("thr", "<f4"),
                                                      ("t", "<i4"), ("f", "<i4")]))
        if n_nodes:
            leaf = np.asarray(feat) < 0
            packed["feat"] = np.where(leaf, -1, feat)
            packed["mode"] = mode
            packed["thr"] = thr
            packed["t"] = np.where(leaf, wstart, tnext)
            packed["f"] = np.where(leaf, wcount, fnext)
        if packed.dtype.itemsize != sizeof(cs_node):
            raise ValueError(f"tree node layout: {packed.dtype.itemsize} bytes, the C struct {sizeof(cs_node)}")
        self._keep.append(packed)
        self.nodes = <const cs_node *>_ptr(packed.view(np.uint8), 1, "nodes")
        self.runs = 0
        self.n_commit = 0
        self.row_off = self.row_n = -1

    def set_commit(self, pairs) -> None:
        """What ``run(commit=True)`` copies after the run: rows (src, dst, count) of arena
        offsets (the recurrent state's outputs onto its inputs)."""
        import numpy as np
        p = np.ascontiguousarray(np.asarray(pairs, np.int64).reshape(-1, 3))
        size = self.arena.size
        for src, dst, n in p.tolist():
            if n < 0 or src < 0 or dst < 0 or src + n > size or dst + n > size or (src < dst + n and dst < src + n):
                raise ValueError(f"commit copy ({src}, {dst}, {n}): outside the arena of {size} or overlapping")
        keep = p if len(p) else np.zeros((1, 3), np.int64)
        self._keep.append(keep)
        self.commit_pairs = <const int64_t *>_ptr(keep, 8, "commit pairs")
        self.n_commit = len(p)
        self.pre_fresh = False

    def codes(self) -> list:
        """The operation codes, in program order (the prelude's first)."""
        return [int(self.ops[i * 12]) for i in range(self.n_ops)]

    def invalidate(self) -> None:
        """The arena's recurrent state was written from outside (a reset): the prelude is
        run again before the next ``run_row`` / ``run_ptr``."""
        self.pre_fresh = False

    def set_row_input(self, Py_ssize_t off, Py_ssize_t n) -> None:
        """Where ``run_row`` puts a row: n floats at arena offset ``off`` (the graph's x)."""
        if off < 0 or n <= 0 or off + n > self.arena.size:
            raise ValueError(f"row input [{off}, {off + n}) outside the arena of {self.arena.size}")
        self.row_off, self.row_n = off, n

    def run_row(self, row, bint commit=False) -> bool:
        """One feature row (float64 or float32, C-contiguous, ``set_row_input``'s n values)
        copied into the arena as float32, then ``run(commit)``. A value that is not finite
        as a float32 (NaN, inf, or beyond float32's range) runs nothing: returns False."""
        cdef Py_buffer b
        cdef Py_ssize_t i, n = self.row_n
        cdef float *x = self.A + self.row_off
        cdef const double *d
        cdef const float *f
        cdef bint ok = True
        if n < 0:
            raise ValueError("set_row_input first")
        try:
            PyObject_GetBuffer(row, &b, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT)
        except Exception as e:
            raise TypeError(f"a contiguous float64 or float32 row expected: {e}") from None
        try:
            if b.format == NULL or b.format[0] == 0 or b.format[1] != 0 or b.format[0] not in (b'd', b'f'):
                raise TypeError(f"a float64 or float32 row expected, got format {b.format}")
            if b.len != n * b.itemsize:
                raise ValueError(f"a row of {n} values expected, got {b.len // b.itemsize}")
            if b.format[0] == b'd':
                return self.run_ptr(<const double *>b.buf, n, commit)
            f = <const float *>b.buf
            for i in range(n):
                x[i] = f[i]
                ok = ok and isfinite(x[i])
        finally:
            PyBuffer_Release(&b)
        if ok:
            self.run(commit)
        return ok

    cdef bint run_ptr(self, const double *row, Py_ssize_t n, bint commit) noexcept nogil:
        """``run_row`` for a float64 row at ``row`` (n must be ``set_row_input``'s: False
        otherwise), without the GIL: what the compiled decision path calls."""
        cdef Py_ssize_t i
        cdef float *x = self.A + self.row_off
        cdef bint ok = n == self.row_n and n > 0
        if not ok:
            return False
        for i in range(n):
            x[i] = <float>row[i]
            ok = ok and isfinite(x[i])
        if ok:
            self._run_commit(commit, True)
        return ok

    cdef _check(self, int64_t size, int64_t n_nodes, int64_t n_w, int64_t n_roots):
        """Every offset an operation uses is inside the arena, every node index inside the
        node arrays: a wrong program raises here, not a segfault at run time."""
        cdef Py_ssize_t i
        cdef const int64_t *o
        for i in range(self.n_ops):
            o = self.ops + i * 12
            code, a, b, out, r, k, n = o[0], o[1], o[2], o[3], o[4], o[5], o[6]
            if r < 0 or k < 0 or n < 0:
                raise ValueError(f"op {i}: negative shape")
            inside = _Inside(i, code, size)
            if code == 1:
                inside(a, (r - 1) * k + n if r else 0, "source")
                inside(out, (r - 1) * o[7] + n if r else 0, "destination")
            elif code == 2 or code == 10:
                inside(a, r * k, "A"); inside(b, k * n, "B"); inside(out, r * n, "out")
                if code == 10:
                    inside(o[7], r * n, "start")
            elif code in (3, 4):
                inside(a, r * n, "A"); inside(b, o[7] * n, "B"); inside(out, r * n, "out")
                if o[7] not in (1, r):
                    raise ValueError(f"op {i}: B rows {o[7]} neither 1 nor {r}")
            elif code in (5, 6, 7):
                inside(a, r * n, "input"); inside(out, r * n, "output")
            elif code == 8:
                inside(a, r * k, "x"); inside(b, n * k, "coefficients"); inside(o[7], n, "intercepts")
                inside(out, r * n, "out")
            elif code == 9:
                inside(a, r * k, "x"); inside(out, r * n, "out"); inside(o[10], n, "base values")
                if o[7] < 0 or o[7] + o[8] > n_roots:
                    raise ValueError(f"op {i}: trees [{o[7]}, {o[7] + o[8]}) outside {n_roots}")
            elif code == 11:
                depth, cmp_, cls_off = o[11] % 16, (o[11] // 16) % 8, o[11] >> 7
                if o[11] < 0 or not 0 <= cmp_ <= 5 or o[8] < 0:
                    raise ValueError(f"op {i}: comparison {cmp_} or {o[8]} trees")
                inner = (1 << depth) - 1
                inside(a, r * k, "x"); inside(out, r * n, "out"); inside(o[10], n, "base values")
                inside(b, o[8] * inner * 2, "nodes")
                inside(o[7], o[8] * (inner + 1) * (1 if cls_off else n), "leaves")
                feats = self.arena[b:b + o[8] * inner * 2].view("int32")[1::2]
                if len(feats) and not ((feats >= 0) & (feats < k)).all():
                    raise ValueError(f"op {i}: a node's feature index outside [0, {k})")
                if cls_off:
                    inside(cls_off, o[8], "tree classes")
                    c = self.arena[cls_off:cls_off + o[8]].view("int32")
                    if len(c) and not ((c >= 0) & (c < n)).all():
                        raise ValueError(f"op {i}: a tree's class outside [0, {n})")
            else:
                raise ValueError(f"op {i}: unknown code {code}")
        for i in range(n_roots):
            if not 0 <= self.roots[i] < n_nodes:
                raise ValueError(f"tree {i}: root {self.roots[i]} outside {n_nodes} nodes")
        for i in range(n_nodes):
            if self.feat[i] >= 0:
                if not (0 <= self.tnext[i] < n_nodes and 0 <= self.fnext[i] < n_nodes) or not 0 <= self.mode[i] <= 5:
                    raise ValueError(f"node {i}: successor or comparison out of range")
            elif self.wstart[i] < 0 or self.wstart[i] + self.wcount[i] > n_w:
                raise ValueError(f"leaf {i}: weights outside {n_w}")
        # class ids and feature ids against each tree op's shapes
        # and each tree operation's p5 set here: the one comparison all its nodes use, or -1
        cdef int64_t *w = <int64_t *>self.ops
        for i in range(self.n_ops):
            o = self.ops + i * 12
            if o[0] != 9:
                continue
            modes = set()
            for t in range(o[7], o[7] + o[8]):
                self._check_tree(self.roots[t], o[5], o[6], n_nodes, modes)
            w[i * 12 + 11] = modes.pop() if len(modes) == 1 else -1

    cdef _check_tree(self, int32_t root, int64_t k, int64_t n, int64_t n_nodes, set modes):
        cdef list todo = [root]
        cdef int visited = 0
        while todo:
            j = todo.pop()
            visited += 1
            if visited > n_nodes:
                raise ValueError("a tree has a cycle (or a node reached twice)")
            if self.feat[j] >= 0:
                if self.feat[j] >= k:
                    raise ValueError(f"node {j}: feature {self.feat[j]} outside {k}")
                todo.append(self.tnext[j])
                todo.append(self.fnext[j])
                modes.add(self.mode[j])
            else:
                for w in range(self.wstart[j], self.wstart[j] + self.wcount[j]):
                    if not 0 <= self.wcls[w] < n:
                        raise ValueError(f"leaf {j}: class {self.wcls[w]} outside {n}")

    cpdef void run(self, bint commit=False) noexcept:
        """Execute the program once (inputs are where ``compile_graph`` put them); with
        ``commit``, then copy what ``set_commit`` names (the new state becomes the input)."""
        with nogil:
            self._run_commit(commit, False)

    cdef void _run_commit(self, bint commit, bint cached) noexcept nogil:
        """The program (``cached``: the prelude only if the state changed since it last
        ran), then the commit copies."""
        cdef Py_ssize_t i
        cdef const int64_t *c
        for i in range(self.n_pre if cached and self.pre_fresh else 0, self.n_ops):
            self._op(self.ops + i * 12)
        self.pre_fresh = True
        if commit and self.n_commit:
            for i in range(self.n_commit):
                c = self.commit_pairs + 3 * i
                memcpy(self.A + c[1], self.A + c[0], c[2] * sizeof(float))
            self.pre_fresh = False                   # the state the prelude read has moved on
        self.runs += 1

    cdef void _run(self) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.n_ops):
            self._op(self.ops + i * 12)

    def op_ns(self, int times=200, Py_ssize_t evict_bytes=0):
        """Each operation timed alone (CLOCK_MONOTONIC), ``times`` runs of the whole program
        in a row: per operation the median ns, as a list in program order (the arena's
        inputs as they are; no commit). For finding what a model's time goes to.
        ``evict_bytes``: before each run, that many bytes of scratch memory written, so
        the program meets caches the rest of an engine has used (cold), as in a trading
        loop between messages."""
        import numpy as np
        cdef Py_ssize_t i, t, j
        cdef timespec a, b
        out = np.zeros((times, self.n_ops), np.int64)
        scratch = np.zeros(max(evict_bytes, 64), np.uint8)
        cdef int64_t[:, ::1] v = out
        cdef unsigned char[::1] sc = scratch
        with nogil:
            for t in range(times):
                if evict_bytes:
                    for j in range(0, evict_bytes, 64):
                        sc[j] += 1
                for i in range(self.n_ops):
                    clock_gettime(CLOCK_MONOTONIC, &a)
                    self._op(self.ops + i * 12)
                    clock_gettime(CLOCK_MONOTONIC, &b)
                    v[t, i] = (b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec)
        return [int(x) for x in np.median(out, axis=0)]

    cdef void _op(self, const int64_t *o) noexcept nogil:
        cdef Py_ssize_t rr, kk, jj
        cdef float *A = self.A
        cdef float *x
        cdef float *y
        cdef const float *w
        cdef float v
        cdef int64_t code, r, k, n
        if True:
            code = o[0]
            r, k, n = o[4], o[5], o[6]
            if code == 1:                                   # COPY rows: src stride k, dst stride p1
                for rr in range(r):
                    memcpy(A + o[3] + rr * o[7], A + o[1] + rr * k, n * sizeof(float))
            elif code == 2:                                 # MATMUL out[r,n] = a[r,k] @ b[k,n]
                for rr in range(r):
                    cs_matvec(A + o[1] + rr * k, A + o[2], A + o[3] + rr * n, k, n, NULL)
            elif code == 10:                                # MATMUL_FROM out[r,n] = p1[r,n] + a[r,k] @ b[k,n]
                for rr in range(r):
                    cs_matvec(A + o[1] + rr * k, A + o[2], A + o[3] + rr * n, k, n, A + o[7] + rr * n)
            elif code == 3 or code == 4:                    # ADD / MUL, b [1 or r, n] broadcast
                for rr in range(r):
                    x = A + o[1] + rr * n
                    w = A + o[2] + (rr * n if o[7] == r else 0)
                    y = A + o[3] + rr * n
                    if code == 3:
                        for jj in range(n):
                            y[jj] = x[jj] + w[jj]
                    else:
                        for jj in range(n):
                            y[jj] = x[jj] * w[jj]
            elif code == 5:
                cs_sigmoid(A + o[1], A + o[3], r * n)
            elif code == 6:
                cs_tanh(A + o[1], A + o[3], r * n)
            elif code == 7:                                 # SOFTMAX over the last axis
                for rr in range(r):
                    if o[1] != o[3]:
                        memcpy(A + o[3] + rr * n, A + o[1] + rr * n, n * sizeof(float))
                    _post(A + o[3] + rr * n, <int>n, 1)
            elif code == 8:                                 # LINEAR classifier: coef [n, k], p1 intercepts, p2 post
                for rr in range(r):
                    x = A + o[1] + rr * k
                    y = A + o[3] + rr * n
                    for jj in range(n):
                        w = A + o[2] + jj * k
                        v = A[o[7] + jj]
                        for kk in range(k):
                            v += w[kk] * x[kk]
                        y[jj] = v
                    _post(y, <int>n, <int>o[8])
            elif code == 11:                                # TREES_COMPLETE: b nodes, p1 leaves, p2 trees, p3 post, p4 base,
                for rr in range(r):                         # p5 (class per tree or -1) * 128 + mode * 16 + depth
                    x = A + o[1] + rr * k
                    y = A + o[3] + rr * n
                    memcpy(y, A + o[10], n * sizeof(float))
                    cs_trees_complete(A + o[2], A + o[7], (<const int32_t *>A) + (o[11] >> 7) if o[11] >= 128 else NULL,
                                      o[8], <int>(o[11] % 16), <int>((o[11] // 16) % 8), n, x, y)
                    _post(y, <int>n, <int>o[9])
            elif code == 9:                                 # TREES: roots [p1, p1+p2), p3 post, p4 base values, p5 the nodes' one comparison (or -1)
                for rr in range(r):
                    x = A + o[1] + rr * k
                    y = A + o[3] + rr * n
                    memcpy(y, A + o[10], n * sizeof(float))
                    cs_trees(self.nodes, self.roots + o[7], o[8], <int>o[11], self.wcls, self.wval, x, y)
                    _post(y, <int>n, <int>o[9])
