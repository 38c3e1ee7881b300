// logscan CUDA kernels: textbook Blelloch scan ("blelloch" method).
//
// Summary of algorithm
// --------------------
// Two elements per thread, a tile of 2 * blockDim (a power of two) elements
// per block, in place in shared memory. The up-sweep builds a balanced tree
// of partial maps (each right child absorbs its left sibling, the root ends
// as the tile's total); the down-sweep puts the identity at the root and
// walks back down, giving each left child its parent's prefix and each right
// child the parent's prefix followed by the left sibling's total: every slot
// then holds its exclusive prefix, and one last combine with the element
// itself makes it inclusive. O(n) work, 2 log n depth. Tiles are joined by
// the reduce-then-scan frame of textbook.cuh (the reduce kernel is the
// up-sweep alone). Float32 error grows like log2 T ulp (a tree).
#include "textbook.cuh"

namespace logscan {

// ------------------------------------------------------------ up-sweep
// Shared memory: 2 * tile values of C (pairs split into A and B halves).
template <typename C, bool LOG> __device__ __forceinline__ void blelloch_up_sweep(C* sa, C* sb, int tile) {
    const int j = threadIdx.x;
    int offset = 1;
    for (int d = tile >> 1; d > 0; d >>= 1) {
        __syncthreads();
        if (j < d) {
            const int left = offset * (2 * j + 1) - 1, right = offset * (2 * j + 2) - 1;
            C A = sa[left], B = sb[left];
            Space<C, LOG>::then(A, B, sa[right], sb[right]);
            sa[right] = A;
            sb[right] = B;
        }
        offset <<= 1;
    }
    __syncthreads();
}

// ------------------------------------------------------------ down-sweep
template <typename C, bool LOG> __device__ __forceinline__ void blelloch_down_sweep(C* sa, C* sb, int tile) {
    typedef Space<C, LOG> Sp;
    const int j = threadIdx.x;
    if (j == 0) {
        sa[tile - 1] = Sp::identity_a();
        sb[tile - 1] = Sp::identity_b();
    }
    int offset = tile;
    for (int d = 1; d < tile; d <<= 1) {
        offset >>= 1;
        __syncthreads();
        if (j < d) {
            const int left = offset * (2 * j + 1) - 1, right = offset * (2 * j + 2) - 1;
            const C left_a = sa[left], left_b = sb[left];
            C A = sa[right], B = sb[right];
            sa[left] = A;  // left child: the parent's prefix
            sb[left] = B;
            Sp::then(A, B, left_a, left_b);  // right child: parent's prefix, then the left total
            sa[right] = A;
            sb[right] = B;
        }
    }
    __syncthreads();
}

}  // namespace logscan

// ============================================================ reduce: one pair per tile
template <typename S, bool LOG>
__global__ void logscan_blelloch_reduce(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 tiles,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    S* total_a, S* total_b) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    const int tile = 2 * blockDim.x, j = threadIdx.x;
    C* sa = reinterpret_cast<C*>(shared_bytes);
    C* sb = sa + tile;
    for (i64 block = blockIdx.x; block < outer * inner * tiles; block += gridDim.x) {
        const TileIndex x(block, tiles, inner);
        const S* ac = a + x.o * a_so + x.i * a_si;
        const S* bc = b + x.o * b_so + x.i * b_si;
        const i64 t = x.tile * tile + j;
        load_pair<S, LOG>(ac, a_st, bc, b_st, t, T, sa[j], sb[j]);
        load_pair<S, LOG>(ac, a_st, bc, b_st, t + blockDim.x, T, sa[j + blockDim.x], sb[j + blockDim.x]);
        blelloch_up_sweep<C, LOG>(sa, sb, tile);
        if (j == 0) {
            const i64 k = (x.o * tiles + x.tile) * inner + x.i;
            total_a[k] = to_storage<S>(sa[tile - 1]);
            total_b[k] = to_storage<S>(sb[tile - 1]);
        }
        __syncthreads();  // before the next block's loads overwrite the tile
    }
}

// ============================================================ scan: each tile from its incoming state
template <typename S, bool LOG>
__global__ void logscan_blelloch_scan(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 tiles,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    const S* tile_states,
    S* out, logscan::i64 out_so, logscan::i64 out_st, logscan::i64 out_si) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    typedef Space<C, LOG> Sp;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    const int tile = 2 * blockDim.x, j = threadIdx.x;
    C* sa = reinterpret_cast<C*>(shared_bytes);
    C* sb = sa + tile;
    for (i64 block = blockIdx.x; block < outer * inner * tiles; block += gridDim.x) {
        const TileIndex x(block, tiles, inner);
        const S* ac = a + x.o * a_so + x.i * a_si;
        const S* bc = b + x.o * b_so + x.i * b_si;
        const i64 t_lo = x.tile * tile + j, t_hi = t_lo + blockDim.x;
        C a_lo, b_lo, a_hi, b_hi, state;
        load_pair<S, LOG>(ac, a_st, bc, b_st, t_lo, T, a_lo, b_lo);
        load_pair<S, LOG>(ac, a_st, bc, b_st, t_hi, T, a_hi, b_hi);
        // ---- fold the incoming state into the tile's first element
        if (j == 0 && incoming_state<S>(x, tiles, inner, h0, h0_so, h0_si, tile_states, state))
            b_lo = Sp::apply(a_lo, state, b_lo);
        sa[j] = a_lo;
        sb[j] = b_lo;
        sa[j + blockDim.x] = a_hi;
        sb[j + blockDim.x] = b_hi;
        blelloch_up_sweep<C, LOG>(sa, sb, tile);
        blelloch_down_sweep<C, LOG>(sa, sb, tile);
        // ---- exclusive -> inclusive: h_t = (prefix before t) then element t
        S* oc = out + x.o * out_so + x.i * out_si;
        if (t_lo < T) oc[t_lo * out_st] = to_storage<S>(Sp::apply(a_lo, sb[j], b_lo));
        if (t_hi < T) oc[t_hi * out_st] = to_storage<S>(Sp::apply(a_hi, sb[j + blockDim.x], b_hi));
        __syncthreads();  // before the next block's loads overwrite the tile
    }
}
