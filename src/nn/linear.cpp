#include "nn/linear.h"

namespace ddp::nn {

namespace {

// A 2-D [n, c*h*w] view of a 4-D memory in NCHW (nn.Flatten's order).
memory flat_view(const memory& nchw, const Runtime& rt) {
  const memory::dims d = nchw.get_desc().dims();
  return memory(memory::desc({d[0], d[1] * d[2] * d[3]}, nchw.get_desc().data_type(), tag::nc), rt.engine,
                nchw.get_data_handle());
}

}  // namespace

Linear::Linear(const Runtime& rt, const memory& src, const memory& diff_src, int out, ParamView weight,
               ParamView bias, bool fuse_relu, dt type) {
  const memory::dims in = src.get_desc().dims();
  const memory::dim n = in[0];
  const bool four_d = in.size() == 4;
  // In bf16 a 4-D source is reordered into NCHW and the inner product sees
  // it as 2-D [n, c*h*w], with 2-D [out, c*h*w] weights: the same bytes,
  // but oneDNN's bf16 GEMM runs 1.3-2x faster on the 2-D problem
  // (measured, fc1 at batch 64). f32 keeps the 4-D problem.
  const bool flat = four_d && type != dt::f32;
  const memory::dim features = static_cast<memory::dim>(src.get_desc().get_size() /
                                                        memory::data_type_size(src.get_desc().data_type()) /
                                                        static_cast<size_t>(n));
  const memory::dims src_dims = flat ? memory::dims{n, features} : in;
  memory::dims wdims = src_dims;
  wdims[0] = out;
  const tag wtag = wdims.size() == 4 ? tag::oihw : tag::oi;
  const memory::dims odims = {n, out};
  const auto bias_md = plain_desc({out}, tag::x);
  const memory::desc dst_md(odims, type, tag::nc);
  flops_ = 2.0 * static_cast<double>(out) * static_cast<double>(n * features);

  dnnl::primitive_attr attr;
  if (fuse_relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  // Weights in the plain layout of the parameter buffer: in f32 they are
  // used where they are, with no per-step reorder of the 1.6 MB fc1 matrix
  // (a blocked layout's faster forward does not pay for its reorder:
  // docs/performance.md); in bf16 the one conversion a call is a plain copy that rounds
  // (a reorder into a blocked layout transposes and took 10-70x longer).
  // In bf16 the source is plain too: oneDNN's GEMM kernels take plain
  // weights only with a plain source (otherwise: reference kernels).
  const memory::desc w_md(wdims, type, wtag);
  const memory::desc src_md =
      type == dt::f32 ? any_desc(in) : memory::desc(src_dims, type, src_dims.size() == 4 ? tag::nchw : tag::nc);
  const dnnl::inner_product_forward::desc fd(dnnl::prop_kind::forward_training, src_md, w_md, bias_md, dst_md);
  const dnnl::inner_product_forward::primitive_desc fpd(fd, attr, rt.engine);
  impl_fwd_ = fpd.impl_info_str();
  const memory user_w(plain_desc(wdims, wtag), rt.engine, weight.value);
  const memory user_b(bias_md, rt.engine, bias.value);
  src_ = Bridge(rt, src, flat ? memory::desc(in, type, tag::nchw) : fpd.src_desc());
  const memory fwd_src = flat ? flat_view(src_.mem(), rt) : src_.mem();
  weights_ = Bridge(rt, user_w, fpd.weights_desc());
  dst_ = memory(dst_md, rt.engine);
  diff_dst_ = memory(dst_md, rt.engine);
  fwd_ = Step(dnnl::inner_product_forward(fpd), {{DNNL_ARG_SRC, fwd_src},
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
  bw_src_ = Bridge(rt, fwd_src, wpd.src_desc());
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
  bd_diff_src_ = Bridge(rt, diff_src, flat ? memory::desc(in, type, tag::nchw) : dpd.diff_src_desc());
  const memory bwd_diff_src = flat ? flat_view(bd_diff_src_.mem(), rt) : bd_diff_src_.mem();
  bwd_data_ = Step(dnnl::inner_product_backward_data(dpd), {{DNNL_ARG_DIFF_DST, diff_dst_},
                                                            {DNNL_ARG_WEIGHTS, bd_weights_.mem()},
                                                            {DNNL_ARG_DIFF_SRC, bwd_diff_src}});
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
