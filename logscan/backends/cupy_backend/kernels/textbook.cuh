// logscan CUDA kernels: the frame shared by the textbook tree scans.
//
// Summary
// -------
// Hillis-Steele and Blelloch are written as complete textbook kernels: one
// element per thread (two for Blelloch), one block per tile of one channel,
// pairs (A, B) combined in shared memory. Long sequences take several tiles
// and a classic reduce-then-scan across blocks, driven by the host:
//
//   1. reduce: every block reduces its tile to one pair (the tile's map);
//   2. the tile pairs, laid out as a small (outer, tiles, inner) problem,
//      are scanned by the same algorithm (recursively, seeded with h0) into
//      the state after each tile;
//   3. scan: every block folds the state entering its tile (the previous
//      tile's result, or h0 for the first tile) into its first element and
//      scans the tile, writing h.
//
// Blocks are numbered tile-fastest over outer * inner * tiles (grid-stride,
// 64-bit). Instantiated for float and double: the core computes float16 and
// bfloat16 through float32 copies.
#pragma once
#include "common.cuh"

namespace logscan {

struct TileIndex {
    i64 o, i, tile;
    __device__ TileIndex(i64 block, i64 tiles, i64 inner) {
        tile = block % tiles;
        const i64 channel = block / tiles;
        o = channel / inner;
        i = channel - o * inner;
    }
};

// Element t of a channel as a pair, or the identity past the end.
template <typename S, bool LOG>
__device__ __forceinline__ void load_pair(const S* a, i64 a_st, const S* b, i64 b_st, i64 t, i64 T,
                                          typename compute_of<S>::type& A, typename compute_of<S>::type& B) {
    typedef Space<typename compute_of<S>::type, LOG> Sp;
    if (t < T) {
        A = to_compute(a[t * a_st]);
        B = to_compute(b[t * b_st]);
    } else {
        A = Sp::identity_a();
        B = Sp::identity_b();
    }
}

// The state entering tile `tile` of channel (o, i): h0 (or nothing) for the
// first tile, else the state after tile - 1 from the scan of tile pairs
// (laid out [outer][tiles][inner]). Returns false when there is none.
template <typename S>
__device__ __forceinline__ bool incoming_state(const TileIndex& x, i64 tiles, i64 inner, const S* h0, i64 h0_so,
                                               i64 h0_si, const S* tile_states,
                                               typename compute_of<S>::type& state) {
    if (x.tile > 0) {
        state = to_compute(tile_states[(x.o * tiles + x.tile - 1) * inner + x.i]);
        return true;
    }
    if (h0) {
        state = to_compute(h0[x.o * h0_so + x.i * h0_si]);
        return true;
    }
    return false;
}

}  // namespace logscan
