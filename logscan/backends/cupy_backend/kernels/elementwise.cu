// logscan CUDA kernels: the elementwise halves of the textbook backward.
//
// Summary of algorithm
// --------------------
// The "hillis_steele" and "blelloch" methods compute the backward of DESIGN
// section 3 as three steps, so that the reverse scan in the middle is the
// textbook scan itself:
//
//   1. next_weight: w_next[t] = w_{t+1} (0 at t = T-1), where w_t is a_t in
//      linear space and exp(log a_t + log h_{t-1} - log h_t) in log space
//      (0 where log h_t = -inf, so -inf - (-inf) never happens);
//   2. (host) the reverse linear scan u_t = g_t + w_next[t] u_{t+1}, run
//      with the chosen textbook method over time-reversed views;
//   3. gradients: dL/da_t = u_t h_{t-1} (linear) or u_t w_t (log),
//      dL/db_t = u_t (linear) or u_t exp(log b_t - log h_t) (log), and
//      dL/dh0 = w_0 u_0.
//
// One thread per element, grid-stride over outer * T * inner (64-bit);
// `w_next` and `u` are contiguous [outer][T][inner] workspace arrays.
#include "common.cuh"

namespace logscan {

// w_t of element (o, t, i): d h_t / d h_{t-1}.
template <typename S, bool LOG>
__device__ __forceinline__ typename compute_of<S>::type weight(
    const S* a, i64 a_st, const S* h, i64 h_st, typename compute_of<S>::type h_init, i64 t) {
    typedef typename compute_of<S>::type C;
    const C at = to_compute(a[t * a_st]);
    if constexpr (LOG) {
        const C log_h = to_compute(h[t * h_st]);
        const C log_h_prev = t > 0 ? to_compute(h[(t - 1) * h_st]) : h_init;
        return log_h == negative_infinity<C>() ? C(0) : exp_fast(at + log_h_prev - log_h);
    } else {
        return at;
    }
}

struct ElementIndex {
    i64 o, t, i;
    __device__ ElementIndex(i64 g, i64 T, i64 inner) {
        i = g % inner;
        const i64 row = g / inner;
        t = row % T;
        o = row / T;
    }
};

}  // namespace logscan

// ============================================================ step 1: w_{t+1}
template <typename S, bool LOG>
__global__ void logscan_backward_next_weight(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* w_next) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    for (i64 g = global_thread(); g < outer * T * inner; g += grid_threads()) {
        const ElementIndex x(g, T, inner);
        C w = C(0);
        if (x.t + 1 < T) {
            const C h_init = h0 ? to_compute(h0[x.o * h0_so + x.i * h0_si]) : Space<C, LOG>::identity_b();
            w = weight<S, LOG>(a + x.o * a_so + x.i * a_si, a_st, h + x.o * h_so + x.i * h_si, h_st, h_init, x.t + 1);
        }
        w_next[g] = to_storage<S>(w);
    }
}

// ============================================================ step 3: gradients from u
template <typename S, bool LOG>
__global__ void logscan_backward_gradients(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner,
    const S* u,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* grad_a, logscan::i64 ga_so, logscan::i64 ga_st, logscan::i64 ga_si,
    S* grad_b, logscan::i64 gb_so, logscan::i64 gb_st, logscan::i64 gb_si,
    S* grad_h0, logscan::i64 gh0_so, logscan::i64 gh0_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    for (i64 g = global_thread(); g < outer * T * inner; g += grid_threads()) {
        const ElementIndex x(g, T, inner);
        const C h_init = h0 ? to_compute(h0[x.o * h0_so + x.i * h0_si]) : Space<C, LOG>::identity_b();
        const S* ac = a + x.o * a_so + x.i * a_si;
        const S* hc = h + x.o * h_so + x.i * h_si;
        const C ut = to_compute(u[g]);
        const C w = weight<S, LOG>(ac, a_st, hc, h_st, h_init, x.t);
        C da, db;
        if constexpr (LOG) {
            const C log_h = to_compute(hc[x.t * h_st]);
            const C log_b = to_compute(b[x.o * b_so + x.t * b_st + x.i * b_si]);
            da = ut * w;
            db = ut * (log_h == negative_infinity<C>() ? C(0) : exp_fast(log_b - log_h));
        } else {
            da = ut * (x.t > 0 ? to_compute(hc[(x.t - 1) * h_st]) : h_init);
            db = ut;
        }
        grad_a[x.o * ga_so + x.t * ga_st + x.i * ga_si] = to_storage<S>(da);
        grad_b[x.o * gb_so + x.t * gb_st + x.i * gb_si] = to_storage<S>(db);
        if (x.t == 0 && grad_h0) grad_h0[x.o * gh0_so + x.i * gh0_si] = to_storage<S>(w * ut);
    }
}
