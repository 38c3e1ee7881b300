// logscan CUDA kernels: one thread walks a run of time steps of VEC channels.
//
// Summary of algorithm
// --------------------
// The building block of the per-channel kernel and of the chunked hybrid.
// A thread owns VEC adjacent channels and walks time steps t0..t1-1 (forward)
// or t1-1..t0 (backward), BATCH steps at a time: it first issues all the
// loads of a batch (several independent loads in flight per buffer), then
// computes, then stores.
//
// Forward, within a batch the thread scans the batch's own maps from the
// identity, (A_k, B_k) = (a_0, b_0) then ... then (a_k, b_k), and only then
// applies each prefix to the carried state: h_k = A_k (x) h + B_k. The
// carried state thus takes one rounding per *batch* instead of one per step,
// and in log space it also keeps that rounding (the state is h + low,
// Space::apply_compensated): a plain walk drifts like sqrt(steps) ulp when
// the gates are ~1, and like steps ulp when one slow decay repeats (the
// rounding of log a + log h then has the same sign every step). The extra
// combine per step is free in a kernel bound by memory bandwidth. A run
// split in two and continued from its last state agrees to rounding.
//
// Backward (DESIGN section 3), one fused reverse pass: with
// g_t = dL/dh_t (or dL/dlog h_t) the gradient flowing into step t is
// u_t = g_t + w_{t+1} u_{t+1}, where w_t = d h_t / d h_{t-1} is a_t in linear
// space and exp(log a_t + log h_{t-1} - log h_t) in [0, 1] in log space (0
// where log h_t = -inf). Then dL/da_t = u_t h_{t-1} (linear) or u_t w_t
// (log), dL/db_t = u_t (linear) or u_t exp(log b_t - log h_t) (log), and
// dL/dh0 = w_0 u_0. Each step needs h_{t-1}, which is the next step's h_t,
// so h is read once.
//
// All indices are 64-bit; pointers come in already offset to channel
// (o, i) at t = 0 and advance by the time stride (any sign).
#pragma once
#include "common.cuh"

namespace logscan {

// ------------------------------------------------------------ forward
// Scan steps [t0, t1) from `state`; writes h_t to out, leaves h_{t1-1} in state.
template <typename S, bool LOG, int VEC>
__device__ __forceinline__ void forward_run(const S* a, i64 a_st, const S* b, i64 b_st, S* out, i64 out_st,
                                            i64 t0, i64 t1, typename compute_of<S>::type (&state)[VEC]) {
    typedef typename compute_of<S>::type C;
    typedef Space<C, LOG> Sp;
    const int BATCH = batch_of<S, VEC>::value;
    C low[VEC];  // the carried state's rounding error (log space; see Space::apply_compensated)
#pragma unroll
    for (int v = 0; v < VEC; ++v) low[v] = C(0);
    for (i64 t = t0; t < t1; t += BATCH) {
        const i64 left = t1 - t;
        const int n = left < BATCH ? static_cast<int>(left) : BATCH;
        C xa[BATCH][VEC], xb[BATCH][VEC];
        // ---- loads: the whole batch in flight
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            if (k < n) {
                load<S, VEC>(a + (t + k) * a_st, xa[k]);
                load<S, VEC>(b + (t + k) * b_st, xb[k]);
            }
        }
        // ---- batch-local scan, then the carried state through each prefix; the state carried to the
        //      next batch is the whole batch's map applied once more, compensated
#pragma unroll
        for (int v = 0; v < VEC; ++v) {
            C A = Sp::identity_a(), B = Sp::identity_b();
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                if (k < n) {
                    Sp::then(A, B, xa[k][v], xb[k][v]);
                    xb[k][v] = Sp::apply(A, state[v], B);
                }
            }
            state[v] = Sp::apply_compensated(A, state[v], B, low[v]);
        }
        // ---- stores
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            if (k < n) store<S, VEC>(out + (t + k) * out_st, xb[k]);
        }
    }
}

// The map of steps [t0, t1) as one pair (A, B): h_{t1-1} = A (x) h_{t0-1} (+) B.
template <typename S, bool LOG, int VEC>
__device__ __forceinline__ void forward_reduce(const S* a, i64 a_st, const S* b, i64 b_st, i64 t0, i64 t1,
                                               typename compute_of<S>::type (&A)[VEC],
                                               typename compute_of<S>::type (&B)[VEC]) {
    typedef typename compute_of<S>::type C;
    typedef Space<C, LOG> Sp;
    const int BATCH = batch_of<S, VEC>::value;
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
        A[v] = Sp::identity_a();
        B[v] = Sp::identity_b();
    }
    for (i64 t = t0; t < t1; t += BATCH) {
        const i64 left = t1 - t;
        const int n = left < BATCH ? static_cast<int>(left) : BATCH;
        C xa[BATCH][VEC], xb[BATCH][VEC];
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            if (k < n) {
                load<S, VEC>(a + (t + k) * a_st, xa[k]);
                load<S, VEC>(b + (t + k) * b_st, xb[k]);
            }
        }
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            if (k < n) {
#pragma unroll
                for (int v = 0; v < VEC; ++v) Sp::then(A[v], B[v], xa[k][v], xb[k][v]);
            }
        }
    }
}

// ------------------------------------------------------------ backward
// The buffers of a backward pass for one group of VEC channels.
template <typename S> struct BackwardPointers {
    const S* grad_h; i64 grad_h_st;   // g_t
    const S* a; i64 a_st;             // a_t or log a_t
    const S* b; i64 b_st;             // log b_t (log space only)
    const S* h; i64 h_st;             // forward output h_t or log h_t
    S* grad_a; i64 grad_a_st;
    S* grad_b; i64 grad_b_st;
};

