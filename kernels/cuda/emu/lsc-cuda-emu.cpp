// SPDX-License-Identifier: MIT
//
// The CPU CUDA emulator (see cuda_runtime.h): runtime calls, cuBLAS's
// GemmEx, and kernel launches.
//
// A launch runs its blocks one after the other on the calling thread, and a
// block's threads as fibers: each runs until it reaches __syncthreads (), a
// warp shuffle or its end, then the next one runs. A barrier opens when
// every thread that has not returned is waiting at it; a shuffle when every
// lane its mask names is. Even blocks run their threads in order, odd blocks
// in reverse, so a read of shared memory that a missing barrier leaves to
// chance sees a different writer in one of them. A shuffle that can never
// complete (a lane of its mask has returned, does not exist or waits at
// __syncthreads), a copy the wrong way or past an allocation print the
// kernel, block and thread and abort: they are bugs. A launch a GPU would
// refuse (too many threads, too much shared memory) sets the error that
// cudaGetLastError () returns, as on a GPU. Device memory starts filled
// with 0xff bytes (float NaN), as does each block's dynamic shared memory,
// so a read of something never written shows. Threads that return are not
// waited for at a barrier (as on Volta and later).
//
// There is one device, and only when LSC_CUDA_EMULATOR_DEVICE=1 is set:
// the test harness sets it for the cuda suite, so every other suite of an
// emulated build runs as it does without a GPU. LSC_CUDA_EMULATOR_DRIVER
// and LSC_CUDA_EMULATOR_CAPABILITY make it a device with an old driver or
// an old GPU, LSC_CUDA_EMULATOR_MEMORY and LSC_CUDA_EMULATOR_SHARED a
// smaller one.
//
// LSC_CUDA_EMULATOR_FAIL_LAUNCH=NAME:K makes the K-th launch (from 1) of a
// kernel whose name starts with NAME, counted since the variable took that
// value, fail as a kernel that faults does (cudaErrorLaunchFailure, which
// the emulator does not keep): a device error part way through a forward
// pass, for the tests of what a session does then.

#include "cublas_v2.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

// here they name the fields of LscEmuBuiltins
#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim

#include <cblas.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LSC_EMU_ASAN 1
#else
#define LSC_EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator switches fibers with x86-64 assembly"
#endif

thread_local LscEmuBuiltins *lsc_emu_builtins;

// Saves the callee-saved registers on the current stack, stores the stack
// pointer in *from, and resumes the fiber whose stack pointer is to. MXCSR
// and the x87 control word stay as they are: kernels do not change them
// (saving them made the switch twice as slow).
extern "C" void lsc_emu_switch (void **from, void *to);
asm (R"(
  .pushsection .text
  .p2align 4
  .globl lsc_emu_switch
  .hidden lsc_emu_switch
  .type lsc_emu_switch, @function
lsc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lsc_emu_switch, .-lsc_emu_switch
  .popsection
)");

