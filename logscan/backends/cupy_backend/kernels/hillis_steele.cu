// logscan CUDA kernels: textbook Hillis-Steele scan ("hillis_steele" method).
//
// Summary of algorithm
// --------------------
// One element per thread, a tile of blockDim elements per block, in shared
// memory. In round d = 1, 2, 4, ... every element t >= d combines with the
// element d to its left (element t - d's pair first, then t's), reading one
// buffer and writing the other (double buffering, one barrier per round):
// after ceil(log2 blockDim) rounds each element holds its inclusive prefix.
// O(n log n) work, log n depth. Tiles are joined by the reduce-then-scan
// frame of textbook.cuh. Float32 error grows like log2 T ulp (a tree).
#include "textbook.cuh"

namespace logscan {

// ------------------------------------------------------------ the tile scan
// In: this thread's pair; out: its inclusive prefix over the tile.
// Shared memory: 4 * blockDim values of C.
template <typename C, bool LOG> __device__ __forceinline__ void hillis_steele_tile(C* shared, C& A, C& B) {
    const int j = threadIdx.x, n = blockDim.x;
    C* buffer_a[2] = {shared, shared + 2 * n};
    C* buffer_b[2] = {shared + n, shared + 3 * n};
    int current = 0;
    buffer_a[0][j] = A;
    buffer_b[0][j] = B;
    __syncthreads();
    for (int d = 1; d < n; d <<= 1) {
        // ---- round d: take in the element d to the left
        if (j >= d) {
            C left_a = buffer_a[current][j - d], left_b = buffer_b[current][j - d];
            Space<C, LOG>::then(left_a, left_b, A, B);
            A = left_a;
            B = left_b;
        }
        buffer_a[current ^ 1][j] = A;
        buffer_b[current ^ 1][j] = B;
        current ^= 1;
        __syncthreads();
    }
}

}  // namespace logscan

// ============================================================ reduce: one pair per tile
template <typename S, bool LOG>
__global__ void logscan_hillis_steele_reduce(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 tiles,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    S* total_a, S* total_b) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    C* shared = reinterpret_cast<C*>(shared_bytes);
    for (i64 block = blockIdx.x; block < outer * inner * tiles; block += gridDim.x) {
        const TileIndex x(block, tiles, inner);
        const i64 t = x.tile * blockDim.x + threadIdx.x;
        C A, B;
        load_pair<S, LOG>(a + x.o * a_so + x.i * a_si, a_st, b + x.o * b_so + x.i * b_si, b_st, t, T, A, B);
        hillis_steele_tile<C, LOG>(shared, A, B);
        if (threadIdx.x == blockDim.x - 1) {
            const i64 k = (x.o * tiles + x.tile) * inner + x.i;
            total_a[k] = to_storage<S>(A);
            total_b[k] = to_storage<S>(B);
        }
    }
}

// ============================================================ scan: each tile from its incoming state
template <typename S, bool LOG>
__global__ void logscan_hillis_steele_scan(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 tiles,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    const S* tile_states,
    S* out, logscan::i64 out_so, logscan::i64 out_st, logscan::i64 out_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    C* shared = reinterpret_cast<C*>(shared_bytes);
    for (i64 block = blockIdx.x; block < outer * inner * tiles; block += gridDim.x) {
        const TileIndex x(block, tiles, inner);
        const i64 t = x.tile * blockDim.x + threadIdx.x;
        C A, B, state;
        load_pair<S, LOG>(a + x.o * a_so + x.i * a_si, a_st, b + x.o * b_so + x.i * b_si, b_st, t, T, A, B);
        // ---- fold the incoming state into the tile's first element
        if (threadIdx.x == 0 && incoming_state<S>(x, tiles, inner, h0, h0_so, h0_si, tile_states, state))
            B = Space<C, LOG>::apply(A, state, B);
        hillis_steele_tile<C, LOG>(shared, A, B);
        if (t < T) out[x.o * out_so + t * out_st + x.i * out_si] = to_storage<S>(B);
    }
}
