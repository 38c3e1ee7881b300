// logscan CUDA kernels: the chunked hybrid ("chunked" method).
//
// Summary of algorithm
// --------------------
// For few channels and long sequences, where one thread per channel leaves
// the GPU idle. The time axis of every channel is cut into chunks of L steps
// (the host picks L so that outer * n_chunks * inner threads fill the GPU)
// and the scan runs in three phases (reduce, then scan, then re-scan):
//
//   1. chunk maps: one thread per (channel, chunk) walks its chunk and
//      forms the chunk's map as one pair (A, B) (sequential_chunk.cuh);
//   2. carry between chunks: one block per channel scans the n_chunks pairs
//      in tiles of blockDim pairs, with warp-shuffle scans inside each warp,
//      a shuffle scan of the warp totals, and a running carry from tile to
//      tile; it writes each chunk's incoming state (exclusive scan, seeded
//      with h0);
//   3. chunk fix-up: one thread per (channel, chunk) walks its chunk again
//      from the incoming state and writes the outputs.
//
// Threads are numbered with `inner` fastest, so when `inner` is contiguous
// a warp reads 32 adjacent channels of the same chunk (coalesced); the
// chunk pairs live in the workspace as [outer][n_chunks][inner].
//
// Backward runs the same three phases backwards in time on the linear
// recurrence of DESIGN section 3, u_t = g_t + w_{t+1} u_{t+1}: phase 1
// forms each chunk's map u_{t0} = A u_{t1} + B, phase 2 scans those maps from
// the last chunk to the first (the same carry kernel, linear space, given a
// negative chunk stride), phase 3 re-walks each chunk writing the gradients.
//
// Memory traffic: inputs are read twice (phases 1 and 3), outputs written
// once; phase 2 touches 3 / L of the data.
//
// Accuracy: a chunk walk rounds like a sequential scan of L steps, the carry
// scan like a tree over blockDim chunks plus a walk over n_chunks / blockDim
// tiles, so float32 errors grow like sqrt(L) + log2(blockDim) +
// sqrt(n_chunks / blockDim) ulp instead of sqrt(T).
#include "sequential_chunk.cuh"

namespace logscan {

// (channel, chunk) of thread g, numbered [outer][n_chunks][inner].
struct ChunkIndex {
    i64 o, c, i;
    __device__ ChunkIndex(i64 g, i64 n_chunks, i64 inner) {
        i = g % inner;
        const i64 row = g / inner;
        c = row % n_chunks;
        o = row / n_chunks;
    }
};

// ------------------------------------------------------------ warp and block scans
// Inclusive scan of (A, B) pairs across the 32 lanes of a warp.
template <typename C, bool LOG> __device__ __forceinline__ void warp_scan(C& A, C& B, int lane) {
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        C A_left = __shfl_up_sync(0xffffffffu, A, d);
        C B_left = __shfl_up_sync(0xffffffffu, B, d);
        if (lane >= d) {
            Space<C, LOG>::then(A_left, B_left, A, B);
            A = A_left;
            B = B_left;
        }
    }
}

}  // namespace logscan

// ============================================================ phase 1: chunk maps (forward)
template <typename S, bool LOG>
__global__ void logscan_chunked_forward_reduce(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 chunk, logscan::i64 n_chunks,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    typename logscan::compute_of<S>::type* total_a, typename logscan::compute_of<S>::type* total_b) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 n = outer * n_chunks * inner;
    for (i64 g = global_thread(); g < n; g += grid_threads()) {
        const ChunkIndex x(g, n_chunks, inner);
        const i64 t0 = x.c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
        C A[1], B[1];
        forward_reduce<S, LOG, 1>(a + x.o * a_so + x.i * a_si, a_st, b + x.o * b_so + x.i * b_si, b_st, t0, t1, A, B);
        total_a[g] = A[0];
        total_b[g] = B[0];
    }
}