namespace {

const size_t TOTAL_MEMORY = (size_t) 80 << 30;   // an H100's, unless the environment says
const size_t SHARED_DEFAULT = 48 << 10;          // dynamic shared memory without opting in
const size_t SHARED_OPTIN = 227 << 10;           // an H100's most per block, unless the
                                                 // environment says
const unsigned MAX_THREADS = 1024;
const int RUNTIME_VERSION = 13000;                // CUDA 13.0, as nvcc here

[[noreturn]] void
die (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

void
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fputs ("lsc-cuda-emu: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  abort ();
}

/* ---- memory ---- */

// The environment's bytes for `name` when set, else `fallback`: read at
// each call, so that a test may change them between contexts and sessions.
size_t
env_bytes (const char *name, size_t fallback)
{
  const char *v = getenv (name);
  return v != nullptr && *v != '\0' ? (size_t) strtoull (v, nullptr, 10) : fallback;
}

// The device's memory (a test of what a smaller GPU does).
size_t
total_memory ()
{
  return env_bytes ("LSC_CUDA_EMULATOR_MEMORY", TOTAL_MEMORY);
}

// The most dynamic shared memory a kernel may opt into (99 KiB is an RTX
// 4090's, 64 KiB a T4's).
size_t
shared_optin ()
{
  return env_bytes ("LSC_CUDA_EMULATOR_SHARED", SHARED_OPTIN);
}

size_t
free_memory (size_t held)
{
  size_t total = total_memory ();
  return held < total ? total - held : 0;
}

struct Memory {
  std::mutex lock;
  std::map<uintptr_t, size_t> device;   // start -> bytes
  size_t held = 0;
  size_t shared_limit = SHARED_DEFAULT;
};

Memory &
memory ()
{
  static Memory m;
  return m;
}

// Whether [p, p + bytes) lies inside one device allocation.
bool
is_device (const void *p, size_t bytes)
{
  Memory &m = memory ();
  std::lock_guard<std::mutex> g (m.lock);
  uintptr_t a = (uintptr_t) p;
  auto it = m.device.upper_bound (a);
  if (it == m.device.begin ())
    return false;
  --it;
  return a >= it->first && a - it->first + bytes <= it->second;
}

void
check_side (const void *p, size_t bytes, bool device, const char *call, const char *what)
{
  if (is_device (p, bytes) != device)
    die ("%s: %s %p (%zu bytes) is %s", call, what, p, bytes,
         device ? "not (all) device memory" : "device memory");
}

void
check_copy (const void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *call)
{
  if (kind != cudaMemcpyHostToHost)
    {
      check_side (dst, bytes, kind != cudaMemcpyDeviceToHost, call, "destination");
      check_side (src, bytes, kind != cudaMemcpyHostToDevice, call, "source");
    }
}

thread_local cudaError_t last_error = cudaSuccess;

/* ---- fibers ---- */

enum State { NEW, RUNNABLE, AT_BARRIER, AT_SHUFFLE, DONE };

struct Thread {
  void *sp;                 // saved stack pointer while it waits
  char *stack;              // the lowest usable byte of its stack, once started
  State state;
  unsigned mask;            // of the shuffle it waits at
  unsigned shuffles;        // how many it has passed: picks the slot buffer
  LscEmuBuiltins builtins;
  void *fake_stack;         // ASan's, while it waits
};

// Stacks outlive launches. A thread that returns without having waited
// hands its stack to the next thread, so a block without barriers runs
// on one stack, without switching.
#if LSC_EMU_ASAN
const size_t STACK = 512 << 10;
#else
const size_t STACK = 128 << 10;
#endif
const size_t GUARD = 4096;

struct Block {
  const char *name;
  void (*body) (void *);
  void *closure;
  unsigned n_threads;
  bool reverse;                  // the order threads run in
  unsigned next;                 // the place in that order of the next thread to start
  std::vector<Thread> threads;
  std::vector<uint64_t> slots;   // shuffle values: 2 buffers x n_threads
  std::vector<char> shared;      // dynamic shared memory, + 16 for alignment
  char *shared_base;
  std::vector<char *> free_stacks;
  size_t stacks_used;            // of the pool below
  Thread *cur;
  void *sched_sp;
  const void *sched_bottom;      // the scheduler's stack, for ASan
  size_t sched_size;
  void *sched_fake_stack;
};

thread_local Block *block;
std::vector<char *> stacks;   // the pool, under launch_lock
std::mutex launch_lock;

Thread *
at_place (Block *b, unsigned k)
{
  return &b->threads[b->reverse ? b->n_threads - 1 - k : k];
}

void
enter (Thread *t)
{
  block->cur = t;
  lsc_emu_builtins = &t->builtins;
  t->state = RUNNABLE;
}

void
switch_to_scheduler (Thread *t, bool dying)
{
#if LSC_EMU_ASAN
  __sanitizer_start_switch_fiber (dying ? nullptr : &t->fake_stack, block->sched_bottom,
                                  block->sched_size);
#else
  (void) dying;
#endif
  lsc_emu_switch (&t->sp, block->sched_sp);
#if LSC_EMU_ASAN
  __sanitizer_finish_switch_fiber (t->fake_stack, &block->sched_bottom, &block->sched_size);
#endif
}

void
wait_as (State s)
{
  Thread *t = block->cur;
  t->state = s;
  switch_to_scheduler (t, false);
}

[[noreturn]] void
fiber_main ()
{
  Block *b = block;
#if LSC_EMU_ASAN
  __sanitizer_finish_switch_fiber (nullptr, &b->sched_bottom, &b->sched_size);
#endif
  char *stack = b->cur->stack;
  for (;;)
    {
      b->body (b->closure);
      b->cur->state = DONE;
      if (b->next >= b->n_threads || at_place (b, b->next)->state != NEW)
        break;
      Thread *t = at_place (b, b->next++);
      t->stack = stack;
      enter (t);
    }
  b->free_stacks.push_back (stack);
  switch_to_scheduler (b->cur, true);
  die ("a finished thread was resumed");
}

void
resume (Thread *t)
{
  enter (t);
#if LSC_EMU_ASAN
  __sanitizer_start_switch_fiber (&block->sched_fake_stack, t->stack, STACK - GUARD);
#endif
  lsc_emu_switch (&block->sched_sp, t->sp);
#if LSC_EMU_ASAN
  __sanitizer_finish_switch_fiber (block->sched_fake_stack, nullptr, nullptr);
#endif
}

char *
new_stack ()
{
  void *p = mmap (nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
  if (p == MAP_FAILED)
    die ("no memory for a thread's stack");
  // the lowest page faults on an overflow instead of writing over the next stack
  mprotect (p, GUARD, PROT_NONE);
  return (char *) p + GUARD;
}

// Starts t on a stack of its own (or one a finished thread left).
void
start (Block *b, Thread *t)
{
  if (!b->free_stacks.empty ())
    {
      t->stack = b->free_stacks.back ();
      b->free_stacks.pop_back ();
    }
  else
    {
      if (b->stacks_used == stacks.size ())
        stacks.push_back (new_stack ());
      t->stack = stacks[b->stacks_used++];
    }
#if LSC_EMU_ASAN
  // frames of a thread that ran here before and never returned
  __asan_unpoison_memory_region (t->stack, STACK - GUARD);
#endif
  // the frame lsc_emu_switch pops: r15, r14, r13, r12, rbx, rbp, then
  // fiber_main's address to return into and a null return address for
  // fiber_main itself (rsp = 8 mod 16 at its entry)
  uintptr_t top = ((uintptr_t) t->stack + STACK - GUARD) & ~(uintptr_t) 15;
  uint64_t *sp = (uint64_t *) (top - 64);
  for (int i = 0; i < 6; i++)
    sp[i] = 0;
  sp[6] = (uint64_t) (uintptr_t) &fiber_main;
  sp[7] = 0;
  t->sp = sp;
  t->fake_stack = nullptr;
  resume (t);
}

const char *
where (const Thread &t)
{
  static thread_local char buf[200];
  const LscEmuBuiltins &b = t.builtins;
  snprintf (buf, sizeof buf, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u)", block->name,
            b.blockIdx.x, b.blockIdx.y, b.blockIdx.z, b.threadIdx.x, b.threadIdx.y,
            b.threadIdx.z);
  return buf;
}

// Opens the shuffles whose lanes have all arrived; true when one opened.
bool
open_shuffles (Block *b)
{
  bool opened = false;
  for (unsigned w0 = 0; w0 < b->n_threads; w0 += 32)
    {
      unsigned w1 = std::min (w0 + 32, b->n_threads);
      unsigned mask = 0, waiting = 0;
      for (unsigned i = w0; i < w1; i++)
        if (b->threads[i].state == AT_SHUFFLE)
          {
            mask |= b->threads[i].mask;
            waiting |= 1u << (i - w0);
          }
      if (waiting == 0 || (mask & waiting) != mask)
        continue;
      for (unsigned i = w0; i < w1; i++)
        if (b->threads[i].state == AT_SHUFFLE && b->threads[i].mask != mask)
          die ("%s: lanes of a warp wait at shuffles with different masks", where (b->threads[i]));
      for (unsigned i = w0; i < w1; i++)
        if (waiting & (1u << (i - w0)))
          b->threads[i].state = RUNNABLE;
      opened = true;
    }
  return opened;
}

// A waiting shuffle that can never open: why, and abort.
[[noreturn]] void
die_at_shuffle (Block *b, const Thread &t, unsigned at_barrier, unsigned done)
{
  unsigned n = b->n_threads, w0 = (unsigned) (&t - b->threads.data ()) / 32 * 32;
  for (unsigned l = 0; l < 32; l++)
    if ((t.mask & (1u << l)) && (w0 + l >= n || b->threads[w0 + l].state == DONE))
      die ("%s: shuffle mask %#x names lane %u, which %s", where (t), t.mask, l,
           w0 + l >= n ? "does not exist" : "has returned");
  die ("%s: waits at a shuffle (mask %#x) whose lanes never all arrive "
       "(%u threads at __syncthreads, %u returned)", where (t), t.mask, at_barrier, done);
}

void
run_block (Block *b, uint3 bid, dim3 grid, dim3 dim, bool reverse)
{
  unsigned n = b->n_threads;
  for (unsigned i = 0; i < n; i++)
    {
      Thread &t = b->threads[i];
      t.state = NEW;
      t.shuffles = 0;
      t.builtins.blockIdx = bid;
      t.builtins.gridDim = grid;
      t.builtins.blockDim = dim;
      t.builtins.threadIdx = uint3 { i % dim.x, i / dim.x % dim.y, i / (dim.x * dim.y) };
    }
  b->reverse = reverse;
  b->next = 0;
  b->free_stacks.clear ();
  b->stacks_used = 0;
  if (!b->shared.empty ())
    memset (b->shared_base, 0xff, b->shared.size () - 16);

  for (;;)
    {
      for (unsigned k = 0; k < n; k++)
        {
          Thread *t = at_place (b, k);
          if (t->state == NEW)
            {
              b->next = k + 1;
              start (b, t);
            }
          else if (t->state == RUNNABLE)
            resume (t);
        }
      if (open_shuffles (b))
        continue;
      unsigned at_barrier = 0, at_shuffle = 0, done = 0;
      for (unsigned i = 0; i < n; i++)
        {
          State st = b->threads[i].state;
          at_barrier += st == AT_BARRIER;
          at_shuffle += st == AT_SHUFFLE;
          done += st == DONE;
        }
      if (done == n)
        return;
      for (unsigned i = 0; at_shuffle > 0 && i < n; i++)
        if (b->threads[i].state == AT_SHUFFLE)
          die_at_shuffle (b, b->threads[i], at_barrier, done);
      for (unsigned i = 0; i < n; i++)
        if (b->threads[i].state == AT_BARRIER)
          b->threads[i].state = RUNNABLE;
    }
}

}  // namespace

/* ---- launches and device functions ---- */

cudaError_t
lsc_emu_func_set_attribute (cudaFuncAttribute attr, int value)
{
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0
      || (size_t) value > shared_optin ())
    return last_error = cudaErrorInvalidValue;
  Memory &m = memory ();
  std::lock_guard<std::mutex> g (m.lock);
  // per kernel on a GPU; the emulator keeps the largest any kernel asked for
  if ((size_t) value > m.shared_limit)
    m.shared_limit = (size_t) value;
  return cudaSuccess;
}