// w_t = d log h_t / d log h_{t-1} from the loaded values (log space; in
// linear space w_t is just a_t).
template <typename C, bool LOG> struct Weight;
template <typename C> struct Weight<C, true> {
    __device__ static C of(C log_a, C log_h_prev, C log_h) {
        return log_h == negative_infinity<C>() ? C(0) : exp_fast(log_a + log_h_prev - log_h);
    }
    __device__ static C share_of_b(C log_b, C log_h) {
        return log_h == negative_infinity<C>() ? C(0) : exp_fast(log_b - log_h);
    }
};

// w_t for one step (t >= 0), reading h_{t-1} or, at t = 0, `h_init`.
template <typename S, bool LOG, int VEC>
__device__ __forceinline__ void weight_at(const BackwardPointers<S>& p, i64 t,
                                          const typename compute_of<S>::type (&h_init)[VEC],
                                          typename compute_of<S>::type (&w)[VEC]) {
    typedef typename compute_of<S>::type C;
    C xa[VEC];
    load<S, VEC>(p.a + t * p.a_st, xa);
    if constexpr (LOG) {
        C xh[VEC], xp[VEC];
        load<S, VEC>(p.h + t * p.h_st, xh);
        if (t > 0) {
            load<S, VEC>(p.h + (t - 1) * p.h_st, xp);
        } else {
#pragma unroll
            for (int v = 0; v < VEC; ++v) xp[v] = h_init[v];
        }
#pragma unroll
        for (int v = 0; v < VEC; ++v) w[v] = Weight<C, LOG>::of(xa[v], xp[v], xh[v]);
    } else {
#pragma unroll
        for (int v = 0; v < VEC; ++v) w[v] = xa[v];
    }
}

// Walk t = t1-1 down to t0. On entry u = u_{t1} (0 past the end) and
// w_next = w_{t1} (0 past the end); on exit u = u_{t0} and w_next = w_{t0}.
// WRITE = true writes the gradients. WRITE = false only forms the run's map
// u_{t0} = A u_{t1} + B (a linear-space pair, whatever the space of the
// forward scan): call it with u = 0 and A = 1, and u ends as B.
template <typename S, bool LOG, int VEC, bool WRITE>
__device__ __forceinline__ void backward_run(const BackwardPointers<S>& p, i64 t0, i64 t1,
                                             const typename compute_of<S>::type (&h_init)[VEC],
                                             typename compute_of<S>::type (&u)[VEC],
                                             typename compute_of<S>::type (&w_next)[VEC],
                                             typename compute_of<S>::type (&A)[VEC]) {
    typedef typename compute_of<S>::type C;
    const int BATCH = batch_of<S, VEC>::value;
    for (i64 end = t1; end > t0; end -= BATCH) {
        const i64 left = end - t0;
        const int n = left < BATCH ? static_cast<int>(left) : BATCH;
        // step k of the batch is t = end - 1 - k; xp[k] holds h_{t-1}
        C xg[BATCH][VEC], xa[BATCH][VEC], xb[BATCH][VEC], xh[BATCH][VEC], xp[BATCH][VEC];
        // ---- loads: the whole batch in flight
#pragma unroll
        for (int k = 0; k < BATCH; ++k) {
            if (k < n) {
                const i64 t = end - 1 - k;
                load<S, VEC>(p.grad_h + t * p.grad_h_st, xg[k]);
                load<S, VEC>(p.a + t * p.a_st, xa[k]);
                if constexpr (LOG) load<S, VEC>(p.h + t * p.h_st, xh[k]);
                if constexpr (LOG && WRITE) load<S, VEC>(p.b + t * p.b_st, xb[k]);
                if constexpr (LOG || WRITE) {
                    if (t > 0) {
                        load<S, VEC>(p.h + (t - 1) * p.h_st, xp[k]);
                    } else {
#pragma unroll
                        for (int v = 0; v < VEC; ++v) xp[k][v] = h_init[v];
                    }
                }
            }
        }
        // ---- the reverse recurrence u_t = g_t + w_{t+1} u_{t+1}
#pragma unroll
        for (int v = 0; v < VEC; ++v) {
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                if (k < n) {
                    C w;
                    if constexpr (LOG) w = Weight<C, LOG>::of(xa[k][v], xp[k][v], xh[k][v]);
                    else w = xa[k][v];
                    u[v] = fma(w_next[v], u[v], xg[k][v]);
                    if constexpr (!WRITE) A[v] = A[v] * w_next[v];
                    if constexpr (WRITE && LOG) {
                        xa[k][v] = u[v] * w;
                        xb[k][v] = u[v] * Weight<C, LOG>::share_of_b(xb[k][v], xh[k][v]);
                    }
                    if constexpr (WRITE && !LOG) {
                        xa[k][v] = u[v] * xp[k][v];
                        xb[k][v] = u[v];
                    }
                    w_next[v] = w;
                }
            }
        }
        // ---- stores
        if constexpr (WRITE) {
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                if (k < n) {
                    const i64 t = end - 1 - k;
                    store<S, VEC>(p.grad_a + t * p.grad_a_st, xa[k]);
                    store<S, VEC>(p.grad_b + t * p.grad_b_st, xb[k]);
                }
            }
        }
    }
}

}  // namespace logscan
