/* Inner loops of cext/ensemble.pyx, in C for what Cython cannot say: restrict pointers
 * and vector types. On x86-64 with GCC or Clang the matrix kernel is compiled twice, for
 * AVX2+FMA and for the baseline, and ``cs_kernels_init`` picks one by what the CPU has
 * (``__builtin_cpu_supports``), so an extension built anywhere runs the wide loop where
 * it can. */
#ifndef CRYPTOSCALP_ENSEMBLE_KERNELS_H
#define CRYPTOSCALP_ENSEMBLE_KERNELS_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CS_X86 1
#endif

typedef float cs_v8 __attribute__((vector_size(32)));
typedef float cs_v4 __attribute__((vector_size(16)));

/* y[0:n] = init[0:n] + x[0:k] @ W[k, n] (row-major W; init NULL: zeros; init may be y).
 * Columns in blocks of 4 vectors held in registers across the whole of k (one store per
 * column, not one per multiply-add); the rest one column at a time. Each column's sum
 * starts from init and adds the rows in order. */
#define CS_MATVEC_BODY(V, L)                                                      \
    int64_t j = 0;                                                                \
    for (; j + 4 * (L) <= n; j += 4 * (L)) {                                      \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                 \
        if (init) {                                                               \
            memcpy(&a0, init + j, sizeof(V));                                     \
            memcpy(&a1, init + j + (L), sizeof(V));                               \
            memcpy(&a2, init + j + 2 * (L), sizeof(V));                           \
            memcpy(&a3, init + j + 3 * (L), sizeof(V));                           \
        }                                                                         \
        for (int64_t i = 0; i < k; i++) {                                         \
            const float *w = W + i * n + j;                                       \
            const float v = x[i];                                                 \
            V w0, w1, w2, w3;                                                     \
            memcpy(&w0, w, sizeof(V));                                            \
            memcpy(&w1, w + (L), sizeof(V));                                      \
            memcpy(&w2, w + 2 * (L), sizeof(V));                                  \
            memcpy(&w3, w + 3 * (L), sizeof(V));                                  \
            a0 += v * w0;                                                         \
            a1 += v * w1;                                                         \
            a2 += v * w2;                                                         \
            a3 += v * w3;                                                         \
        }                                                                         \
        memcpy(y + j, &a0, sizeof(V));                                            \
        memcpy(y + j + (L), &a1, sizeof(V));                                      \
        memcpy(y + j + 2 * (L), &a2, sizeof(V));                                  \
        memcpy(y + j + 3 * (L), &a3, sizeof(V));                                  \
    }                                                                             \
    for (; j < n; j++) {                                                          \
        float a = init ? init[j] : 0.0f;                                          \
        for (int64_t i = 0; i < k; i++)                                           \
            a += x[i] * W[i * n + j];                                             \
        y[j] = a;                                                                 \
    }

static void cs_matvec_base(const float *__restrict x, const float *__restrict W, float *y,
                           int64_t k, int64_t n, const float *init)
{
    CS_MATVEC_BODY(cs_v4, 4)
}

#ifdef CS_X86
__attribute__((target("avx2,fma")))
static void cs_matvec_avx2(const float *__restrict x, const float *__restrict W, float *y,
                           int64_t k, int64_t n, const float *init)
{
    CS_MATVEC_BODY(cs_v8, 8)
}
#endif

/* exp, logistic and tanh over a float32 vector, L lanes at a time (the LSTM's gates:
 * 192 logistic and 256 tanh values per step; libm's expf and tanhf, one value at a time,
 * were 9 of the ensemble's 20 us). exp: Cephes' expf (x = n ln2 + r, |r| <= ln2 / 2, a
 * degree-6 polynomial for e^r, 2^n put in the exponent bits), argument clamped to
 * [-88, 88] (e^88 is near float32's largest): within 2 float32 ulp of the true value there. tanh: Cephes' tanhf
 * (an odd polynomial below |x| 0.625, 1 - 2 / (e^2|x| + 1) above, the sign put back).
 * A NaN stays NaN. The last n % L values go through the same vector code on a copy. */
/* where mask m (a vector comparison's -1 / 0 lanes) a, else b (C has no vector ?:) */
#define CS_SEL(V, VI, m, a, b) ((V)((((VI)(a)) & (m)) | (((VI)(b)) & ~(m))))

