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

/* y[0:n] = x[0:k] @ W[k, n] (row-major W). Columns in blocks of 4 vectors held in
 * registers across the whole of k (one store per column, not one per multiply-add); the
 * rest one column at a time. */
#define CS_MATVEC_BODY(V, L)                                                      \
    int64_t j = 0;                                                                \
    for (; j + 4 * (L) <= n; j += 4 * (L)) {                                      \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                 \
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
        float a = 0;                                                              \
        for (int64_t i = 0; i < k; i++)                                           \
            a += x[i] * W[i * n + j];                                             \
        y[j] = a;                                                                 \
    }

static void cs_matvec_base(const float *__restrict x, const float *__restrict W, float *__restrict y,
                           int64_t k, int64_t n)
{
    CS_MATVEC_BODY(cs_v4, 4)
}

#ifdef CS_X86
__attribute__((target("avx2,fma")))
static void cs_matvec_avx2(const float *__restrict x, const float *__restrict W, float *__restrict y,
                           int64_t k, int64_t n)
{
    CS_MATVEC_BODY(cs_v8, 8)
}
#endif

typedef void (*cs_matvec_fn)(const float *, const float *, float *, int64_t, int64_t);
static cs_matvec_fn cs_matvec = cs_matvec_base;

/* Picks the kernel; returns 1 for AVX2+FMA, 0 for the baseline. */
static int cs_kernels_init(int allow_wide)
{
    cs_matvec = cs_matvec_base;
#ifdef CS_X86
    __builtin_cpu_init();
    if (allow_wide && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        cs_matvec = cs_matvec_avx2;
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
#define CS_LANES 8
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

#endif