// ============================================================ phase 2: carry between chunks
// One block per channel (grid-stride); blockDim a multiple of 32, at most
// 1024; dynamic shared memory (64 + blockDim) * sizeof(C). Pairs of chunk c
// of channel (o, i) sit at o*so + c*sc + i*si of total_a/total_b; carry
// (same layout) gets the state entering chunk c. h0 (of the user's storage type S) seeds the scan; when null the seed is the
// identity state (-inf in log space, 0 in linear space).
template <typename S, bool LOG>
__global__ void logscan_chunk_carry_scan(
    logscan::i64 outer, logscan::i64 n_chunks, logscan::i64 inner,
    const typename logscan::compute_of<S>::type* total_a, const typename logscan::compute_of<S>::type* total_b,
    typename logscan::compute_of<S>::type* carry, logscan::i64 so, logscan::i64 sc, logscan::i64 si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    typedef Space<C, LOG> Sp;
    // shared memory: 64 + blockDim values of C
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    C* warp_a = reinterpret_cast<C*>(shared_bytes);
    C* warp_b = warp_a + 32;
    C* state_after = warp_b + 32;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;
    for (i64 channel = blockIdx.x; channel < outer * inner; channel += gridDim.x) {
        const i64 o = channel / inner, i = channel - o * inner;
        const i64 base = o * so + i * si;
        C state = h0 ? to_compute(h0[o * h0_so + i * h0_si]) : Sp::identity_b();
        for (i64 tile = 0; tile < n_chunks; tile += blockDim.x) {
            const i64 c = tile + tid;
            C A = Sp::identity_a(), B = Sp::identity_b();
            if (c < n_chunks) {
                A = total_a[base + c * sc];
                B = total_b[base + c * sc];
            }
            // ---- scan within each warp
            warp_scan<C, LOG>(A, B, lane);
            if (lane == 31) {
                warp_a[warp] = A;
                warp_b[warp] = B;
            }
            __syncthreads();
            // ---- scan of the warp totals, by the first warp
            if (warp == 0) {
                C WA = lane < n_warps ? warp_a[lane] : Sp::identity_a();
                C WB = lane < n_warps ? warp_b[lane] : Sp::identity_b();
                warp_scan<C, LOG>(WA, WB, lane);
                warp_a[lane] = WA;
                warp_b[lane] = WB;
            }
            __syncthreads();
            // ---- carry into the tile, then each chunk's incoming state
            if (warp > 0) {
                C PA = warp_a[warp - 1], PB = warp_b[warp - 1];
                Sp::then(PA, PB, A, B);
                A = PA;
                B = PB;
            }
            state_after[tid] = Sp::apply(A, state, B);
            __syncthreads();
            if (c < n_chunks) carry[base + c * sc] = tid > 0 ? state_after[tid - 1] : state;
            state = state_after[blockDim.x - 1];  // padding pairs are identities
            __syncthreads();
        }
    }
}

// ============================================================ phase 3: chunk fix-up (forward)
template <typename S, bool LOG>
__global__ void logscan_chunked_forward_apply(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 chunk, logscan::i64 n_chunks,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    S* out, logscan::i64 out_so, logscan::i64 out_st, logscan::i64 out_si,
    const typename logscan::compute_of<S>::type* carry) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 n = outer * n_chunks * inner;
    for (i64 g = global_thread(); g < n; g += grid_threads()) {
        const ChunkIndex x(g, n_chunks, inner);
        const i64 t0 = x.c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
        C state[1] = {carry[g]};
        forward_run<S, LOG, 1>(a + x.o * a_so + x.i * a_si, a_st, b + x.o * b_so + x.i * b_si, b_st,
                               out + x.o * out_so + x.i * out_si, out_st, t0, t1, state);
    }
}