#define CS_EXP_V(V, VI, x)                                                        \
    ({                                                                            \
        V _x = (x);                                                               \
        const V _hi = (V){0} + 88.0f, _lo = -_hi;                     \
        _x = CS_SEL(V, VI, _x > _hi, _hi, _x);                                    \
        _x = CS_SEL(V, VI, _x < _lo, _lo, _x);                                    \
        V _fx = _x * 1.44269504088896341f + 0.5f;                                 \
        V _t = __builtin_convertvector(__builtin_convertvector(_fx, VI), V);      \
        _fx = _t + __builtin_convertvector(_t > _fx, V); /* floor: -1 where trunc rounded up */ \
        V _r = _x - _fx * 0.693359375f + _fx * 2.12194440e-4f;                    \
        V _p = 1.9875691500E-4f * _r + 1.3981999507E-3f;                          \
        _p = _p * _r + 8.3334519073E-3f;                                          \
        _p = _p * _r + 4.1665795894E-2f;                                          \
        _p = _p * _r + 1.6666665459E-1f;                                          \
        _p = _p * _r + 5.0000001201E-1f;                                          \
        _p = _p * _r * _r + _r + 1.0f;                                            \
        VI _n = (__builtin_convertvector(_fx, VI) + 127) << 23;                   \
        _p * (V)_n;                                                               \
    })

#define CS_SIGMOID_V(V, VI, x) (1.0f / (1.0f + CS_EXP_V(V, VI, -(x))))

#define CS_TANH_V(V, VI, x)                                                       \
    ({                                                                            \
        V _v = (x);                                                               \
        V _a = CS_SEL(V, VI, _v < 0.0f, -_v, _v);                                 \
        V _z = _v * _v;                                                           \
        V _s = -5.70498872745E-3f * _z + 2.06390887954E-2f;                       \
        _s = _s * _z - 5.37397155531E-2f;                                         \
        _s = _s * _z + 1.33314422036E-1f;                                         \
        _s = _s * _z - 3.33332819422E-1f;                                         \
        _s = _s * _z * _v + _v;                                                   \
        V _l = 1.0f - 2.0f / (CS_EXP_V(V, VI, _a + _a) + 1.0f);                   \
        _l = CS_SEL(V, VI, _v < 0.0f, -_l, _l);                                   \
        CS_SEL(V, VI, _a < 0.625f, _s, _l);                                       \
    })

#define CS_MAP_BODY(V, VI, L, F)                                                  \
    int64_t j = 0;                                                                \
    for (; j + (L) <= n; j += (L)) {                                              \
        V v;                                                                      \
        memcpy(&v, x + j, sizeof(V));                                             \
        v = F(V, VI, v);                                                          \
        memcpy(y + j, &v, sizeof(V));                                             \
    }                                                                             \
    if (j < n) {                                                                  \
        float b[L] = {0};                                                         \
        V v;                                                                      \
        memcpy(b, x + j, (size_t)(n - j) * sizeof(float));                        \
        memcpy(&v, b, sizeof(V));                                                 \
        v = F(V, VI, v);                                                          \
        memcpy(b, &v, sizeof(V));                                                 \
        memcpy(y + j, b, (size_t)(n - j) * sizeof(float));                        \
    }

typedef int32_t cs_i8 __attribute__((vector_size(32)));
typedef int32_t cs_i4 __attribute__((vector_size(16)));

static void cs_sigmoid_base(const float *x, float *y, int64_t n) { CS_MAP_BODY(cs_v4, cs_i4, 4, CS_SIGMOID_V) }
static void cs_tanh_base(const float *x, float *y, int64_t n) { CS_MAP_BODY(cs_v4, cs_i4, 4, CS_TANH_V) }
#ifdef CS_X86
__attribute__((target("avx2,fma")))
static void cs_sigmoid_avx2(const float *x, float *y, int64_t n) { CS_MAP_BODY(cs_v8, cs_i8, 8, CS_SIGMOID_V) }
__attribute__((target("avx2,fma")))
static void cs_tanh_avx2(const float *x, float *y, int64_t n) { CS_MAP_BODY(cs_v8, cs_i8, 8, CS_TANH_V) }
#endif

typedef void (*cs_matvec_fn)(const float *, const float *, float *, int64_t, int64_t, const float *);
typedef void (*cs_map_fn)(const float *, float *, int64_t);
static cs_matvec_fn cs_matvec = cs_matvec_base;
static cs_map_fn cs_sigmoid = cs_sigmoid_base, cs_tanh = cs_tanh_base;

/* Picks the kernels; returns 1 for AVX2+FMA, 0 for the baseline. */
static int cs_kernels_init(int allow_wide)
{
    cs_matvec = cs_matvec_base;
    cs_sigmoid = cs_sigmoid_base;
    cs_tanh = cs_tanh_base;
#ifdef CS_X86
    __builtin_cpu_init();
    if (allow_wide && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        cs_matvec = cs_matvec_avx2;
        cs_sigmoid = cs_sigmoid_avx2;
        cs_tanh = cs_tanh_avx2;
        return 1;
    }
#endif
    return 0;
}

/* One tree node, 16 bytes: a leaf has feat < 0 and its class weights at
 * [next[0], next[0] + next[1]) of the weight arrays. */
typedef struct {
    int16_t feat;
    int8_t mode;          /* true branch when x <=, <, >=, >, ==, != thr (0..5) */
    int8_t _pad;
    float thr;
    int32_t next[2];      /* true, false successor (a leaf: weight start, count) */
} cs_node;

