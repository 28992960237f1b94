// Counts heap allocations, and who made them, while counting is on.
//
// Including this header REPLACES, for the whole test binary, the global
// operator new / delete (every form) and interposes the C allocation
// functions (malloc, calloc, realloc, posix_memalign, aligned_alloc,
// memalign, valloc; they forward to glibc's __libc_* entry points, so glibc's
// free() stays valid). Include it in exactly ONE source file per binary.
//
// Each allocation made while counting is on is attributed to the library of
// the first calling frame outside the C and C++ runtimes (libc, libstdc++,
// libgcc_s): "ours" (the test binary, i.e. our code, including what it calls
// in libstdc++), "onednn" (libdnnl), "openmp" (libgomp), or "other". So
// oneDNN's own internal allocations (a C++ container inside
// dnnl_primitive_execute, its scratchpad via posix_memalign) are told apart
// from ours. The first few of our allocations keep their call stacks, for the
// failure message.
//
// Not available under AddressSanitizer (which owns malloc): enabled() is
// false there.
#pragma once
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DDP_ALLOC_COUNTER 0
#else
#define DDP_ALLOC_COUNTER 1
#endif

// The allocation functions below live in their own section, so that a call
// stack can be read from the first frame outside them.
#define DDP_ALLOC_HOOK __attribute__((section("alloc_counter_text"), noinline))
extern "C" char __start_alloc_counter_text[], __stop_alloc_counter_text[];

namespace alloc_counter {

enum Origin { kOurs, kOneDnn, kOpenMp, kOther, kOrigins };
enum Kind { kNew, kMalloc, kKinds };  // C++ operator new; C malloc family
inline const char* origin_name(int o) {
  static const char* names[] = {"ours", "onednn", "openmp", "other"};
  return names[o];
}

struct Counts {
  long n[kKinds][kOrigins] = {};
  long total(Origin o) const { return n[kNew][o] + n[kMalloc][o]; }
};

namespace detail {

struct Range {
  uintptr_t lo = 0, hi = 0;
  int owner = kOther;  // an Origin, or -1: a runtime library to look past
};
inline Range g_ranges[256];
inline int g_num_ranges = 0;
inline std::atomic<bool> g_on{false};
inline std::atomic<long> g_counts[kKinds][kOrigins];
constexpr int kKeep = 8, kDepth = 24;
inline void* g_stacks[kKeep][kDepth];
inline int g_stack_depth[kKeep];
inline std::atomic<int> g_kept{0};
inline thread_local bool t_busy = false;
inline thread_local int t_attribute = -1;  // >= 0: every allocation of this thread goes to this Origin

inline int classify_object(const char* name, bool main_program) {
  if (main_program) return kOurs;
  auto has = [&](const char* s) { return std::strstr(name, s) != nullptr; };
  if (has("libdnnl")) return kOneDnn;
  if (has("libgomp")) return kOpenMp;
  if (has("libstdc++") || has("libc.so") || has("libgcc_s") || has("libc-") || has("libm.so")) return -1;
  return kOther;
}

inline int collect(dl_phdr_info* info, size_t, void*) {
  const bool main_program = g_num_ranges == 0 && (!info->dlpi_name || !*info->dlpi_name);
  const int owner = classify_object(info->dlpi_name ? info->dlpi_name : "", main_program);
  for (int i = 0; i < info->dlpi_phnum && g_num_ranges < 256; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    g_ranges[g_num_ranges++] = {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz, owner};
  }
  return 0;
}

inline int owner_of(void* pc) {
  const auto a = reinterpret_cast<uintptr_t>(pc);
  if (a >= reinterpret_cast<uintptr_t>(__start_alloc_counter_text) &&
      a < reinterpret_cast<uintptr_t>(__stop_alloc_counter_text))
    return -1;  // the counting allocation functions themselves
  for (int i = 0; i < g_num_ranges; ++i)
    if (a >= g_ranges[i].lo && a < g_ranges[i].hi) return g_ranges[i].owner;
  return kOther;  // JIT code, or a library loaded later
}

DDP_ALLOC_HOOK void record(Kind kind) {
  if (!g_on.load(std::memory_order_relaxed) || t_busy) return;
  t_busy = true;
  if (t_attribute >= 0) {
    g_counts[kind][t_attribute].fetch_add(1, std::memory_order_relaxed);
    t_busy = false;
    return;
  }
  void* frames[kDepth];
  const int depth = backtrace(frames, kDepth);
  int origin = kOther;
  for (int i = 0; i < depth; ++i) {
    const int o = owner_of(frames[i]);
    if (o >= 0) {
      origin = o;
      break;
    }
  }
  g_counts[kind][origin].fetch_add(1, std::memory_order_relaxed);
  if (origin == kOurs) {
    const int k = g_kept.fetch_add(1);
    if (k < kKeep) {
      std::memcpy(g_stacks[k], frames, sizeof(void*) * static_cast<size_t>(depth));
      g_stack_depth[k] = depth;
    }
  }
  t_busy = false;
}

}  // namespace detail

// While one lives, every allocation of this thread is counted as `origin`
// whatever the call stack says: for a library whose header-inline code
// allocates inside our binary (Gloo's AllreduceOptions).
struct AttributeTo {
  explicit AttributeTo(Origin origin) : saved_(detail::t_attribute) { detail::t_attribute = origin; }
  ~AttributeTo() { detail::t_attribute = saved_; }
  AttributeTo(const AttributeTo&) = delete;
  AttributeTo& operator=(const AttributeTo&) = delete;

