// No heap allocation in the steady-state training step: after warm-up, a
// step of the Cnn and Sgd exactly as the trainer runs it (fill the batch,
// forward with dropout, backward reporting each layer's gradients through a
// grad_ready callback, the optimizer step) makes no allocation in our code,
// on 1 and on 2 compute threads, in fp32 and in bf16 (whose weight and
// input conversions run every step). (GradSync's part of the step is checked in
// tests/dist_alloc_test.cpp: test_nn does not link src/dist.)
//
// What oneDNN does inside primitive execution is its own business and is
// counted apart (alloc_counter.h attributes each allocation to the library
// that made it): oneDNN 2.6 builds a std::unordered_map of the arguments in
// every dnnl_primitive_execute (C++ allocations inside libdnnl), and takes
// its scratchpad from a cache it keeps (no malloc in steady state). The test
// prints those counts; it asserts only ours.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>

#include "alloc_counter.h"
#include "common/trace.h"
#include "nn/cnn.h"
#include "optim/sgd.h"

using ddp::nn::Cnn;

namespace {

struct Data {
  std::vector<float> images;
  std::vector<int32_t> labels;
};

Data synthetic(int samples) {
  Data d;
  std::mt19937 gen(5);
  std::normal_distribution<float> pix(0.f, 1.f);
  d.images.resize(static_cast<size_t>(samples) * 784);
  for (float& x : d.images) x = pix(gen);
  for (int i = 0; i < samples; ++i) d.labels.push_back(static_cast<int32_t>(gen() % 10));
  return d;
}

// (With a trace::Recorder armed, the same holds: recording writes into
// buffers allocated before the steps.)
//
// The training step of src/train/step.cpp, with the gradient all-reduce
// replaced by recording the reported ranges (as GradSync::ready does: into
// fixed storage).
struct Loop {
  Cnn net;
  ddp::optim::Sgd sgd{Cnn::num_params(), 0.9f};
  size_t ready_lo = 0;
  int ready_calls = 0, ready_errors = 0;
  double loss = 0;

  explicit Loop(ddp::nn::Precision precision) : net(0.5f, 0, precision) { net.init(1); }

  void step(const Data& d, int batch, int64_t s) {
    const int samples = static_cast<int>(d.labels.size());
    float* x = net.input(batch);
    int32_t* y = net.labels(batch);
    for (int j = 0; j < batch; ++j) {
      const int i = static_cast<int>((s * batch + j) % samples);
      std::memcpy(x + static_cast<size_t>(j) * 784, d.images.data() + static_cast<size_t>(i) * 784,
                  sizeof(float) * 784);
      y[j] = d.labels[i];
    }
    loss += net.forward(batch, true, 1000 + static_cast<uint64_t>(s)).loss;
    ready_lo = Cnn::num_params();
    net.backward([&](size_t offset, size_t count) {
      if (offset + count != ready_lo) ++ready_errors;
      ready_lo = offset;
      ++ready_calls;
    });
    sgd.step(net.params(), net.grads(), 0.01f);
  }
};

// traced: with a recorder armed over the counted steps.
void expect_no_allocation_of_ours(int threads, ddp::nn::Precision precision = ddp::nn::Precision::fp32,
                                  bool traced = false) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  if (precision == ddp::nn::Precision::bf16 && ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::unsupported)
    GTEST_SKIP() << "no bf16 kernels on this CPU";
  ddp::nn::set_compute_threads(threads);
  const Data d = synthetic(512);
  Loop loop(precision);
  const int batch = 64;
  for (int s = 0; s < 3; ++s) loop.step(d, batch, s);  // warm-up: primitives, scratchpads, OpenMP pool
  const int steps = 20;
  ddp::trace::Recorder recorder(3, 3 + steps);
  if (traced) loop.net.set_trace(&recorder);
  loop.ready_calls = 0;
  alloc_counter::start();
  for (int s = 3; s < 3 + steps; ++s) {
    recorder.begin_step(s);
    loop.step(d, batch, s);
  }
  const auto c = alloc_counter::stop();
  // Every layer's forward and backward, every step: 8 + 8.
  EXPECT_EQ(recorder.events(ddp::trace::Thread::compute).size(), traced ? 16u * steps : 0u);
  EXPECT_EQ(recorder.dropped(), 0u);
  EXPECT_EQ(loop.ready_calls, 4 * steps);  // one per layer with parameters
  EXPECT_EQ(loop.ready_lo, 0u);
  EXPECT_EQ(loop.ready_errors, 0);

  using namespace alloc_counter;
  std::printf("[ allocs   ] %s, %d thread(s), %d steps of batch %d: ours new %ld malloc %ld | oneDNN new %ld malloc %ld "
              "| OpenMP new %ld malloc %ld | other %ld  (per step: oneDNN %.1f)\n",
              ddp::nn::to_string(precision), threads, steps, batch, c.n[kNew][kOurs], c.n[kMalloc][kOurs], c.n[kNew][kOneDnn],
              c.n[kMalloc][kOneDnn], c.n[kNew][kOpenMp], c.n[kMalloc][kOpenMp], c.total(kOther),
              static_cast<double>(c.total(kOneDnn)) / steps);
  ::testing::Test::RecordProperty("onednn_allocations_per_step", std::to_string(c.total(kOneDnn) / steps));
  EXPECT_EQ(c.total(kOurs), 0) << "our code allocated in the steady-state step:\n" << our_stacks();
  EXPECT_EQ(c.total(kOther), 0) << "an unknown library allocated in the steady-state step";
}

}  // namespace

TEST(NoAllocation, SteadyStateTrainingStepOneThread) { expect_no_allocation_of_ours(1); }

TEST(NoAllocation, SteadyStateTrainingStepTwoThreads) { expect_no_allocation_of_ours(2); }

TEST(NoAllocation, SteadyStateBf16TrainingStepOneThread) { expect_no_allocation_of_ours(1, ddp::nn::Precision::bf16); }

TEST(NoAllocation, SteadyStateBf16TrainingStepTwoThreads) { expect_no_allocation_of_ours(2, ddp::nn::Precision::bf16); }

TEST(NoAllocation, SteadyStateTrainingStepWithTracing) {
  expect_no_allocation_of_ours(2, ddp::nn::Precision::fp32, true);
}

// The counter itself: it sees what our code allocates, and where.
TEST(NoAllocation, CounterSeesOurAllocations) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  alloc_counter::start();
  auto* v = new std::vector<int>(100);
  void* m = std::malloc(10);
  const auto c = alloc_counter::stop();
  std::free(m);
  delete v;
  EXPECT_EQ(c.n[alloc_counter::kNew][alloc_counter::kOurs], 2);  // the vector and its storage
  EXPECT_EQ(c.n[alloc_counter::kMalloc][alloc_counter::kOurs], 1);
  EXPECT_NE(alloc_counter::our_stacks().find("allocation 1"), std::string::npos);
}
