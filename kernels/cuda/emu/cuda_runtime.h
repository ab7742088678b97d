// SPDX-License-Identifier: MIT
//
// The CPU emulator's stand-in for <cuda_runtime.h> (meson -Demulate_cuda=true).
//
// Longscope's kernels compile as C++ against these headers after
// translate.py has rewritten their launches, and run on the CPU: a block's
// threads are fibers on the launching thread, __syncthreads () and the warp
// shuffles are barriers between them, blocks run one after the other, and
// "device" memory is host memory the emulator keeps a table of. It exists so
// that the `cuda` test suite exercises the kernels' index arithmetic,
// barriers and shuffles (under ASan and UBSan in CI) on machines without a
// GPU. It says nothing about speed, and float results can differ from a
// GPU's in the last bits (the host's expf/logf). Only what kernels/cuda uses
// is here.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one at a time, so a kernel's static shared arrays can be
// function statics; translate.py turns `extern __shared__ T a[];` into a
// pointer to the block's dynamic shared memory.
#define __shared__ static

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3 (unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x (x_), y (y_), z (z_) {}
};
struct alignas (16) float4 { float x, y, z, w; };
struct alignas (8) float2 { float x, y; };

// a thread's built-in variables, set by the emulator before it runs the thread
struct LscEmuBuiltins {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
};
extern thread_local LscEmuBuiltins *lsc_emu_builtins;
#define threadIdx (lsc_emu_builtins->threadIdx)
#define blockIdx (lsc_emu_builtins->blockIdx)
#define blockDim (lsc_emu_builtins->blockDim)
#define gridDim (lsc_emu_builtins->gridDim)

/* ---- runtime API ---- */

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

typedef struct LscEmuStream *cudaStream_t;
#define cudaStreamNonBlocking 0x01

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr {
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  int maxThreadsPerBlock;
  int multiProcessorCount;
  int warpSize;
  int major, minor;
};

cudaError_t cudaGetDeviceCount (int *count);
cudaError_t cudaDriverGetVersion (int *version);
cudaError_t cudaRuntimeGetVersion (int *version);
cudaError_t cudaSetDevice (int device);
cudaError_t cudaGetDeviceProperties (cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute (int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaGetLastError (void);
const char *cudaGetErrorString (cudaError_t err);
cudaError_t cudaMalloc (void **ptr, size_t bytes);
cudaError_t cudaFree (void *ptr);
cudaError_t cudaMallocHost (void **ptr, size_t bytes);
cudaError_t cudaFreeHost (void *ptr);
cudaError_t cudaMemGetInfo (size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                             cudaStream_t stream = 0);
cudaError_t cudaMemcpy2DAsync (void *dst, size_t dpitch, const void *src, size_t spitch,
                               size_t width, size_t height, cudaMemcpyKind kind,
                               cudaStream_t stream = 0);
cudaError_t cudaMemsetAsync (void *dst, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaStreamCreateWithFlags (cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy (cudaStream_t stream);
cudaError_t cudaStreamSynchronize (cudaStream_t stream);
cudaError_t lsc_emu_func_set_attribute (cudaFuncAttribute attr, int value);

template <typename T>
static inline cudaError_t
cudaMalloc (T **ptr, size_t bytes)
{
  return cudaMalloc ((void **) ptr, bytes);
}

template <typename T>
static inline cudaError_t
cudaMallocHost (T **ptr, size_t bytes)
{
  return cudaMallocHost ((void **) ptr, bytes);
}

template <typename F>
static inline cudaError_t
cudaFuncSetAttribute (F *, cudaFuncAttribute attr, int value)
{
  return lsc_emu_func_set_attribute (attr, value);
}

/* ---- launches (written by translate.py) ---- */

void lsc_emu_run (const char *name, dim3 grid, dim3 block, size_t smem,
                  void (*thread) (void *), void *closure);

// k<<<grid, block, smem, stream>>> (args) becomes
// lsc_emu_launch ("k", [=] () { k (args); }, grid, block, smem, stream)
template <typename F>
static inline void
lsc_emu_launch (const char *name, F body, dim3 grid, dim3 block, size_t smem = 0,
                cudaStream_t = 0)
{
  lsc_emu_run (name, grid, block, smem, [] (void *f) { (*(F *) f) (); }, &body);
}

// the running block's dynamic shared memory (16-byte aligned)
void *lsc_emu_dynamic_shared (void);

/* ---- device functions ---- */

void __syncthreads (void);
void __syncwarp (unsigned mask = 0xffffffffu);
// lane's value after the lanes in mask have all arrived: each lane gives
// value and gets the value of lane src (mode 0), lane ^ src (1) or lane + src (2)
uint64_t lsc_emu_shuffle (unsigned mask, uint64_t value, int src, int width, int mode);

template <typename T>
static inline T
lsc_emu_shuffle_as (unsigned mask, T v, int src, int width, int mode)
{
  static_assert (sizeof (T) <= sizeof (uint64_t), "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  memcpy (&bits, &v, sizeof v);
  bits = lsc_emu_shuffle (mask, bits, src, width, mode);
  T r;
  memcpy (&r, &bits, sizeof r);
  return r;
}

template <typename T>
static inline T
__shfl_sync (unsigned mask, T v, int src, int width = 32)
{
  return lsc_emu_shuffle_as (mask, v, src, width, 0);
}

template <typename T>
static inline T
__shfl_xor_sync (unsigned mask, T v, int lane_mask, int width = 32)
{
  return lsc_emu_shuffle_as (mask, v, lane_mask, width, 1);
}

template <typename T>
static inline T
__shfl_down_sync (unsigned mask, T v, unsigned delta, int width = 32)
{
  return lsc_emu_shuffle_as (mask, v, (int) delta, width, 2);
}

static inline float rsqrtf (float x) { return 1.0f / sqrtf (x); }
// CUDA's min and max overloads of device code
#define LSC_EMU_MINMAX(T)                                      \
  static inline T min (T a, T b) { return b < a ? b : a; }     \
  static inline T max (T a, T b) { return a < b ? b : a; }
LSC_EMU_MINMAX (int)
LSC_EMU_MINMAX (unsigned)
LSC_EMU_MINMAX (long long)
LSC_EMU_MINMAX (unsigned long long)
#undef LSC_EMU_MINMAX
static inline float min (float a, float b) { return fminf (a, b); }
static inline float max (float a, float b) { return fmaxf (a, b); }
static inline double min (double a, double b) { return fmin (a, b); }
static inline double max (double a, double b) { return fmax (a, b); }

static inline float __fdividef (float a, float b) { return a / b; }
static inline float
__int_as_float (int v)
{
  float f;
  memcpy (&f, &v, sizeof f);
  return f;
}
static inline int
__float_as_int (float f)
{
  int v;
  memcpy (&v, &f, sizeof v);
  return v;
}
template <typename T> static inline T __ldg (const T *p) { return *p; }
