#include "nn/linear.h"

namespace ddp::nn {

Linear::Linear(const Runtime& rt, const memory& src, const memory& diff_src, int out, ParamView weight,
               ParamView bias, bool fuse_relu, dt type) {
  const memory::dims in = src.get_desc().dims();
  const memory::dim n = in[0];
  memory::dims wdims = in;
  wdims[0] = out;
  const bool four_d = in.size() == 4;
  const tag wtag = four_d ? tag::oihw : tag::oi;
  const memory::dims odims = {n, out};
  const auto bias_md = plain_desc({out}, tag::x);
  const memory::desc dst_md(odims, type, tag::nc);
  flops_ = 2.0 * static_cast<double>(out) * static_cast<double>(src.get_desc().get_size()) /
           static_cast<double>(memory::data_type_size(src.get_desc().data_type()));

  dnnl::primitive_attr attr;
  if (fuse_relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  // Weights in the plain layout of the parameter buffer: in f32 they are
  // used where they are, with no per-step reorder of the 1.6 MB fc1 matrix
  // (measured: a blocked layout's faster forward does not pay for its
  // reorder); in bf16 the one conversion a call is a plain copy that rounds
  // (a reorder into a blocked layout transposes and took 10-70x longer).
  // In bf16 the source is plain too: oneDNN's GEMM kernels take plain
  // weights only with a plain source (otherwise: reference kernels).
  const memory::desc w_md(wdims, type, wtag);
  const memory::desc src_md = type == dt::f32 ? any_desc(in) : memory::desc(in, type, four_d ? tag::nchw : tag::nc);
  const dnnl::inner_product_forward::desc fd(dnnl::prop_kind::forward_training, src_md, w_md, bias_md, dst_md);
  const dnnl::inner_product_forward::primitive_desc fpd(fd, attr, rt.engine);
  impl_fwd_ = fpd.impl_info_str();
  const memory user_w(plain_desc(wdims, wtag), rt.engine, weight.value);
  const memory user_b(bias_md, rt.engine, bias.value);
  src_ = Bridge(rt, src, fpd.src_desc());
  weights_ = Bridge(rt, user_w, fpd.weights_desc());
  dst_ = memory(dst_md, rt.engine);
  diff_dst_ = memory(dst_md, rt.engine);
  fwd_ = Step(dnnl::inner_product_forward(fpd), {{DNNL_ARG_SRC, src_.mem()},
                                                 {DNNL_ARG_WEIGHTS, weights_.mem()},
                                                 {DNNL_ARG_BIAS, user_b},
                                                 {DNNL_ARG_DST, dst_}});

  // The weight gradient is f32 in the plain layout in both precisions:
  // oneDNN writes it straight into the gradient buffer.
  const auto dw_md = plain_desc(wdims, wtag);
  const dnnl::inner_product_backward_weights::desc wd(src_md, dw_md, bias_md, dst_md);
  const dnnl::inner_product_backward_weights::primitive_desc wpd(wd, rt.engine, fpd);
  impl_bwd_weights_ = wpd.impl_info_str();
  const memory user_dw(dw_md, rt.engine, weight.grad);
  const memory user_db(bias_md, rt.engine, bias.grad);
  bw_src_ = Bridge(rt, src_.mem(), wpd.src_desc());
  bw_diff_weights_ = Bridge(rt, user_dw, wpd.diff_weights_desc());
  bwd_weights_ = Step(dnnl::inner_product_backward_weights(wpd), {{DNNL_ARG_SRC, bw_src_.mem()},
                                                                  {DNNL_ARG_DIFF_DST, diff_dst_},
                                                                  {DNNL_ARG_DIFF_WEIGHTS, bw_diff_weights_.mem()},
                                                                  {DNNL_ARG_DIFF_BIAS, user_db}});

  if (!diff_src) return;
  const dnnl::inner_product_backward_data::desc dd(src_md, w_md, dst_md);
  const dnnl::inner_product_backward_data::primitive_desc dpd(dd, rt.engine, fpd);
  impl_bwd_data_ = dpd.impl_info_str();
  // The forward's weights (same desc): converted once a step, in forward.
  bd_weights_ = Bridge(rt, weights_.mem(), dpd.weights_desc());
  bd_diff_src_ = Bridge(rt, diff_src, dpd.diff_src_desc());
  bwd_data_ = Step(dnnl::inner_product_backward_data(dpd), {{DNNL_ARG_DIFF_DST, diff_dst_},
                                                            {DNNL_ARG_WEIGHTS, bd_weights_.mem()},
                                                            {DNNL_ARG_DIFF_SRC, bd_diff_src_.mem()}});
}

void Linear::implementations(const std::string& name, Implementations& out) const {
  out.emplace_back(name + ".forward", impl_fwd_);
  out.emplace_back(name + ".backward_weights", impl_bwd_weights_);
  if (bwd_data_) out.emplace_back(name + ".backward_data", impl_bwd_data_);
}

void Linear::forward(const Runtime& rt) const {
  src_.to_inner(rt);
  weights_.to_inner(rt);  // the parameters change every step
  fwd_.run(rt);
}

void Linear::backward_weights(const Runtime& rt) const {
  bw_src_.to_inner(rt);
  bwd_weights_.run(rt);
  bw_diff_weights_.to_user(rt);
}

void Linear::backward_data(const Runtime& rt) const {
  if (!bwd_data_) return;
  bd_weights_.to_inner(rt);
  bwd_data_.run(rt);
  bd_diff_src_.to_user(rt);
}

}  // namespace ddp::nn
