#include "nn/relu.h"

namespace ddp::nn {

ReluBackward::ReluBackward(const Runtime& rt, const memory& y, const memory& diff) {
  const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
  // oneDNN wants a forward primitive descriptor as a hint even though the
  // forward ReLU never runs on its own (it is fused into conv / linear).
  const dnnl::eltwise_forward::primitive_desc hint(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, y.get_desc()), rt.engine);
  const dnnl::eltwise_backward::primitive_desc bpd(dnnl::eltwise_backward::desc(alg, diff.get_desc(), y.get_desc()),
                                                   rt.engine, hint);
  impl_ = bpd.impl_info_str();
  bwd_ = Step(dnnl::eltwise_backward(bpd), {{DNNL_ARG_DST, y}, {DNNL_ARG_DIFF_DST, diff}, {DNNL_ARG_DIFF_SRC, diff}});
}

}  // namespace ddp::nn
