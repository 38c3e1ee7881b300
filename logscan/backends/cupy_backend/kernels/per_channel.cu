// logscan CUDA kernels: the per-channel kernel ("sequential" method).
//
// Summary of algorithm
// --------------------
// One thread per group of VEC adjacent channels (o, i..i+VEC-1) of the
// canonical (outer, T, inner) layout walks the whole time axis in order (see
// sequential_chunk.cuh: batches of steps loaded together, several loads in
// flight). Adjacent threads take adjacent channels, so with `inner`
// contiguous a warp reads whole 128-byte lines at every step; when `inner`
// is contiguous and every pointer and stride keeps 16-byte alignment the
// host picks VEC = 16 / sizeof(element) and each access is one 16-byte
// load or store. Work is O(T) per channel and every element is read and
// written exactly once: the fastest kernel when outer * inner / VEC threads
// fill the GPU.
//
// Grid/block: 1-D, grid-stride over channel groups (64-bit indices).
// Backward is one fused reverse pass (DESIGN section 3), reading each input
// once and writing each gradient once.
//
// Accuracy: a plain sequential float32 walk has an error growing like
// sqrt(T) ulp of |log h| when the gates stay near 1 (log-cumsum-exp: about
// 1e-4 absolute, 1e-5 relative at T = 65536, emulated on the CPU); the
// batch-local scan of forward_run rounds the carried state once per batch
// instead of once per step, and keeps that rounding in log space (a
// compensated state): with one slow decay repeated, which biases every
// rounding the same way, the plain walk had drifted by 7e-6 at T = 16384
// (emulated), and a split run agrees with the whole to rounding, not bits.
#include "sequential_chunk.cuh"

// ============================================================ forward
template <typename S, bool LOG, int VEC>
__global__ void logscan_per_channel_forward(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* out, logscan::i64 out_so, logscan::i64 out_st, logscan::i64 out_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 groups_per_row = inner / VEC;
    const i64 groups = outer * groups_per_row;
    for (i64 g = global_thread(); g < groups; g += grid_threads()) {
        const i64 o = g / groups_per_row;
        const i64 i = (g - o * groups_per_row) * VEC;
        C state[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v)
            state[v] = h0 ? to_compute(h0[o * h0_so + (i + v) * h0_si]) : Space<C, LOG>::identity_b();
        forward_run<S, LOG, VEC>(a + o * a_so + i * a_si, a_st, b + o * b_so + i * b_si, b_st,
                                 out + o * out_so + i * out_si, out_st, 0, T, state);
    }
}

// ============================================================ backward
template <typename S, bool LOG, int VEC>
__global__ void logscan_per_channel_backward(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner,
    const S* grad_h, logscan::i64 g_so, logscan::i64 g_st, logscan::i64 g_si,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* grad_a, logscan::i64 ga_so, logscan::i64 ga_st, logscan::i64 ga_si,
    S* grad_b, logscan::i64 gb_so, logscan::i64 gb_st, logscan::i64 gb_si,
    S* grad_h0, logscan::i64 gh0_so, logscan::i64 gh0_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 groups_per_row = inner / VEC;
    const i64 groups = outer * groups_per_row;
    for (i64 g = global_thread(); g < groups; g += grid_threads()) {
        const i64 o = g / groups_per_row;
        const i64 i = (g - o * groups_per_row) * VEC;
        const BackwardPointers<S> p = {
            grad_h + o * g_so + i * g_si, g_st, a + o * a_so + i * a_si, a_st,
            b + o * b_so + i * b_si,      b_st, h + o * h_so + i * h_si, h_st,
            grad_a + o * ga_so + i * ga_si, ga_st, grad_b + o * gb_so + i * gb_si, gb_st};
        C h_init[VEC], u[VEC], w_next[VEC], unused[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) {
            h_init[v] = h0 ? to_compute(h0[o * h0_so + (i + v) * h0_si]) : Space<C, LOG>::identity_b();
            u[v] = C(0);       // nothing flows back from past the end
            w_next[v] = C(0);
            unused[v] = C(1);
        }
        backward_run<S, LOG, VEC, true>(p, 0, T, h_init, u, w_next, unused);
        if (grad_h0) {
            // dL/dh0 = w_0 u_0
#pragma unroll
            for (int v = 0; v < VEC; ++v) grad_h0[o * gh0_so + (i + v) * gh0_si] = to_storage<S>(w_next[v] * u[v]);
        }
    }
}