namespace {

// Whether LSC_CUDA_EMULATOR_FAIL_LAUNCH says this launch of `name` fails.
bool
injected_failure (const char *name)
{
  static std::mutex lock;
  static std::string value;   // the variable's value the count is of
  static int count;
  const char *env = getenv ("LSC_CUDA_EMULATOR_FAIL_LAUNCH");
  std::lock_guard<std::mutex> g (lock);
  if (env == nullptr || *env == '\0')
    {
      value.clear ();
      return false;
    }
  if (value != env)
    {
      value = env;
      count = 0;
    }
  const char *colon = strrchr (env, ':');
  size_t len = colon != nullptr ? (size_t) (colon - env) : strlen (env);
  int k = colon != nullptr ? atoi (colon + 1) : 1;
  return strncmp (name, env, len) == 0 && ++count == k;
}

}  // namespace

void
lsc_emu_run (const char *name, dim3 grid, dim3 dim, size_t smem, void (*body) (void *),
             void *closure)
{
  if (injected_failure (name))
    {
      last_error = cudaErrorLaunchFailure;
      return;
    }
  size_t n = (size_t) dim.x * dim.y * dim.z;
  size_t shared_limit;
  {
    Memory &m = memory ();
    std::lock_guard<std::mutex> g (m.lock);
    shared_limit = m.shared_limit;
  }
  if (n == 0 || n > MAX_THREADS || dim.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0
      || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 || smem > shared_limit)
    {
      last_error = cudaErrorInvalidConfiguration;
      return;
    }
  if (block != nullptr)
    die ("kernel %s launched from inside kernel %s", name, block->name);

  std::lock_guard<std::mutex> g (launch_lock);
  Block b;
  b.name = name;
  b.body = body;
  b.closure = closure;
  b.n_threads = (unsigned) n;
  b.threads.resize (n);
  b.slots.assign (2 * n, 0);
  if (smem > 0)
    b.shared.resize (smem + 16);
  b.shared_base = b.shared.empty () ? nullptr
                                    : (char *) (((uintptr_t) b.shared.data () + 15) & ~(uintptr_t) 15);
  b.sched_bottom = nullptr;
  b.sched_size = 0;
  b.sched_fake_stack = nullptr;
  block = &b;
  size_t linear = 0;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++, linear++)
        run_block (&b, uint3 { x, y, z }, grid, dim, linear % 2 == 1);
  block = nullptr;
  lsc_emu_builtins = nullptr;
}

