// logscan CUDA kernels: single-pass scans with decoupled look-back ("lookback" method).
//
// Summary of algorithm
// --------------------
// For few channels and long sequences, like the chunked hybrid, but reading
// the inputs once. A block owns a tile of 32 adjacent channels (lane = channel,
// so with `inner` contiguous every warp access is one 128-byte line) by
// TILE_STEPS = 8 warps * 8 steps of time. Tiles get their index from an
// atomic counter, in the order they start, so every tile a block waits on has
// already started (forward progress without co-residency assumptions):
//
//   1. local: each thread loads its 8 steps into registers and forms their
//      map (A, B); warp 0 scans the 8 warps' maps per channel (shared
//      memory) into each warp's exclusive prefix and the tile's map;
//   2. carry between tiles (decoupled look-back, warp 0, one lane per
//      channel): publish the tile's map (flag AGGREGATE); walk back over the
//      predecessors of the same channel group, composing their maps until
//      one has published its outgoing state (flag INCLUSIVE; the first
//      tile starts from h0 and publishes only that); publish this tile's
//      outgoing state;
//   3. fix-up: each thread applies its warp prefix to the incoming state and
//      walks its 8 steps from registers, writing h.
//
// Publication: values are stored, then __threadfence(), then the flag; a
// reader polls the flag through a volatile load, fences, then reads the
// values. The status array and the tile counter live in the workspace and
// are zeroed by logscan_lookback_reset on the same stream before each scan.
// Channels past `inner` in the last group are idle lanes. Indices are 64-bit.
//
// Backward (logscan_lookback_backward) is the same frame run backwards in
// time on the linear recurrence of the gradient (see its comment).
//
// Accuracy: a thread walks 8 steps, the warp prefixes a walk of 8, the
// look-back a walk over tiles: float32 error grows like sqrt(T / 64) ulp.
//
// Test builds: defining LOGSCAN_LOOKBACK_AGGREGATES_ONLY (never in
// production) makes every tile but the first in scan order publish only its
// map (AGGREGATE), never its outgoing state, so every look-back walks back to
// the first tile composing each map on the way. A GPU may take that path in
// part; the CPU emulation, which runs blocks one after another, otherwise
// never does.
#include "common.cuh"

namespace logscan {

const int LOOKBACK_WARPS = 8;
const int LOOKBACK_STEPS = 8;  // per thread
const int LOOKBACK_TILE = LOOKBACK_WARPS * LOOKBACK_STEPS;
const int FLAG_AGGREGATE = 1, FLAG_INCLUSIVE = 2;

template <typename C> __device__ __forceinline__ C load_volatile(const C* p) {
    return *reinterpret_cast<const volatile C*>(p);
}
template <typename C> __device__ __forceinline__ void store_volatile(C* p, C x) {
    *reinterpret_cast<volatile C*>(p) = x;
}

// ---- carry between tiles: decoupled look-back (called by warp 0, lane = channel)
// Tiles are scanned in the order `direction` (+1: increasing time; -1: from
// the last tile down, for the backward pass). Publishes this tile's map
// (PA, PB), composes the maps of the tiles before it in scan order until one
// has published its outgoing state, publishes its own outgoing state and
// returns the state entering the tile. The first tile in scan order starts
// from `seed` (h0, or the identity).
template <typename C, bool LOG>
__device__ __forceinline__ C decoupled_lookback(C* map_a, C* map_b, C* state_out, int* flag, i64 group, i64 n_tiles,
                                               i64 tile, int direction, int lane, C PA, C PB, C seed) {
    typedef Space<C, LOG> Sp;
    const i64 status = (group * n_tiles + tile) * 32 + lane;
    const bool first = direction > 0 ? tile == 0 : tile == n_tiles - 1;
    C state = seed;
    if (!first) {
        store_volatile(map_a + status, PA);
        store_volatile(map_b + status, PB);
        __threadfence();
        store_volatile(flag + status, FLAG_AGGREGATE);
        // the first tile in scan order only ever publishes INCLUSIVE, so the walk ends there at the latest
        C RA = Sp::identity_a(), RB = Sp::identity_b();
        for (i64 k = tile - direction;; k -= direction) {
            const i64 where = (group * n_tiles + k) * 32 + lane;
            int f;
            while ((f = load_volatile(flag + where)) == 0) {
            }
            __threadfence();
            if (f == FLAG_INCLUSIVE) {
                state = Sp::apply(RA, load_volatile(state_out + where), RB);
                break;
            }
            C KA = load_volatile(map_a + where), KB = load_volatile(map_b + where);
            Sp::then(KA, KB, RA, RB);  // tile k comes before the tiles already composed
            RA = KA;
            RB = KB;
        }
#ifdef LOGSCAN_LOOKBACK_AGGREGATES_ONLY
        return state;  // test builds: the tiles after this one compose its map too
#endif
    }
    store_volatile(state_out + status, Sp::apply(PA, state, PB));
    __threadfence();
    store_volatile(flag + status, FLAG_INCLUSIVE);
    return state;
}

}  // namespace logscan