 private:
  int saved_;
};

inline bool enabled() { return DDP_ALLOC_COUNTER != 0; }

// Counting on: from here every allocation of every thread is counted.
inline void start() {
  using namespace detail;
  if (g_num_ranges == 0) dl_iterate_phdr(collect, nullptr);
  {
    void* warm[4];
    backtrace(warm, 4);  // loads the unwinder now, not while counting
  }
  for (auto& k : g_counts)
    for (auto& c : k) c.store(0);
  g_kept.store(0);
  g_on.store(true);
}

inline Counts stop() {
  using namespace detail;
  g_on.store(false);
  Counts c;
  for (int k = 0; k < kKinds; ++k)
    for (int o = 0; o < kOrigins; ++o) c.n[k][o] = g_counts[k][o].load();
  return c;
}

// The call stacks of the first of our allocations since start(), one frame
// a line (function+offset as far as the dynamic symbols tell).
inline std::string our_stacks() {
  using namespace detail;
  std::string out;
  const int kept = g_kept.load() < kKeep ? g_kept.load() : kKeep;
  for (int k = 0; k < kept; ++k) {
    out += "allocation " + std::to_string(k + 1) + ":\n";
    for (int i = 0; i < g_stack_depth[k]; ++i) {
      if (owner_of(g_stacks[k][i]) == -1 && i < 4) continue;
      Dl_info info{};
      char line[512];
      if (dladdr(g_stacks[k][i], &info) && info.dli_sname)
        std::snprintf(line, sizeof line, "  %s (%s)\n", info.dli_sname, info.dli_fname);
      else
        std::snprintf(line, sizeof line, "  %p (%s)\n", g_stacks[k][i], info.dli_fname ? info.dli_fname : "?");
      out += line;
    }
  }
  return out;
}

}  // namespace alloc_counter

#if DDP_ALLOC_COUNTER
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void __libc_free(void*);

DDP_ALLOC_HOOK void* malloc(size_t n) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_malloc(n);
}
DDP_ALLOC_HOOK void* calloc(size_t n, size_t size) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_calloc(n, size);
}
DDP_ALLOC_HOOK void* realloc(void* p, size_t n) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_realloc(p, n);
}
DDP_ALLOC_HOOK int posix_memalign(void** out, size_t align, size_t n) noexcept {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  alloc_counter::detail::record(alloc_counter::kMalloc);
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
DDP_ALLOC_HOOK void* aligned_alloc(size_t align, size_t n) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_memalign(align, n);
}
DDP_ALLOC_HOOK void* memalign(size_t align, size_t n) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_memalign(align, n);
}
DDP_ALLOC_HOOK void* valloc(size_t n) noexcept {
  alloc_counter::detail::record(alloc_counter::kMalloc);
  return __libc_valloc(n);
}
}  // extern "C"

namespace alloc_counter::detail {
DDP_ALLOC_HOOK void* counted_new(size_t n) {
  record(kNew);
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
DDP_ALLOC_HOOK void* counted_new_aligned(size_t n, std::align_val_t a) {
  record(kNew);
  if (void* p = __libc_memalign(static_cast<size_t>(a), n ? n : 1)) return p;
  throw std::bad_alloc();
}
}  // namespace alloc_counter::detail

DDP_ALLOC_HOOK void* operator new(size_t n) { return alloc_counter::detail::counted_new(n); }
DDP_ALLOC_HOOK void* operator new[](size_t n) { return alloc_counter::detail::counted_new(n); }
DDP_ALLOC_HOOK void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try { return alloc_counter::detail::counted_new(n); } catch (...) { return nullptr; }
}
DDP_ALLOC_HOOK void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try { return alloc_counter::detail::counted_new(n); } catch (...) { return nullptr; }
}
DDP_ALLOC_HOOK void* operator new(size_t n, std::align_val_t a) { return alloc_counter::detail::counted_new_aligned(n, a); }
DDP_ALLOC_HOOK void* operator new[](size_t n, std::align_val_t a) { return alloc_counter::detail::counted_new_aligned(n, a); }
DDP_ALLOC_HOOK void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return alloc_counter::detail::counted_new_aligned(n, a); } catch (...) { return nullptr; }
}
DDP_ALLOC_HOOK void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return alloc_counter::detail::counted_new_aligned(n, a); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t) noexcept { __libc_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { __libc_free(p); }
#endif  // DDP_ALLOC_COUNTER
