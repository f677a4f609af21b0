/* SHA-256 block compression with the x86 SHA extensions (SHA-NI: sha256rnds2, sha256msg1,
 * sha256msg2), for cext/orderwire.pyx's request signatures. ``cs_sha_ni_init`` says
 * whether this CPU has them (CPUID leaf 7 EBX bit 29, with SSSE3 and SSE4.1); where it
 * does not, or off x86-64 GCC/Clang, the caller keeps its portable C rounds. Both give
 * the same digest bit for bit (tests/unit/test_orderwire.py compares them with hashlib). */
#ifndef CRYPTOSCALP_SHA256_NI_H
#define CRYPTOSCALP_SHA256_NI_H

#include <stdint.h>

/* FIPS 180-4's round constants (the portable rounds in cext/orderwire.pyx use them too) */
static const uint32_t cs_sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>


static int cs_sha_ni_init(int allow)
{
    unsigned a, b, c, d;
    if (!allow || !__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;
}

/* h[8] (the state, as FIPS 180-4 names it: a..h) updated with one 64-byte block. The
 * instructions keep the state as two registers, ABEF and CDGH; a round pair takes four
 * message words plus constants; the message schedule for words 16..63 comes four at a
 * time from the four groups before (msg1: + sigma0, alignr: + W[t-7], msg2: + sigma1). */
__attribute__((target("sha,sse4.1,ssse3")))
static void cs_sha256_block_ni(uint32_t h[8], const uint8_t *p)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);    /* C D A B */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);   /* H G F E */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                          /* A B E F */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                                               /* C D G H */
    const __m128i abef = s0, cdgh = s1;
    __m128i w[4];
    for (int g = 0; g < 4; g++)
        w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        if (g >= 4) {          /* w[g & 3] held W[4g-16 .. 4g-13]; the others the next three groups */
            __m128i x = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
            x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
            w[g & 3] = _mm_sha256msg2_epu32(x, w[(g + 3) & 3]);
        }
        __m128i m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&cs_sha_k[4 * g]));
        s1 = _mm_sha256rnds2_epu32(s1, s0, m);
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m, 0x0E));
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
    t = _mm_shuffle_epi32(s0, 0x1B);                                                 /* F E B A */
    s1 = _mm_shuffle_epi32(s1, 0xB1);                                                /* D C H G */
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, s1, 0xF0));                /* D C B A */
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(s1, t, 8));                   /* H G F E */
}
#else
static int cs_sha_ni_init(int allow) { (void)allow; return 0; }
static void cs_sha256_block_ni(uint32_t h[8], const uint8_t *p) { (void)h; (void)p; }
#endif

#endif