// ============================================================ reset of the status words
__global__ void logscan_lookback_reset(int* flags, long long n_flags, unsigned int* tile_counter) {
    using namespace logscan;
    for (i64 k = global_thread(); k < n_flags; k += grid_threads()) flags[k] = 0;
    if (global_thread() == 0) *tile_counter = 0u;
}

// ============================================================ the single pass
// blockDim = 32 * LOOKBACK_WARPS; grid = n_groups * n_tiles exactly (one tile each).
template <typename S, bool LOG>
__global__ void logscan_lookback_forward(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 n_tiles,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* out, logscan::i64 out_so, logscan::i64 out_st, logscan::i64 out_si,
    typename logscan::compute_of<S>::type* map_a, typename logscan::compute_of<S>::type* map_b,
    typename logscan::compute_of<S>::type* state_out, int* flag, unsigned int* tile_counter) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    typedef Space<C, LOG> Sp;
    // shared memory: (2 * LOOKBACK_WARPS + 1) * 32 values of C, then one int
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    C* warp_a = reinterpret_cast<C*>(shared_bytes);       // [warp][lane]
    C* warp_b = warp_a + LOOKBACK_WARPS * 32;
    C* carry = warp_b + LOOKBACK_WARPS * 32;               // [lane]
    unsigned int* tile_id = reinterpret_cast<unsigned int*>(carry + 32);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) *tile_id = atomicAdd(tile_counter, 1u);
    __syncthreads();
    const i64 id = *tile_id;
    const i64 groups_per_row = (inner + 31) / 32;
    const i64 group = id / n_tiles, tile = id - group * n_tiles;
    const i64 o = group / groups_per_row, i = (group - o * groups_per_row) * 32 + lane;
    const bool active = i < inner;
    const i64 t0 = tile * LOOKBACK_TILE + warp * LOOKBACK_STEPS;

    // ---- phase 1: loads, this thread's map, the warps' prefixes
    C xa[LOOKBACK_STEPS], xb[LOOKBACK_STEPS];
    C A = Sp::identity_a(), B = Sp::identity_b();
#pragma unroll
    for (int k = 0; k < LOOKBACK_STEPS; ++k) {
        const i64 t = t0 + k;
        if (active && t < T) {
            xa[k] = to_compute(a[o * a_so + t * a_st + i * a_si]);
            xb[k] = to_compute(b[o * b_so + t * b_st + i * b_si]);
        } else {
            xa[k] = Sp::identity_a();
            xb[k] = Sp::identity_b();
        }
    }
