// logscan CUDA kernels: shared definitions.
//
// Summary
// -------
// Everything the algorithm files share: the element types (float, double, and
// the 16-bit `half_t` and `bfloat16_t`, stored in 16 bits and computed in
// float), the two
// spaces a scan runs in (log space and linear space) with their associative
// combine, strided 64-bit addressing, and 16-byte vector loads.
//
// A step of the recurrence is the affine map h -> a*h + b. Running the map
// (a1, b1) and then (a2, b2) is the map (a1*a2, a2*b1 + b2); in log space
// the same pair reads (A1 + A2, logaddexp(A2 + B1, B2)). The identity is
// (1, 0), or (0, -inf) in log space.
//
// The files include no header at all (not even cuda_fp16.h), so NVRTC
// compiles them without any include path, and plain nvcc builds the same
// sources into a C library. No Python-specific glue lives here.
#pragma once

namespace logscan {

typedef long long i64;

// ------------------------------------------------------------ element types
// Half precision, stored as its 16 bits and converted with the PTX cvt
// instructions (what cuda_fp16.h does too), computed in float.
struct half_t {
    unsigned short bits;
};

template <typename S> struct compute_of { typedef S type; };
template <> struct compute_of<half_t> { typedef float type; };

__device__ __forceinline__ float to_compute(float x) { return x; }
__device__ __forceinline__ double to_compute(double x) { return x; }
__device__ __forceinline__ float to_compute(half_t x) {
#ifdef LOGSCAN_HOST_EMULATION  // the CPU emulation used by the tests
    _Float16 h;
    __builtin_memcpy(&h, &x.bits, 2);
    return static_cast<float>(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
#endif
}

template <typename S> __device__ __forceinline__ S to_storage(typename compute_of<S>::type x);
template <> __device__ __forceinline__ float to_storage<float>(float x) { return x; }
template <> __device__ __forceinline__ double to_storage<double>(double x) { return x; }
template <> __device__ __forceinline__ half_t to_storage<half_t>(float x) {
    half_t h;
#ifdef LOGSCAN_HOST_EMULATION
    const _Float16 f = static_cast<_Float16>(x);
    __builtin_memcpy(&h.bits, &f, 2);
#else
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
#endif
    return h;
}

// bfloat16 (__nv_bfloat16's layout): the upper 16 bits of a float. Widening
// is exact (a shift); narrowing rounds to nearest even in integer arithmetic
// (the bits cvt.rn.bf16.f32 gives on sm_80+, on every architecture, and the
// very code the CPU emulation runs), a NaN staying a quiet NaN.
struct bfloat16_t {
    unsigned short bits;
};

template <> struct compute_of<bfloat16_t> { typedef float type; };

__device__ __forceinline__ float to_compute(bfloat16_t x) {
    return __uint_as_float(static_cast<unsigned>(x.bits) << 16);
}

template <> __device__ __forceinline__ bfloat16_t to_storage<bfloat16_t>(float x) {
    const unsigned u = __float_as_uint(x);
    const unsigned rounded = (u & 0x7fffffffu) > 0x7f800000u ? u | 0x00400000u : u + 0x7fffu + ((u >> 16) & 1u);
    bfloat16_t h;
    h.bits = static_cast<unsigned short>(rounded >> 16);
    return h;
}

template <typename C> __device__ __forceinline__ C negative_infinity();
template <> __device__ __forceinline__ float negative_infinity<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double negative_infinity<double>() {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ULL));
}

// ------------------------------------------------------------ math
// Accuracy budget (float32). The only transcendental work per step is
// log1p(exp(-|x - y|)) inside logaddexp. __expf (ex2.approx after a multiply
// by log2 e) has a relative error of about 2 ulp plus |d| * 2^-24 from the
// rounded product; its result e = exp(-|d|) <= 1 enters the answer only as
// log1p(e) <= e, so the absolute error it adds is at most
// max_d e^-d (2 + d) 2^-24 = 2^-23 ~ 1.2e-7 (at d = 0): about one ulp of
// any |log h| >= 1.
// log1pf is the accurate libdevice version (1 ulp), not __logf(1 + e), which
// would lose all of e's digits below 2^-24 and bias long sums. So each
// combine costs a few ulp, and the per-method error growth is discussed in
// each algorithm file. float64 uses the accurate exp/log1p.
__device__ __forceinline__ float exp_fast(float x) { return __expf(x); }
__device__ __forceinline__ double exp_fast(double x) { return exp(x); }
__device__ __forceinline__ float log1p_accurate(float x) { return log1pf(x); }
__device__ __forceinline__ double log1p_accurate(double x) { return log1p(x); }