static inline int cs_go(int mode, float v, float th)
{
    switch (mode) {
    case 0: return v <= th;
    case 1: return v < th;
    case 2: return v >= th;
    case 3: return v > th;
    case 4: return v == th;
    default: return v != th;
    }
}

/* Trees are walked CS_LANES at a time, each lane one tree: the lanes' node loads do not
 * wait on each other, so their latencies (a dependent load and a compare per level,
 * often a cache miss) overlap instead of adding up. A lane that reached its leaf waits. */
#define CS_LANES 16
#define CS_WALK(GO)                                                               \
    for (int64_t t0 = 0; t0 < n_trees; t0 += CS_LANES) {                          \
        const int m = (int)(n_trees - t0 < CS_LANES ? n_trees - t0 : CS_LANES);   \
        const cs_node *nd[CS_LANES];                                              \
        for (int l = 0; l < m; l++) nd[l] = nodes + roots[t0 + l];                \
        for (;;) {                                                                \
            int moved = 0;                                                        \
            for (int l = 0; l < m; l++) {                                         \
                const cs_node *p = nd[l];                                         \
                if (p->feat >= 0) {                                               \
                    const float v = x[p->feat], th = p->thr;                      \
                    nd[l] = nodes + p->next[(GO) ? 0 : 1];                        \
                    moved = 1;                                                    \
                }                                                                 \
            }                                                                     \
            if (!moved) break;                                                    \
        }                                                                         \
        for (int l = 0; l < m; l++)                                               \
            for (int32_t j = nd[l]->next[0]; j < nd[l]->next[0] + nd[l]->next[1]; j++) \
                y[wcls[j]] += wval[j];                                            \
    }

/* y[0:n] += the leaf weights of trees roots[0:n_trees] for the row x (summed in tree
 * order); ``mode`` is the comparison every branch node of these trees uses, or -1 when
 * they differ. */
static void cs_trees(const cs_node *nodes, const int32_t *roots, int64_t n_trees, int mode,
                     const int32_t *wcls, const float *wval, const float *x, float *y)
{
    if (mode == 0) {
        CS_WALK(v <= th)
    } else if (mode == 1) {
        CS_WALK(v < th)
    } else {
        CS_WALK(cs_go(p->mode, v, th))
    }
}

/* Shallow trees laid out complete (depth D, every node at its breadth-first index: the
 * children of i at 2i + 1, true, and 2i + 2, false; a leaf above depth D is repeated under
 * padding nodes, so any way down reaches its weights). Per tree 2^D - 1 nodes of 8 bytes
 * (the threshold, then the feature index's int32 bits) and 2^D leaves: n class weights
 * each, or, when every leaf of every tree adds to one class (``cls``: the tree's class),
 * that one weight. One tree after the other: no pointer to follow, D compares per tree,
 * and the memory a row reads is a sequence the prefetcher can stream instead of scattered
 * nodes. Trees are walked CS_LANES at a time (their loads overlap), and their leaves
 * added in tree order. */
#define CS_WALK_COMPLETE(GO)                                                      \
    for (int64_t t0 = 0; t0 < n_trees; t0 += CS_LANES) {                          \
        const int m = (int)(n_trees - t0 < CS_LANES ? n_trees - t0 : CS_LANES);   \
        int64_t idx[CS_LANES] = {0};                                              \
        const float *base = nodes + t0 * inner * 2;                               \
        for (int d = 0; d < depth; d++)                                           \
            for (int l = 0; l < m; l++) {                                         \
                const float *nd = base + (l * inner + idx[l]) * 2;                \
                int32_t f;                                                        \
                memcpy(&f, nd + 1, sizeof(f));                                    \
                const float v = x[f], th = nd[0];                                 \
                idx[l] = 2 * idx[l] + ((GO) ? 1 : 2);                             \
            }                                                                     \
        if (cls) {                                                                \
            for (int l = 0; l < m; l++)                                           \
                y[cls[t0 + l]] += leaves[(t0 + l) * nleaf + idx[l] - inner];      \
        } else {                                                                  \
            for (int l = 0; l < m; l++) {                                         \
                const float *lv = leaves + ((t0 + l) * nleaf + idx[l] - inner) * n; \
                for (int64_t c = 0; c < n; c++)                                   \
                    y[c] += lv[c];                                                \
            }                                                                     \
        }                                                                         \
    }

static void cs_trees_complete(const float *nodes, const float *leaves, const int32_t *cls, int64_t n_trees,
                              int depth, int mode, int64_t n, const float *x, float *y)
{
    const int64_t inner = ((int64_t)1 << depth) - 1, nleaf = (int64_t)1 << depth;
    switch (mode) {
    case 0: CS_WALK_COMPLETE(v <= th) break;
    case 1: CS_WALK_COMPLETE(v < th) break;
    case 2: CS_WALK_COMPLETE(v >= th) break;
    case 3: CS_WALK_COMPLETE(v > th) break;
    case 4: CS_WALK_COMPLETE(v == th) break;
    default: CS_WALK_COMPLETE(v != th) break;
    }
}

#endif