void *
lsc_emu_dynamic_shared (void)
{
  if (block == nullptr)
    die ("dynamic shared memory asked for outside a kernel");
  return block->shared_base;
}

void
__syncthreads (void)
{
  wait_as (AT_BARRIER);
}

uint64_t
lsc_emu_shuffle (unsigned mask, uint64_t value, int src, int width, int mode)
{
  Block *b = block;
  Thread *t = b->cur;
  unsigned i = (unsigned) (t - b->threads.data ());
  unsigned w0 = i / 32 * 32, lane = i % 32;
  if (!(mask & (1u << lane)) || width <= 0 || width > 32 || (width & (width - 1)) != 0)
    die ("%s: shuffle with mask %#x and width %d", where (*t), mask, width);

  uint64_t *buf = b->slots.data () + (t->shuffles % 2) * b->n_threads;
  t->shuffles++;
  buf[i] = value;
  t->mask = mask;
  wait_as (AT_SHUFFLE);

  unsigned base = lane / width * width, from;
  switch (mode)
    {
    case 0: from = base + (unsigned) src % width; break;
    case 1: from = lane ^ (unsigned) src; break;   // src 0: __syncwarp
    default: from = lane + (unsigned) src; break;
    }
  if ((mode == 1 || mode == 2) && from / width * width != base)
    from = lane;   // outside its segment: the lane keeps its own value
  if (!(mask & (1u << from)))
    die ("%s: reads lane %u, not in the shuffle's mask %#x", where (*t), from, mask);
  return buf[w0 + from];
}