// ============================================================ backward, phases 1 and 3
namespace logscan {
template <typename S>
__device__ __forceinline__ BackwardPointers<S> backward_pointers(
    const ChunkIndex& x, const S* grad_h, i64 g_so, i64 g_st, i64 g_si, const S* a, i64 a_so, i64 a_st, i64 a_si,
    const S* b, i64 b_so, i64 b_st, i64 b_si, const S* h, i64 h_so, i64 h_st, i64 h_si,
    S* grad_a, i64 ga_so, i64 ga_st, i64 ga_si, S* grad_b, i64 gb_so, i64 gb_st, i64 gb_si) {
    const BackwardPointers<S> p = {
        grad_h + x.o * g_so + x.i * g_si,    g_st,  a + x.o * a_so + x.i * a_si,          a_st,
        b + x.o * b_so + x.i * b_si,         b_st,  h + x.o * h_so + x.i * h_si,          h_st,
        grad_a ? grad_a + x.o * ga_so + x.i * ga_si : grad_a, ga_st,
        grad_b ? grad_b + x.o * gb_so + x.i * gb_si : grad_b, gb_st};
    return p;
}
}  // namespace logscan

// Phase 1: u_{t0} = A u_{t1} + B for each chunk [t0, t1).
template <typename S, bool LOG>
__global__ void logscan_chunked_backward_reduce(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 chunk, logscan::i64 n_chunks,
    const S* grad_h, logscan::i64 g_so, logscan::i64 g_st, logscan::i64 g_si,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    typename logscan::compute_of<S>::type* total_a, typename logscan::compute_of<S>::type* total_b) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 n = outer * n_chunks * inner;
    for (i64 g = global_thread(); g < n; g += grid_threads()) {
        const ChunkIndex x(g, n_chunks, inner);
        const i64 t0 = x.c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
        const BackwardPointers<S> p = backward_pointers<S>(x, grad_h, g_so, g_st, g_si, a, a_so, a_st, a_si, b, b_so,
                                                           b_st, b_si, h, h_so, h_st, h_si, nullptr, 0, 0, 0,
                                                           nullptr, 0, 0, 0);
        C h_init[1] = {h0 ? to_compute(h0[x.o * h0_so + x.i * h0_si]) : Space<C, LOG>::identity_b()};
        C u[1] = {C(0)}, w_next[1] = {C(0)}, A[1] = {C(1)};
        if (t1 < T) weight_at<S, LOG, 1>(p, t1, h_init, w_next);
        backward_run<S, LOG, 1, false>(p, t0, t1, h_init, u, w_next, A);
        total_a[g] = A[0];
        total_b[g] = u[0];
    }
}

// Phase 3: re-walk each chunk from u_{t1} (from phase 2), writing gradients.
template <typename S, bool LOG>
__global__ void logscan_chunked_backward_apply(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 chunk, logscan::i64 n_chunks,
    const S* grad_h, logscan::i64 g_so, logscan::i64 g_st, logscan::i64 g_si,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* grad_a, logscan::i64 ga_so, logscan::i64 ga_st, logscan::i64 ga_si,
    S* grad_b, logscan::i64 gb_so, logscan::i64 gb_st, logscan::i64 gb_si,
    S* grad_h0, logscan::i64 gh0_so, logscan::i64 gh0_si,
    const typename logscan::compute_of<S>::type* carry) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    const i64 n = outer * n_chunks * inner;
    for (i64 g = global_thread(); g < n; g += grid_threads()) {
        const ChunkIndex x(g, n_chunks, inner);
        const i64 t0 = x.c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
        const BackwardPointers<S> p = backward_pointers<S>(x, grad_h, g_so, g_st, g_si, a, a_so, a_st, a_si, b, b_so,
                                                           b_st, b_si, h, h_so, h_st, h_si, grad_a, ga_so, ga_st,
                                                           ga_si, grad_b, gb_so, gb_st, gb_si);
        C h_init[1] = {h0 ? to_compute(h0[x.o * h0_so + x.i * h0_si]) : Space<C, LOG>::identity_b()};
        C u[1] = {carry[g]}, w_next[1] = {C(0)}, unused[1] = {C(1)};
        if (t1 < T) weight_at<S, LOG, 1>(p, t1, h_init, w_next);
        backward_run<S, LOG, 1, true>(p, t0, t1, h_init, u, w_next, unused);
        if (t0 == 0 && grad_h0) grad_h0[x.o * gh0_so + x.i * gh0_si] = to_storage<S>(w_next[0] * u[0]);
    }
}
