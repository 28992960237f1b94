// A parameter tensor as a view into the model's flat buffers: its value in
// the parameter buffer and its gradient at the same offset in the gradient
// buffer. Layouts are plain (OIHW / OI) so the buffers mean the same on every
// rank and machine, and match PyTorch's state_dict.
#pragma once
#include <cstddef>
#include <new>
#include <string>
#include <vector>

namespace ddp::nn {

// Storage aligned to 64 bytes (a cache line, an AVX-512 vector). oneDNN
// reads the weights from and writes the weight gradients into the flat
// buffers directly; at the 16-byte alignment glibc gives large blocks,
// every vector access to them straddles two cache lines (measured: fc1's
// weight gradient 10-80% slower).
template <class T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  friend bool operator==(const CacheAligned&, const CacheAligned&) { return true; }
};
template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

struct ParamView {
  float* value = nullptr;
  float* grad = nullptr;
};

struct ParamSpec {
  std::string name;           // PyTorch's name: "conv1.weight", ...
  std::vector<long> shape;    // PyTorch's shape
  size_t offset = 0;          // into the flat buffers, in floats
  size_t count = 0;
  int fan_in = 0;             // for PyTorch's default initialisation
};

}  // namespace ddp::nn
