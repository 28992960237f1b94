#include "nn/conv2d.h"

#include <string>

namespace ddp::nn {

namespace {

bool is_reference(const char* impl) { return std::string(impl).starts_with("ref"); }

// Backward weights on the forward's own src and dst layouts, when oneDNN has
// an optimised kernel for them: then neither is reordered a step. Otherwise
// (a reference kernel, ~1000x slower) on the layouts it prefers. Measured,
// bf16 conv1 on AMX: its preferred kernel wants NHWC, so the forward's
// nChw16c gradient of dst (1.6M values a batch of 64) would be reordered
// every step, and the kernel on nChw16c is as fast.
dnnl::convolution_backward_weights::primitive_desc backward_weights_pd(
    const Runtime& rt, const dnnl::convolution_forward::primitive_desc& fpd, const memory::desc& weights,
    const memory::desc& bias, const memory::desc& any_src, const memory::desc& any_dst) {
  const memory::dims stride = {1, 1}, pad = {1, 1};
  using pd_t = dnnl::convolution_backward_weights::primitive_desc;
  const dnnl::convolution_backward_weights::desc own(dnnl::algorithm::convolution_direct, fpd.src_desc(), weights,
                                                     bias, fpd.dst_desc(), stride, pad, pad);
  pd_t pd(own, rt.engine, fpd, /*allow_empty=*/true);
  if (pd && !is_reference(pd.impl_info_str())) return pd;
  const dnnl::convolution_backward_weights::desc any(dnnl::algorithm::convolution_direct, any_src, weights, bias,
                                                     any_dst, stride, pad, pad);
  return pd_t(any, rt.engine, fpd);
}

}  // namespace

Conv2d::Conv2d(const Runtime& rt, const memory& src, const memory& diff_src, int out_c, ParamView weight,
               ParamView bias, bool fuse_relu, dt type) {
  const memory::dims in = src.get_desc().dims();  // n, c, h, w
  const memory::dim n = in[0], in_c = in[1], h = in[2], w = in[3];
  const memory::dims wdims = {out_c, in_c, 3, 3}, odims = {n, out_c, h, w};
  const memory::dims stride = {1, 1}, pad = {1, 1};
  const auto bias_md = plain_desc({out_c}, tag::x);
  flops_ = 2.0 * n * out_c * h * w * in_c * 9;

  // Forward: every layout "any", so oneDNN picks its fastest (blocked) one.
  dnnl::primitive_attr attr;
  if (fuse_relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  const dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                           any_desc(in, type), any_desc(wdims, type), bias_md, any_desc(odims, type),
                                           stride, pad, pad);
  const dnnl::convolution_forward::primitive_desc fpd(fd, attr, rt.engine);
  impl_fwd_ = fpd.impl_info_str();
  const memory user_w(plain_desc(wdims, tag::oihw), rt.engine, weight.value);
  const memory user_b(bias_md, rt.engine, bias.value);
  src_ = Bridge(rt, src, fpd.src_desc());
  weights_ = Bridge(rt, user_w, fpd.weights_desc());
  dst_ = memory(fpd.dst_desc(), rt.engine);
  // dst is dead once the next layer has read it (the pool keeps its winners
  // in a workspace; the ReLU's backward reads the pool's output), so its
  // gradient reuses its memory: 9.6 MB less per batch of 64, which counts
  // when two ranks share one L3 cache (docs/performance.md, "One core").
  diff_dst_ = memory(fpd.dst_desc(), rt.engine, dst_.get_data_handle());
  fwd_ = Step(dnnl::convolution_forward(fpd), {{DNNL_ARG_SRC, src_.mem()},
                                               {DNNL_ARG_WEIGHTS, weights_.mem()},
                                               {DNNL_ARG_BIAS, user_b},
                                               {DNNL_ARG_DST, dst_}});

  // Backward weights: reads the forward's src and the gradient of dst. The
  // weight gradient is f32 in both precisions, in oneDNN's layout ("any":
  // a plain OIHW one gets a reference kernel, ~1000x slower), reordered
  // into the plain gradient buffer.
  const auto wpd = backward_weights_pd(rt, fpd, any_desc(wdims), bias_md, any_desc(in, type), any_desc(odims, type));
  impl_bwd_weights_ = wpd.impl_info_str();
  const memory user_dw(plain_desc(wdims, tag::oihw), rt.engine, weight.grad);
  const memory user_db(bias_md, rt.engine, bias.grad);
  bw_src_ = Bridge(rt, src_.mem(), wpd.src_desc());
  bw_diff_dst_ = Bridge(rt, diff_dst_, wpd.diff_dst_desc());
  bw_diff_weights_ = Bridge(rt, user_dw, wpd.diff_weights_desc());
  bwd_weights_ = Step(dnnl::convolution_backward_weights(wpd), {{DNNL_ARG_SRC, bw_src_.mem()},
                                                                {DNNL_ARG_DIFF_DST, bw_diff_dst_.mem()},
                                                                {DNNL_ARG_DIFF_WEIGHTS, bw_diff_weights_.mem()},
                                                                {DNNL_ARG_DIFF_BIAS, user_db}});

  if (!diff_src) return;
  const dnnl::convolution_backward_data::desc dd(dnnl::algorithm::convolution_direct, any_desc(in, type),
                                                 any_desc(wdims, type), any_desc(odims, type), stride, pad, pad);
  const dnnl::convolution_backward_data::primitive_desc dpd(dd, rt.engine, fpd);
  impl_bwd_data_ = dpd.impl_info_str();
  // The forward's weights when the layouts agree (no second conversion);
  // otherwise a conversion of its own from the f32 parameters (oneDNN's
  // kernels want different blockings for the two passes).
  bd_weights_ = dpd.weights_desc() == fpd.weights_desc() ? Bridge(rt, weights_.mem(), dpd.weights_desc())
                                                         : Bridge(rt, user_w, dpd.weights_desc());
  bd_diff_dst_ = Bridge(rt, diff_dst_, dpd.diff_dst_desc());
  bd_diff_src_ = Bridge(rt, diff_src, dpd.diff_src_desc());
  bwd_data_ = Step(dnnl::convolution_backward_data(dpd), {{DNNL_ARG_DIFF_DST, bd_diff_dst_.mem()},
                                                          {DNNL_ARG_WEIGHTS, bd_weights_.mem()},
                                                          {DNNL_ARG_DIFF_SRC, bd_diff_src_.mem()}});
}

void Conv2d::implementations(const std::string& name, Implementations& out) const {
  out.emplace_back(name + ".forward", impl_fwd_);
  out.emplace_back(name + ".backward_weights", impl_bwd_weights_);
  if (bwd_data_) out.emplace_back(name + ".backward_data", impl_bwd_data_);
}

void Conv2d::forward(const Runtime& rt) const {
  src_.to_inner(rt);
  weights_.to_inner(rt);  // the plain parameters change every step
  fwd_.run(rt);
}

void Conv2d::backward_weights(const Runtime& rt) const {
  bw_src_.to_inner(rt);
  bw_diff_dst_.to_inner(rt);
  bwd_weights_.run(rt);
  bw_diff_weights_.to_user(rt);
}

void Conv2d::backward_data(const Runtime& rt) const {
  if (!bwd_data_) return;
  bd_weights_.to_inner(rt);
  bd_diff_dst_.to_inner(rt);
  bwd_data_.run(rt);
  bd_diff_src_.to_user(rt);
}

}  // namespace ddp::nn
