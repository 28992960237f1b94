// Thin helpers over oneDNN 2.6: the engine and stream, an executable step
// (a primitive with its arguments bound once), and a "reorder only where the
// layout differs" bridge between a plain user buffer and a primitive's
// preferred layout.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <utility>
#include <vector>

namespace ddp::nn {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

// A primitive whose arguments are bound at creation. Executing it goes
// straight to the C API with the pre-built argument array, so the
// steady-state step allocates nothing on our side.
class Step {
 public:
  Step() = default;
  Step(dnnl::primitive prim, std::vector<std::pair<int, memory>> args);
  void run(const Runtime& rt) const;
  explicit operator bool() const { return static_cast<bool>(prim_); }

 private:
  dnnl::primitive prim_;
  std::vector<memory> keep_alive_;
  std::vector<dnnl_exec_arg_t> args_;
};

// A memory in the layout `want`, bridged to a user memory `user` by a
// reorder only when the two layouts differ (otherwise both are one buffer).
class Bridge {
 public:
  Bridge() = default;
  Bridge(const Runtime& rt, const memory& user, const memory::desc& want);
  const memory& mem() const { return inner_; }
  void to_inner(const Runtime& rt) const { if (to_inner_) to_inner_.run(rt); }  // user -> inner
  void to_user(const Runtime& rt) const { if (to_user_) to_user_.run(rt); }     // inner -> user

 private:
  memory inner_;
  Step to_inner_, to_user_;
};

inline memory::desc plain_desc(const memory::dims& dims, tag t) { return {dims, dt::f32, t}; }
inline memory::desc any_desc(const memory::dims& dims, dt type = dt::f32) { return {dims, type, tag::any}; }

// What a layer reports about the oneDNN implementations it runs: pairs of
// "<layer>.<pass>" and primitive_desc::impl_info_str() ("brgconv:avx512_core_amx_bf16").
using Implementations = std::vector<std::pair<std::string, std::string>>;

}  // namespace ddp::nn
