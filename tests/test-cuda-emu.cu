// SPDX-License-Identifier: MIT
//
// test-cuda-emu: the CPU CUDA emulator (kernels/cuda/emu/) itself, in builds
// with -Demulate_cuda=true. Barriers and shuffles must give what a GPU
// gives, and the bugs the emulator is there to show must show: a read that
// a missing barrier leaves to chance, a shuffle some lane never reaches, a
// copy the wrong way or past an allocation, a launch a GPU refuses.
#include "lsc-cuda-common.cuh"

#include <glib.h>

#include <cmath>
#include <vector>

static void
check (cudaError_t err)
{
  g_assert_cmpint (err, ==, cudaSuccess);
}

template <int THREADS>
static __global__ void
sum_kernel (const long long *in, long long *out)
{
  int i = blockIdx.x * THREADS + threadIdx.x;
  out[i] = lsc_block_reduce<THREADS> (in[i], LscSumOp ());
}

// lsc_block_reduce () over THREADS threads in each of 3 blocks (run in
// order, in reverse, in order): every thread gets its block's sum
template <int THREADS>
static void
check_sum (void)
{
  const int n = 3 * THREADS;
  std::vector<long long> h (n);
  long long *in, *out;
  check (cudaMalloc (&in, n * sizeof (long long)));
  check (cudaMalloc (&out, n * sizeof (long long)));
  for (int i = 0; i < n; i++)
    h[i] = (long long) i * i;
  check (cudaMemcpy (in, h.data (), n * sizeof (long long), cudaMemcpyHostToDevice));
  sum_kernel<THREADS><<<3, THREADS>>> (in, out);
  check (cudaGetLastError ());
  check (cudaMemcpy (h.data (), out, n * sizeof (long long), cudaMemcpyDeviceToHost));
  for (int b = 0; b < 3; b++)
    {
      long long want = 0;
      for (int i = b * THREADS; i < (b + 1) * THREADS; i++)
        want += (long long) i * i;
      for (int t = 0; t < THREADS; t++)
        g_assert_cmpint (h[b * THREADS + t], ==, want);
    }
  cudaFree (in);
  cudaFree (out);
}

static void
test_reduce (void)
{
  check_sum<32> ();
  check_sum<64> ();
  check_sum<256> ();
  check_sum<1024> ();
}

// out (4, 64): each lane's value (100 + lane) after xor 5, down 3, from lane
// 7, and xor 2 within segments of 8
static __global__ void
shuffle_kernel (int *out)
{
  int v = 100 + (int) threadIdx.x, n = blockDim.x;
  out[0 * n + threadIdx.x] = __shfl_xor_sync (0xffffffffu, v, 5);
  out[1 * n + threadIdx.x] = __shfl_down_sync (0xffffffffu, v, 3);
  out[2 * n + threadIdx.x] = __shfl_sync (0xffffffffu, v, 7);
  out[3 * n + threadIdx.x] = __shfl_xor_sync (0xffffffffu, v, 2, 8);
}

static void
test_shuffle (void)
{
  const int n = 64;   // two warps
  int *d, h[4 * n];
  check (cudaMalloc (&d, sizeof h));
  shuffle_kernel<<<2, n>>> (d);
  check (cudaGetLastError ());
  check (cudaMemcpy (h, d, sizeof h, cudaMemcpyDeviceToHost));
  for (int t = 0; t < n; t++)
    {
      int lane = t % 32, w0 = t - lane;
      g_assert_cmpint (h[0 * n + t], ==, 100 + w0 + (lane ^ 5));
      g_assert_cmpint (h[1 * n + t], ==, 100 + w0 + (lane + 3 < 32 ? lane + 3 : lane));
      g_assert_cmpint (h[2 * n + t], ==, 100 + w0 + 7);
      g_assert_cmpint (h[3 * n + t], ==, 100 + w0 + (lane ^ 2));
    }
  cudaFree (d);
}

// each thread writes its slot of shared memory, then reads its neighbour's:
// without the barrier the read is a race
static __global__ void
neighbour_kernel (int *out, bool barrier)
{
  extern __shared__ int slot[];
  int n = blockDim.x, t = threadIdx.x;
  slot[t] = t;
  if (barrier)
    __syncthreads ();
  out[blockIdx.x * n + t] = slot[(t + 1) % n];
}

