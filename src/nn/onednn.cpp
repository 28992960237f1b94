#include "nn/onednn.h"

namespace ddp::nn {

Step::Step(dnnl::primitive prim, std::vector<std::pair<int, memory>> args) : prim_(std::move(prim)) {
  for (auto& [key, mem] : args) {
    args_.push_back({key, mem.get()});
    keep_alive_.push_back(std::move(mem));
  }
}

void Step::run(const Runtime& rt) const {
  dnnl::error::wrap_c_api(
      dnnl_primitive_execute(prim_.get(), rt.stream.get(), static_cast<int>(args_.size()), args_.data()),
      "could not execute a primitive");
}

Bridge::Bridge(const Runtime& rt, const memory& user, const memory::desc& want) {
  if (user.get_desc() == want) {
    inner_ = user;
    return;
  }
  inner_ = memory(want, rt.engine);
  to_inner_ = Step(dnnl::reorder(user, inner_), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, inner_}});
  to_user_ = Step(dnnl::reorder(inner_, user), {{DNNL_ARG_FROM, inner_}, {DNNL_ARG_TO, user}});
}

}  // namespace ddp::nn