// logaddexp(x, y) = log(e^x + e^y), exact at infinities and NaN-propagating:
// equal arguments (including -inf, -inf and +inf, +inf, where x - y would be
// NaN) take the first branch; a NaN fails every comparison and falls through.
template <typename C> __device__ __forceinline__ C logaddexp(C x, C y) {
    if (x == y) return x + C(0.693147180559945309417232121458176568);
    const C d = x - y;
    if (d > C(0)) return x + log1p_accurate(exp_fast(-d));
    if (d <= C(0)) return y + log1p_accurate(exp_fast(d));
    return d;  // NaN
}

// ------------------------------------------------------------ the two spaces
// Space<C, LOG>: the pair (A, B) of an affine map and how maps compose.
template <typename C, bool LOG> struct Space;

template <typename C> struct Space<C, true> {
    __device__ static C identity_a() { return C(0); }
    __device__ static C identity_b() { return negative_infinity<C>(); }
    // The state h after the map (a, b): log(a*h + b) in log space.
    __device__ static C apply(C a, C h, C b) { return logaddexp(a + h, b); }
    // (A, B) <- (A, B) then (a, b).
    __device__ static void then(C& A, C& B, C a, C b) {
        B = logaddexp(a + B, b);
        A = A + a;
    }
    // apply() from the state h + low, leaving the rounding error of the result in low: the rounding
    // of a + h and of the final addition (TwoSum each). A state carried over many steps with one
    // slow decay otherwise drifts: that rounding has the same sign every step. When b dominates,
    // the old low part is forgotten with the old state.
    __device__ static C apply_compensated(C a, C h, C b, C& low) {
        const C x = a + h;
        const C b_virtual = x - a;
        const C err = (a - (x - b_virtual)) + (h - b_virtual);
        C keep = (x - x == C(0)) ? low + err : low;  // (x - x is 0 only for a finite x)
        C larger = x, smaller = b;
        if (x < b) {
            larger = b;
            smaller = x;
            keep = C(0);
        }
        if (smaller == negative_infinity<C>() || larger == -negative_infinity<C>()) {
            low = C(0);
            return larger;
        }
        const C correction = log1p_accurate(exp_fast(smaller - larger)) + keep;
        const C high = larger + correction;
        const C part = high - larger;
        low = (larger - (high - part)) + (correction - part);
        return high;
    }
};

template <typename C> struct Space<C, false> {
    __device__ static C identity_a() { return C(1); }
    __device__ static C identity_b() { return C(0); }
    __device__ static C apply(C a, C h, C b) { return fma(a, h, b); }
    __device__ static void then(C& A, C& B, C a, C b) {
        B = fma(a, B, b);
        A = A * a;
    }
    __device__ static C apply_compensated(C a, C h, C b, C&) { return fma(a, h, b); }
};

// ------------------------------------------------------------ loads and stores
// VEC consecutive channels (inner stride 1) in one 16-byte access when
// VEC * sizeof(S) == 16; the host only picks VEC > 1 when every pointer
// and every outer/time stride keeps the 16-byte alignment.
template <typename S, int VEC> struct alignas(sizeof(S) * VEC) Pack {
    S v[VEC];
};

template <typename S, int VEC>
__device__ __forceinline__ void load(const S* p, typename compute_of<S>::type (&x)[VEC]) {
    const Pack<S, VEC> pack = *reinterpret_cast<const Pack<S, VEC>*>(p);
#pragma unroll
    for (int v = 0; v < VEC; ++v) x[v] = to_compute(pack.v[v]);
}

template <typename S, int VEC>
__device__ __forceinline__ void store(S* p, const typename compute_of<S>::type (&x)[VEC]) {
    Pack<S, VEC> pack;
#pragma unroll
    for (int v = 0; v < VEC; ++v) pack.v[v] = to_storage<S>(x[v]);
    *reinterpret_cast<Pack<S, VEC>*>(p) = pack;
}

// Steps kept in registers per batch: several independent loads in flight
// per buffer (up to 64 bytes per thread), 4 to 8 steps, which keeps the
// backward (5 buffers) near 128 registers. To be tuned on the GPU.
template <typename S, int VEC> struct batch_of {
    static const int raw = 64 / static_cast<int>(sizeof(S) * VEC);
    static const int value = raw < 4 ? 4 : (raw > 8 ? 8 : raw);
};

// Grid-stride loops over 64-bit index spaces.
__device__ __forceinline__ i64 global_thread() {
    return static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ i64 grid_threads() { return static_cast<i64>(gridDim.x) * blockDim.x; }

}  // namespace logscan