static void
test_race (void)
{
  const int n = 64;
  int *d, h[2 * n];
  check (cudaMalloc (&d, sizeof h));
  for (int barrier = 0; barrier < 2; barrier++)
    {
      neighbour_kernel<<<2, n, n * sizeof (int)>>> (d, barrier);
      check (cudaGetLastError ());
      check (cudaMemcpy (h, d, sizeof h, cudaMemcpyDeviceToHost));
      int wrong = 0;
      for (int i = 0; i < 2 * n; i++)
        wrong += h[i] != (i % n + 1) % n;
      // Block 0 runs its threads in order: each reads the slot of the next
      // before that one writes it (shared memory starts as 0xff bytes), but
      // the last reads slot 0. Block 1 runs them in reverse: only the last
      // thread, which runs first, reads an unwritten slot.
      g_assert_cmpint (wrong, ==, barrier ? 0 : n);
      for (int t = 0; t + 1 < n && !barrier; t++)
        g_assert_cmpint (h[t], ==, -1);
      if (!barrier)
        g_assert_cmpint (h[2 * n - 1], ==, -1);
    }
  cudaFree (d);
}

static __global__ void
early_return_kernel (int *out)
{
  if (threadIdx.x == 5)
    return;
  out[threadIdx.x] = __shfl_xor_sync (0xffffffffu, (int) threadIdx.x, 1);
}

static __global__ void
noop_kernel (void)
{
}

// a kernel bug aborts the test program, saying what happened
static const struct {
  const char *what, *stderr_pattern;
} aborts[] = {
  { "shuffle", "*kernel early_return_kernel, block (0, 0, 0), thread (0, 0, 0): "
               "shuffle mask 0xffffffff names lane 5, which has returned*" },
  { "direction", "*cudaMemcpy: destination * (32 bytes) is not (all) device memory*" },
  { "overrun", "*cudaMemcpy: destination * (32 bytes) is not (all) device memory*" },
};

static void
test_abort (gconstpointer data)
{
  const char *what = aborts[GPOINTER_TO_INT (data)].what;
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_failed ();
      g_test_trap_assert_stderr (aborts[GPOINTER_TO_INT (data)].stderr_pattern);
      return;
    }
  int *d, h[8] = { 0 };
  check (cudaMalloc (&d, 32 * sizeof (int)));
  if (strcmp (what, "shuffle") == 0)
    early_return_kernel<<<1, 32>>> (d);
  else if (strcmp (what, "direction") == 0)
    cudaMemcpy (h, d, sizeof h, cudaMemcpyHostToDevice);
  else
    cudaMemcpy (d + 28, h, sizeof h, cudaMemcpyHostToDevice);
}

// launches a GPU refuses are refused, and the error is cleared once read
static void
test_launch_limits (void)
{
  noop_kernel<<<1, 1025>>> ();
  g_assert_cmpint (cudaGetLastError (), ==, cudaErrorInvalidConfiguration);
  g_assert_cmpint (cudaGetLastError (), ==, cudaSuccess);
  noop_kernel<<<dim3 (1, 65536), 32>>> ();
  g_assert_cmpint (cudaGetLastError (), ==, cudaErrorInvalidConfiguration);
  noop_kernel<<<1, 32, 64 << 10>>> ();
  g_assert_cmpint (cudaGetLastError (), ==, cudaErrorInvalidConfiguration);
  check (cudaFuncSetAttribute (noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10));
  noop_kernel<<<1, 32, 64 << 10>>> ();
  check (cudaGetLastError ());
  g_assert_cmpint (cudaFuncSetAttribute (noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         228 << 10), ==, cudaErrorInvalidValue);
  g_assert_cmpint (cudaGetLastError (), ==, cudaErrorInvalidValue);
}

// device memory starts as 0xff bytes; the device exists only when asked for
static void
test_memory (void)
{
  float *d, h[3];
  check (cudaMalloc (&d, sizeof h));
  check (cudaMemcpy (h, d, sizeof h, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 3; i++)
    g_assert_true (std::isnan (h[i]));
  cudaFree (d);

  int count = -1;
  check (cudaGetDeviceCount (&count));
  g_assert_cmpint (count, ==, 1);
  g_unsetenv ("LSC_CUDA_EMULATOR_DEVICE");
  g_assert_cmpint (cudaGetDeviceCount (&count), ==, cudaErrorNoDevice);
  g_assert_cmpint (count, ==, 0);
  g_setenv ("LSC_CUDA_EMULATOR_DEVICE", "1", TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_setenv ("LSC_CUDA_EMULATOR_DEVICE", "1", TRUE);
  g_test_add_func ("/cuda-emu/reduce", test_reduce);
  g_test_add_func ("/cuda-emu/shuffle", test_shuffle);
  g_test_add_func ("/cuda-emu/race", test_race);
  g_test_add_func ("/cuda-emu/memory", test_memory);
  g_test_add_func ("/cuda-emu/launch-limits", test_launch_limits);   // raises the limit for good
  for (gsize i = 0; i < G_N_ELEMENTS (aborts); i++)
    {
      g_autofree char *path = g_strdup_printf ("/cuda-emu/abort/%s", aborts[i].what);
      g_test_add_data_func (path, GINT_TO_POINTER (i), test_abort);
    }
  return g_test_run ();
}
