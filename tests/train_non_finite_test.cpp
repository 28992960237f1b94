// A step whose loss or summed gradient is NaN or infinite says so on every
// rank, also on a rank whose own loss was finite, and applies nothing
// (issue #20, fault 2: a diverging run went on and reported success).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "train/step.h"
#include "train_test_util.h"

using namespace ddp;
using train_test::synthetic;
using train_test::TempDir;

namespace {

// What one rank saw: the step's verdict, and whether its parameters changed.
struct Seen {
  bool non_finite = false, stop = false, params_changed = true;
  double loss = 0;
  std::string error;
};

// One step on `comm`; `poison` (if not 0) is written into fc2's first bias
// beforehand, which makes this rank's loss non-finite.
Seen one_step(dist::Communicator& comm, float poison) {
  const auto data = synthetic(64);
  const train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net(0.f, layout.count - layout.num_params);
  net.init(7);
  if (poison != 0) net.params()[layout.num_params - 10] = poison;
  const std::vector<float> before(net.params(), net.params() + layout.num_params);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::GradSync sync(comm, net.grads(), layout.count, 64 << 10, layout.segments);
  const train::StepModel model{net, sgd, sync};
  std::vector<int64_t> batch(8);
  for (size_t j = 0; j < batch.size(); ++j) batch[j] = static_cast<int64_t>(j) + 8 * comm.rank();
  const auto r = train::train_step(model, data, {batch, 1, 0.01, false});
  return {r.non_finite, r.stop, std::memcmp(before.data(), net.params(), before.size() * sizeof(float)) != 0, r.loss,
          ""};
}

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(NonFinite, SerialStepWithAFiniteLossIsNotFlagged) {
  dist::LocalCommunicator local;
  const Seen s = one_step(local, 0);
  EXPECT_FALSE(s.non_finite);
  EXPECT_TRUE(s.params_changed);
}

TEST(NonFinite, SerialStepWithANonFiniteLossIsFlaggedAndAppliesNothing) {
  for (float poison : {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf}) {
    dist::LocalCommunicator local;
    const Seen s = one_step(local, poison);
    EXPECT_FALSE(std::isfinite(s.loss)) << poison;
    EXPECT_TRUE(s.non_finite) << poison;
    EXPECT_FALSE(s.stop) << poison;
    EXPECT_FALSE(s.params_changed) << poison;
  }
}

// Two real ranks over Gloo; only rank 1's loss is non-finite: both stop, and
// neither applies the step (rank 0's parameters stay as they were).
TEST(NonFinite, ARankWithAFiniteLossStopsWithTheRankWhoseLossIsNot) {
  for (float poison : {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf}) {
    TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    std::vector<Seen> seen(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        try {
          dist::GlooOptions o;
          o.rank = r;
          o.size = 2;
          o.rendezvous_dir = dir.path;
          o.prefix = "non-finite";
          o.timeout = std::chrono::milliseconds(30000);
          auto comm = dist::make_gloo_communicator(o);
          seen[r] = one_step(*comm, r == 1 ? poison : 0.f);
        } catch (const std::exception& e) {
          seen[r].error = e.what();
        }
      });
    for (auto& t : ranks) t.join();
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(seen[r].error, "") << "rank " << r;
      EXPECT_TRUE(seen[r].non_finite) << "rank " << r << ", poison " << poison;
      EXPECT_FALSE(seen[r].params_changed) << "rank " << r << ", poison " << poison;
    }
    EXPECT_TRUE(std::isfinite(seen[0].loss));
    EXPECT_FALSE(std::isfinite(seen[1].loss));
  }
}

}  // namespace