void
__syncwarp (unsigned mask)
{
  lsc_emu_shuffle (mask, 0, 0, 32, 1);
}

/* ---- runtime ---- */

cudaError_t
cudaGetDeviceCount (int *count)
{
  const char *env = getenv ("LSC_CUDA_EMULATOR_DEVICE");
  int driver = 0, runtime = 0;
  *count = env != nullptr && strcmp (env, "1") == 0;
  cudaDriverGetVersion (&driver);
  cudaRuntimeGetVersion (&runtime);
  if (*count > 0 && driver < runtime)
    {
      *count = 0;
      return cudaErrorInsufficientDriver;
    }
  return *count > 0 ? cudaSuccess : cudaErrorNoDevice;
}

// The CUDA version the driver supports: LSC_CUDA_EMULATOR_DRIVER (12020 is
// CUDA 12.2's driver, older than the runtime's 13.0), else the runtime's.
cudaError_t
cudaDriverGetVersion (int *version)
{
  const char *env = getenv ("LSC_CUDA_EMULATOR_DRIVER");
  *version = env != nullptr && *env != '\0' ? atoi (env) : RUNTIME_VERSION;
  return cudaSuccess;
}

cudaError_t
cudaRuntimeGetVersion (int *version)
{
  *version = RUNTIME_VERSION;
  return cudaSuccess;
}

// LSC_CUDA_EMULATOR_CAPABILITY=MAJOR.MINOR (a V100 is 7.0), else 9.0.
static void
capability (int *major, int *minor)
{
  const char *env = getenv ("LSC_CUDA_EMULATOR_CAPABILITY");
  *major = 9;
  *minor = 0;
  if (env != nullptr && *env != '\0')
    sscanf (env, "%d.%d", major, minor);
}

