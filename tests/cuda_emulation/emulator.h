// A CPU stand-in for the CUDA runtime features the logscan kernels use, so
// that the very same kernel sources run on CPU threads in the tests of a
// machine with no GPU. Each block runs as blockDim.x std::threads with a
// std::barrier for __syncthreads(); blocks run one after another, so the
// shared memory of the running block is one static buffer. Warp shuffles go
// through a block-wide exchange (every thread of the block reaches them
// together in these kernels). Not a simulator of timing or of memory
// models: it checks the arithmetic, the indexing and the phase logic.
#pragma once
#define LOGSCAN_HOST_EMULATION 1

#include <barrier>
#include <cmath>
#include <cstring>
#include <math.h>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __align__(n) __attribute__((aligned(n)))

__attribute__((aligned(16))) unsigned char shared_bytes[1 << 16];
inline std::barrier<>* block_barrier = nullptr;
inline std::barrier<>* warp_barriers[32];
inline unsigned long long shuffle_slots[1024];

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

template <typename T> inline T __shfl_up_sync(unsigned, T value, int delta) {
    const unsigned tid = threadIdx.x;
    std::barrier<>* warp = warp_barriers[tid / 32];
    std::memcpy(&shuffle_slots[tid], &value, sizeof(T));
    warp->arrive_and_wait();
    T result = value;
    if (static_cast<int>(tid & 31) >= delta) std::memcpy(&result, &shuffle_slots[tid - delta], sizeof(T));
    warp->arrive_and_wait();
    return result;
}

inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
inline float __uint_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
inline unsigned __float_as_uint(float x) {
    unsigned bits;
    std::memcpy(&bits, &x, 4);
    return bits;
}
inline double __longlong_as_double(long long bits) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
}
inline float __expf(float x) { return std::exp(x); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Run kernel<<<grid, block>>>(*args[0], *args[1], ...), as cuLaunchKernel takes its parameters.
template <typename... Params, std::size_t... I>
std::tuple<Params...> unpack(void** args, std::index_sequence<I...>) {
    return std::tuple<Params...>(*static_cast<std::remove_reference_t<Params>*>(args[I])...);
}

template <typename... Params>
void launch(void (*kernel)(Params...), unsigned grid, unsigned block, void** args) {
    const std::tuple<Params...> params = unpack<Params...>(args, std::index_sequence_for<Params...>{});
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> barrier(static_cast<std::ptrdiff_t>(block));
        block_barrier = &barrier;
        std::vector<std::unique_ptr<std::barrier<>>> warps;
        for (unsigned w = 0; w * 32 < block; ++w) {
            const unsigned lanes = block - w * 32 < 32 ? block - w * 32 : 32;
            warps.emplace_back(new std::barrier<>(static_cast<std::ptrdiff_t>(lanes)));
            warp_barriers[w] = warps.back().get();
        }
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([&, b, t] {
                blockIdx.x = b;
                threadIdx.x = t;
                std::apply(kernel, params);
            });
        }
        for (auto& thread : threads) thread.join();
    }
}