#pragma unroll
    for (int k = 0; k < LOOKBACK_STEPS; ++k) Sp::then(A, B, xa[k], xb[k]);
    warp_a[warp * 32 + lane] = A;
    warp_b[warp * 32 + lane] = B;
    __syncthreads();

    if (warp == 0) {
        // exclusive prefix of each warp's map, and the tile's map
        C PA = Sp::identity_a(), PB = Sp::identity_b();
        for (int w = 0; w < LOOKBACK_WARPS; ++w) {
            const C WA = warp_a[w * 32 + lane], WB = warp_b[w * 32 + lane];
            warp_a[w * 32 + lane] = PA;
            warp_b[w * 32 + lane] = PB;
            Sp::then(PA, PB, WA, WB);
        }
        // ---- phase 2: carry between tiles, by decoupled look-back
        const C seed = (h0 && active) ? to_compute(h0[o * h0_so + i * h0_si]) : Sp::identity_b();
        const C state = decoupled_lookback<C, LOG>(map_a, map_b, state_out, flag, group, n_tiles, tile, 1, lane,
                                                   PA, PB, seed);
        carry[lane] = state;
    }
    __syncthreads();

    // ---- phase 3: fix-up from registers
    C h = Sp::apply(warp_a[warp * 32 + lane], carry[lane], warp_b[warp * 32 + lane]);
#pragma unroll
    for (int k = 0; k < LOOKBACK_STEPS; ++k) {
        const i64 t = t0 + k;
        h = Sp::apply(xa[k], h, xb[k]);
        if (active && t < T) out[o * out_so + t * out_st + i * out_si] = to_storage<S>(h);
    }
}

// ============================================================ the single backward pass
// The reverse recurrence u_t = g_t + w_{t+1} u_{t+1} (DESIGN section 3, see
// sequential_chunk.cuh) in the same frame, with tiles scanned from the last
// in time (tile ids map to time tiles backwards) and linear-space maps
// u_start = A u_end + B. Each thread also reads the weight w_{t1} of the
// step right after its own 8 (a boundary read that its neighbour makes too).
template <typename S, bool LOG>
__global__ void logscan_lookback_backward(
    logscan::i64 outer, logscan::i64 T, logscan::i64 inner, logscan::i64 n_tiles,
    const S* grad_h, logscan::i64 g_so, logscan::i64 g_st, logscan::i64 g_si,
    const S* a, logscan::i64 a_so, logscan::i64 a_st, logscan::i64 a_si,
    const S* b, logscan::i64 b_so, logscan::i64 b_st, logscan::i64 b_si,
    const S* h, logscan::i64 h_so, logscan::i64 h_st, logscan::i64 h_si,
    const S* h0, logscan::i64 h0_so, logscan::i64 h0_si,
    S* grad_a, logscan::i64 ga_so, logscan::i64 ga_st, logscan::i64 ga_si,
    S* grad_b, logscan::i64 gb_so, logscan::i64 gb_st, logscan::i64 gb_si,
    S* grad_h0, logscan::i64 gh0_so, logscan::i64 gh0_si,
    typename logscan::compute_of<S>::type* map_a, typename logscan::compute_of<S>::type* map_b,
    typename logscan::compute_of<S>::type* state_out, int* flag, unsigned int* tile_counter) {
    using namespace logscan;
    typedef typename compute_of<S>::type C;
    typedef Space<C, false> Lin;  // u is a linear recurrence whatever the forward space
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    C* warp_a = reinterpret_cast<C*>(shared_bytes);
    C* warp_b = warp_a + LOOKBACK_WARPS * 32;
    C* carry = warp_b + LOOKBACK_WARPS * 32;
    unsigned int* tile_id = reinterpret_cast<unsigned int*>(carry + 32);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) *tile_id = atomicAdd(tile_counter, 1u);
    __syncthreads();
    const i64 id = *tile_id;
    const i64 groups_per_row = (inner + 31) / 32;
    const i64 group = id / n_tiles, tile = n_tiles - 1 - (id - group * n_tiles);
    const i64 o = group / groups_per_row, i = (group - o * groups_per_row) * 32 + lane;
    const bool active = i < inner;
    const i64 t0 = tile * LOOKBACK_TILE + warp * LOOKBACK_STEPS, t1 = t0 + LOOKBACK_STEPS;
    const S* gc = grad_h + o * g_so + i * g_si;
    const S* ac = a + o * a_so + i * a_si;
    const S* bc = b + o * b_so + i * b_si;
    const S* hc = h + o * h_so + i * h_si;
    const C h_init = (h0 && active) ? to_compute(h0[o * h0_so + i * h0_si]) : Space<C, LOG>::identity_b();

    // ---- phase 1: loads, weights, this thread's map u_{t0} = A u_{t1} + B
    C xg[LOOKBACK_STEPS], xw[LOOKBACK_STEPS], xa[LOOKBACK_STEPS], xb[LOOKBACK_STEPS], xh[LOOKBACK_STEPS];
    C xp[LOOKBACK_STEPS];  // h_{t-1}
