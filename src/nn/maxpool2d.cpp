#include "nn/maxpool2d.h"

namespace ddp::nn {

MaxPool2d::MaxPool2d(const Runtime& rt, const memory& src, const memory& diff_src) {
  const memory::dims in = src.get_desc().dims();
  const memory::dims out = {in[0], in[1], in[2] / 2, in[3] / 2};
  const memory::dims window = {2, 2}, pad = {0, 0};
  const dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max,
                                       src.get_desc(), any_desc(out, src.get_desc().data_type()), window, window, pad, pad);
  const dnnl::pooling_forward::primitive_desc fpd(fd, rt.engine);
  impl_fwd_ = fpd.impl_info_str();
  dst_ = memory(fpd.dst_desc(), rt.engine);
  diff_dst_ = memory(fpd.dst_desc(), rt.engine);
  workspace_ = memory(fpd.workspace_desc(), rt.engine);
  fwd_ = Step(dnnl::pooling_forward(fpd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_WORKSPACE, workspace_}});

  const dnnl::pooling_backward::desc bd(dnnl::algorithm::pooling_max, diff_src.get_desc(), fpd.dst_desc(), window,
                                        window, pad, pad);
  const dnnl::pooling_backward::primitive_desc bpd(bd, rt.engine, fpd);
  impl_bwd_ = bpd.impl_info_str();
  bwd_ = Step(dnnl::pooling_backward(bpd),
              {{DNNL_ARG_DIFF_DST, diff_dst_}, {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WORKSPACE, workspace_}});
}

void MaxPool2d::implementations(const std::string& name, Implementations& out) const {
  out.emplace_back(name + ".forward", impl_fwd_);
  out.emplace_back(name + ".backward", impl_bwd_);
}

}  // namespace ddp::nn