cudaError_t
cudaSetDevice (int device)
{
  return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t
cudaDeviceGetAttribute (int *value, cudaDeviceAttr attr, int device)
{
  if (device != 0)
    return cudaErrorInvalidDevice;
  int major, minor;
  capability (&major, &minor);
  switch (attr)
    {
    case cudaDevAttrComputeCapabilityMajor: *value = major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = minor; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int) shared_optin (); return cudaSuccess;
    }
  return cudaErrorInvalidValue;
}

cudaError_t
cudaGetDeviceProperties (cudaDeviceProp *prop, int device)
{
  if (device != 0)
    return cudaErrorInvalidDevice;
  memset (prop, 0, sizeof *prop);
  snprintf (prop->name, sizeof prop->name, "Longscope CUDA emulator (CPU)");
  prop->totalGlobalMem = total_memory ();
  prop->sharedMemPerBlock = SHARED_DEFAULT;
  prop->sharedMemPerBlockOptin = shared_optin ();
  prop->maxThreadsPerBlock = MAX_THREADS;
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  capability (&prop->major, &prop->minor);
  return cudaSuccess;
}

cudaError_t
cudaGetLastError (void)
{
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

const char *
cudaGetErrorString (cudaError_t err)
{
  switch (err)
    {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
    }
}

cudaError_t
cudaMalloc (void **ptr, size_t bytes)
{
  Memory &m = memory ();
  *ptr = nullptr;
  {
    std::lock_guard<std::mutex> g (m.lock);
    if (bytes > free_memory (m.held))
      return cudaErrorMemoryAllocation;
  }
  void *p = aligned_alloc (256, (bytes + 255) / 256 * 256);
  if (p == nullptr)
    return cudaErrorMemoryAllocation;
  memset (p, 0xff, bytes);
  std::lock_guard<std::mutex> g (m.lock);
  m.device[(uintptr_t) p] = bytes;
  m.held += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t
cudaFree (void *ptr)
{
  if (ptr == nullptr)
    return cudaSuccess;
  Memory &m = memory ();
  {
    std::lock_guard<std::mutex> g (m.lock);
    auto it = m.device.find ((uintptr_t) ptr);
    if (it == m.device.end ())
      die ("cudaFree: %p is not the start of a device allocation", ptr);
    m.held -= it->second;
    m.device.erase (it);
  }
  free (ptr);
  return cudaSuccess;
}

cudaError_t
cudaMallocHost (void **ptr, size_t bytes)
{
  *ptr = malloc (bytes > 0 ? bytes : 1);
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t
cudaFreeHost (void *ptr)
{
  free (ptr);
  return cudaSuccess;
}

cudaError_t
cudaMemGetInfo (size_t *free_bytes, size_t *total_bytes)
{
  Memory &m = memory ();
  std::lock_guard<std::mutex> g (m.lock);
  *free_bytes = free_memory (m.held);
  *total_bytes = total_memory ();
  return cudaSuccess;
}

// Copies are synchronous: the emulator has one stream, and it never waits.
static void
copy (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *call)
{
  if (bytes == 0)
    return;
  check_copy (dst, src, bytes, kind, call);
  memmove (dst, src, bytes);
}

cudaError_t
cudaMemcpy (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
  copy (dst, src, bytes, kind, "cudaMemcpy");
  return cudaSuccess;
}

cudaError_t
cudaMemcpyAsync (void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t)
{
  copy (dst, src, bytes, kind, "cudaMemcpyAsync");
  return cudaSuccess;
}

cudaError_t
cudaMemcpy2DAsync (void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                   size_t height, cudaMemcpyKind kind, cudaStream_t)
{
  if (width > dpitch || width > spitch)
    return cudaErrorInvalidValue;
  for (size_t r = 0; r < height; r++)
    copy ((char *) dst + r * dpitch, (const char *) src + r * spitch, width, kind,
          "cudaMemcpy2DAsync");
  return cudaSuccess;
}

cudaError_t
cudaMemsetAsync (void *dst, int value, size_t bytes, cudaStream_t)
{
  if (bytes == 0)
    return cudaSuccess;
  check_side (dst, bytes, true, "cudaMemsetAsync", "destination");
  memset (dst, value, bytes);
  return cudaSuccess;
}

cudaError_t
cudaStreamCreateWithFlags (cudaStream_t *stream, unsigned)
{
  static char token;   // streams are all the same synchronous one
  *stream = (cudaStream_t) &token;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy (cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize (cudaStream_t) { return cudaSuccess; }

/* ---- cuBLAS ---- */

namespace {

// op (X) is rows x cols; X itself (column-major, ld) is that or its transpose
bool
operand_ok (const void *x, cudaDataType_t type, cublasOperation_t op, int rows, int cols, int ld)
{
  int stored_rows = op == CUBLAS_OP_N ? rows : cols, stored_cols = op == CUBLAS_OP_N ? cols : rows;
  if (ld < std::max (1, stored_rows))
    return false;
  size_t elt = type == CUDA_R_32F ? 4 : 2;
  return is_device (x, ((size_t) ld * (stored_cols - 1) + stored_rows) * elt);
}

// X (column-major: stored_rows of each of stored_cols columns, ld apart)
// widened to float, in the same layout
std::vector<float>
widen (const void *x, cudaDataType_t type, cublasOperation_t op, int rows, int cols, int ld)
{
  int stored_rows = op == CUBLAS_OP_N ? rows : cols, stored_cols = op == CUBLAS_OP_N ? cols : rows;
  size_t n = (size_t) ld * (stored_cols - 1) + stored_rows;
  std::vector<float> out ((size_t) ld * stored_cols);
  const uint16_t *h = (const uint16_t *) x;
  for (size_t i = 0; i < n; i++)
    {
      if (type == CUDA_R_16F)
        {
          __half v;
          memcpy (&v, &h[i], 2);
          out[i] = (float) v.v;
        }
      else
        {
          uint32_t u = (uint32_t) h[i] << 16;
          memcpy (&out[i], &u, 4);
        }
    }
  return out;
}

}  // namespace

struct LscEmuBlas {
  int unused;
};

cublasStatus_t
cublasCreate (cublasHandle_t *handle)
{
  *handle = new LscEmuBlas ();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasDestroy (cublasHandle_t handle)
{
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream (cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t
cublasSetMathMode (cublasHandle_t, cublasMath_t mode)
{
  // float32 GEMMs are float32 here whatever the mode; only the default is used
  return mode == CUBLAS_DEFAULT_MATH ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t
cublasGemmEx (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
              int n, int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda,
              const void *B, cudaDataType_t Btype, int ldb, const void *beta, void *C,
              cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t)
{
  if (handle == nullptr)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || Atype != Btype || Ctype != CUDA_R_32F
      || computeType != CUBLAS_COMPUTE_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0)
    return CUBLAS_STATUS_SUCCESS;
  if (ldc < m || !is_device (C, ((size_t) ldc * (n - 1) + m) * 4))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (k > 0 && (!operand_ok (A, Atype, transa, m, k, lda) || !operand_ok (B, Btype, transb, k, n, ldb)))
    return CUBLAS_STATUS_INVALID_VALUE;
  float a = *(const float *) alpha, b = *(const float *) beta;
  if (k == 0)
    {
      // C <- beta C; with beta 0 C is not read (it may hold NaN), as in cuBLAS
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++)
          {
            float *c = (float *) C + (size_t) j * ldc + i;
            *c = b == 0.0f ? 0.0f : b * *c;
          }
      return CUBLAS_STATUS_SUCCESS;
    }
  CBLAS_TRANSPOSE ta = transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
  CBLAS_TRANSPOSE tb = transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
  if (Atype == CUDA_R_32F)
    {
      cblas_sgemm (CblasColMajor, ta, tb, m, n, k, a, (const float *) A, lda, (const float *) B,
                   ldb, b, (float *) C, ldc);
      return CUBLAS_STATUS_SUCCESS;
    }
  if (Atype != CUDA_R_16F && Atype != CUDA_R_16BF)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  std::vector<float> wa = widen (A, Atype, transa, m, k, lda);
  std::vector<float> wb = widen (B, Btype, transb, k, n, ldb);
  cblas_sgemm (CblasColMajor, ta, tb, m, n, k, a, wa.data (), lda, wb.data (), ldb, b, (float *) C,
               ldc);
  return CUBLAS_STATUS_SUCCESS;
}