#pragma unroll
    for (int k = 0; k < LOOKBACK_STEPS; ++k) {
        const i64 t = t0 + k;
        xg[k] = C(0);
        xa[k] = xb[k] = xh[k] = xp[k] = C(0);
        if (active && t < T) {
            xg[k] = to_compute(gc[t * g_st]);
            xa[k] = to_compute(ac[t * a_st]);
            if constexpr (LOG) {
                xb[k] = to_compute(bc[t * b_st]);
                xh[k] = to_compute(hc[t * h_st]);
            }
            xp[k] = t > 0 ? to_compute(hc[(t - 1) * h_st]) : h_init;
        }
    }
    C w_after = C(0);  // w_{t1}
    if (active && t1 < T) {
        const C a_next = to_compute(ac[t1 * a_st]);
        if constexpr (LOG) {
            const C h_next = to_compute(hc[t1 * h_st]), h_last = to_compute(hc[(t1 - 1) * h_st]);
            w_after = h_next == negative_infinity<C>() ? C(0) : exp_fast(a_next + h_last - h_next);
        } else {
            w_after = a_next;
        }
    }
#pragma unroll
    for (int k = 0; k < LOOKBACK_STEPS; ++k) {
        if constexpr (LOG) xw[k] = xh[k] == negative_infinity<C>() ? C(0) : exp_fast(xa[k] + xp[k] - xh[k]);
        else xw[k] = xa[k];
    }
    C A = C(1), B = C(0), w_next = w_after;
#pragma unroll
    for (int k = LOOKBACK_STEPS - 1; k >= 0; --k) {
        if (t0 + k < T) {
            B = fma(w_next, B, xg[k]);
            A = A * w_next;
            w_next = xw[k];
        }
    }
    warp_a[warp * 32 + lane] = A;
    warp_b[warp * 32 + lane] = B;
    __syncthreads();

    if (warp == 0) {
        // from the last warp down: each warp's incoming map, and the tile's
        C PA = Lin::identity_a(), PB = Lin::identity_b();
        for (int w = LOOKBACK_WARPS - 1; w >= 0; --w) {
            const C WA = warp_a[w * 32 + lane], WB = warp_b[w * 32 + lane];
            warp_a[w * 32 + lane] = PA;
            warp_b[w * 32 + lane] = PB;
            Lin::then(PA, PB, WA, WB);
        }
        // ---- phase 2: carry between tiles (from the end of time), u_T = 0
        carry[lane] = decoupled_lookback<C, false>(map_a, map_b, state_out, flag, group, n_tiles, tile, -1, lane,
                                                   PA, PB, C(0));
    }
    __syncthreads();

    // ---- phase 3: gradients from registers
    C u = Lin::apply(warp_a[warp * 32 + lane], carry[lane], warp_b[warp * 32 + lane]);
    w_next = w_after;
#pragma unroll
    for (int k = LOOKBACK_STEPS - 1; k >= 0; --k) {
        const i64 t = t0 + k;
        if (active && t < T) {
            u = fma(w_next, u, xg[k]);
            C da, db;
            if constexpr (LOG) {
                da = u * xw[k];
                db = u * (xh[k] == negative_infinity<C>() ? C(0) : exp_fast(xb[k] - xh[k]));
            } else {
                da = u * xp[k];
                db = u;
            }
            grad_a[o * ga_so + t * ga_st + i * ga_si] = to_storage<S>(da);
            grad_b[o * gb_so + t * gb_st + i * gb_si] = to_storage<S>(db);
            if (t == 0 && grad_h0) grad_h0[o * gh0_so + i * gh0_si] = to_storage<S>(xw[0] * u);
            w_next = xw[k];
        }
    }
}
