// PowerSGD (dist/powersgd.h): how it lays out the model, and across 2 real
// Gloo processes (the rule and kernels: dist_low_rank_test.cpp): gradients of
// rank <= R come back as the plain average, the results of PyTorch 1.13's
// powerSGD_hook (tests/fixtures/powersgd_pytorch.json, made by
// tests/fixtures/make_powersgd_fixture.py), error feedback (the update
// applied plus the new residual is the gradient plus the old residual), the
// plain steps before start_step, and the bytes the communicator is handed.
//
// The ranks are forked from the test process (each joins a Gloo job in a
// private rendezvous directory, writes its result to a file and _exits).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/rng.h"
#include "dist/counting_communicator.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "dist/powersgd.h"
#include "dist_test_util.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

using test_util::uniform;

// The model's gradient buffer as the trainer lays it out (train/step.h):
// conv1, conv2, fc1, fc2 (weight [out x rest], then bias), then the stop flag.
constexpr size_t kParams = 421642;
const std::vector<size_t> kSegments = {0, 320, 18816, 420352, kParams};
const std::vector<MatrixView> kMatrices = {{0, 32, 9},          {288, 32, 1},     {320, 64, 288},
                                           {18752, 64, 1},      {18816, 128, 3136}, {420224, 128, 1},
                                           {420352, 10, 128},   {421632, 10, 1}};

// Forks `world` ranks of a Gloo job; each runs body(rank, comm) and its
// result comes back, [rank] (empty if a rank failed or 60 s passed).
std::vector<std::vector<float>> run_ranks(int world, const std::function<std::vector<float>(int, Communicator&)>& body) {
  static int job = 0;
  const std::string prefix = "psgd-" + std::to_string(::getpid()) + "-" + std::to_string(job++);
  return dist_test::run_forked_ranks(world, [&](int r, const std::string& dir) {
    GlooOptions o;
    o.rank = r;
    o.size = world;
    o.rendezvous_dir = dir;
    o.prefix = prefix;
    o.timeout = std::chrono::milliseconds(30000);
    auto comm = make_gloo_communicator(o);
    std::vector<float> out = body(r, *comm);
    comm->barrier();
    return out;
  });
}

// One step as the trainer makes it: the stop flag, then the layers last-first.
void step(GradSync& sync) {
  sync.ready(kParams, 1);
  for (size_t k = kSegments.size() - 1; k-- > 0;) sync.ready(kSegments[k], kSegments[k + 1] - kSegments[k]);
  sync.finish();
}

PowerSgdOptions model_options(int64_t start_step, int rank = 2) {
  PowerSgdOptions o;
  o.matrix_approximation_rank = rank;
  o.start_step = start_step;
  o.seed = 7;
  o.matrices = kMatrices;
  return o;
}

// Rank `r`'s gradient in `step`: every weight matrix M_r = A_r B^T with A_r
// [rows x k] its own and B [cols x k] shared, so that the sum over ranks
// has rank <= k (k = 2, 1, 0 in steps 0, 1, 2: 0 is a zero matrix);
// biases and the stop flag arbitrary.
std::vector<float> low_rank_gradient(int r, int step) {
  std::vector<float> g(kParams + 1, 0.0f);
  const size_t k = static_cast<size_t>(2 - step);
  for (const MatrixView& m : kMatrices) {
    for (size_t i = 0; i < m.rows * m.cols; ++i) g[m.offset + i] = 0.01f * uniform(100 * r + step, m.offset + i);
    if (m.cols == 1) continue;
    for (size_t i = 0; i < m.rows; ++i)
      for (size_t j = 0; j < m.cols; ++j) {
        float v = 0;
        for (size_t t = 0; t < k; ++t)
          v += uniform(1000 * r + 10 * step + t, m.offset + i) * uniform(77 + 10 * step + t, m.offset + j);
        g[m.offset + i * m.cols + j] = 0.01f * v;
      }
  }
  g[kParams] = static_cast<float>(r);
  return g;
}

}  // namespace

TEST(PowerSgd, LaysOutTheModelAsPyTorchWould) {
  std::vector<float> g(kParams + 1);
  PowerSgd psgd(g.data(), g.size(), bucket_layout(g.size(), 64 * 1024, kSegments), model_options(0));
  const auto& c = psgd.compressed();
  ASSERT_EQ(c.size(), 4u);  // the four weight matrices; no bias
  EXPECT_EQ(c[2].offset, 18816u);
  EXPECT_EQ(c[2].rows, 128u);
  EXPECT_EQ(c[2].cols, 3136u);
  EXPECT_EQ(c[2].rank, 2u);
  // P and Q: (32 + 9 + 64 + 288 + 128 + 3136 + 10 + 128) * 2; biases and the stop flag: 235.
  EXPECT_EQ(psgd.floats_per_step(), 3795u * 2 + 235);
  EXPECT_EQ(psgd.q_state().size(), (9u + 288 + 3136 + 128) * 2);
  EXPECT_FALSE(psgd.warm_started());
  // A matrix across two buckets (buckets without segments cut anywhere) is a bug.
  EXPECT_THROW(PowerSgd(g.data(), g.size(), bucket_layout(g.size(), 64 * 1024), model_options(0)), std::logic_error);
}

TEST(PowerSgd, WorldOfOneLeavesTheBufferAlone) {
  LocalCommunicator local;
  std::vector<float> g = low_rank_gradient(0, 0), before = g;
  GradSync sync(local, g.data(), g.size(), 64 * 1024, kSegments, Compression::powersgd, Overlap::thread,
                model_options(0));
  EXPECT_EQ(sync.powersgd(), nullptr);
  step(sync);
  EXPECT_EQ(g, before);
}

// Sum over ranks of rank <= 2 (then 1, then 0): PowerSGD at rank 2 loses
// nothing, and every rank ends each step with the same bits.
TEST(PowerSgd, GradientsOfRankAtMostRGiveThePlainAverage) {
  for (Overlap overlap : {Overlap::thread, Overlap::none}) {
    const int world = 2, steps = 3;
    const auto res = run_ranks(world, [&](int rank, Communicator& comm) {
      std::vector<float> g(kParams + 1), out;
      GradSync sync(comm, g.data(), g.size(), 64 * 1024, kSegments, Compression::powersgd, overlap, model_options(0));
      for (int s = 0; s < steps; ++s) {
        const auto grad = low_rank_gradient(rank, s);
        std::copy(grad.begin(), grad.end(), g.begin());  // in place: the GradSync holds g's buffer
        step(sync);
        out.insert(out.end(), g.begin(), g.end());
      }
      return out;
    });
    ASSERT_EQ(res.size(), 2u) << "a rank failed (see its message above)";
    ASSERT_EQ(std::memcmp(res[0].data(), res[1].data(), res[0].size() * sizeof(float)), 0) << "ranks differ";
    // Float rounding in the products (dot products of up to 3136 terms)
    // errs by ~1e-5 of the largest element; what it leaves in the residual
    // comes back in the next step: the tolerance is 1e-4 of the largest
    // average element of this step and the one before.
    std::vector<double> largest_before(kMatrices.size(), 0.0);
    for (int s = 0; s < steps; ++s) {
      const auto g0 = low_rank_gradient(0, s), g1 = low_rank_gradient(1, s);
      const float* got = res[0].data() + static_cast<size_t>(s) * (kParams + 1);
      for (size_t k = 0; k < kMatrices.size(); ++k) {
        const MatrixView& m = kMatrices[k];
        double largest = 0, worst = 0;
        for (size_t i = m.offset; i < m.offset + m.rows * m.cols; ++i) {
          const double want = 0.5 * (static_cast<double>(g0[i]) + g1[i]);
          largest = std::max(largest, std::fabs(want));
          worst = std::max(worst, std::fabs(0.5 * got[i] - want));
        }
        EXPECT_LE(worst, 1e-4 * std::max(largest, largest_before[k])) << "step " << s << ", matrix at " << m.offset;
        if (m.cols > 1 && s < 2) {
          EXPECT_GT(largest, 1e-3) << "a gradient that tests nothing";
        }
        largest_before[k] = largest;
      }
      EXPECT_EQ(got[kParams], 1.0f) << "the stop flag is summed exactly";
    }
  }
}

// The update applied (the buffer times 1 / world size) plus the new
// residual is this rank's gradient plus its old residual, element by
// element; general gradients, so the residuals are not zero.
TEST(PowerSgd, ErrorFeedbackKeepsWhatTheUpdateMissed) {
  const auto res = run_ranks(2, [](int rank, Communicator& comm) {
    std::vector<float> g(kParams + 1);
    GradSync sync(comm, g.data(), g.size(), 64 * 1024, kSegments, Compression::powersgd, Overlap::thread,
                  model_options(0));
    std::vector<float> out;  // per step: the worst mismatch, relative; the largest residual
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < kParams; ++i) g[i] = 0.01f * uniform(31 * rank + s, i);
      const auto e = sync.powersgd()->residuals();
      std::vector<double> want(kParams);
      for (size_t i = 0; i < kParams; ++i) want[i] = static_cast<double>(g[i]) + e[i];
      step(sync);
      double worst = 0, largest = 0;
      for (size_t i = 0; i < kParams; ++i) {
        const double applied = static_cast<double>(g[i]) * sync.average_scale();
        worst = std::max(worst, std::fabs(applied + e[i] - want[i]) / (std::fabs(want[i]) + std::fabs(applied) + 1e-30));
        largest = std::max(largest, std::fabs(static_cast<double>(e[i])));
      }
      out.push_back(static_cast<float>(worst));
      out.push_back(static_cast<float>(largest));
    }
    return out;
  });
  ASSERT_EQ(res.size(), 2u) << "a rank failed (see its message above)";
  for (int r = 0; r < 2; ++r)
    for (int s = 0; s < 3; ++s) {
      EXPECT_LE(res[r][2 * s], 2.4e-7) << "rank " << r << ", step " << s;  // float roundings only
      EXPECT_GT(res[r][2 * s + 1], 1e-3) << "rank " << r << ", step " << s << ": no residual at all?";
    }
}

// Before start_step the buckets are all-reduced as plain floats (the same
// bits as without compression); from it on, the communicator is handed
// PowerSGD's factors: at rank 2 over 50x fewer bytes, >= 10x asked.
TEST(PowerSgd, PlainUntilTheStartStepThenTenTimesFewerBytes) {
  const auto res = run_ranks(2, [](int rank, Communicator& gloo) {
    CountingCommunicator comm(gloo);
    std::vector<float> g(kParams + 1), plain(kParams + 1);
    GradSync sync(comm, g.data(), g.size(), 64 * 1024, kSegments, Compression::powersgd, Overlap::thread,
                  model_options(2));
    GradSync reference(comm, plain.data(), plain.size(), 64 * 1024, kSegments);
    std::vector<float> out;  // per step: bytes; whether the buffer equals the plain all-reduce's bits
    for (int s = 0; s < 4; ++s) {
      for (size_t i = 0; i < kParams; ++i) g[i] = plain[i] = uniform(17 * rank + s, i);
      const uint64_t before = comm.allreduce_bytes();
      step(sync);
      out.push_back(static_cast<float>(comm.allreduce_bytes() - before));
      step(reference);
      out.push_back(std::memcmp(g.data(), plain.data(), g.size() * sizeof(float)) == 0 ? 1.f : 0.f);
    }
    out.push_back(static_cast<float>(sync.powersgd()->floats_per_step() * sizeof(float)));
    return out;
  });
  ASSERT_EQ(res.size(), 2u) << "a rank failed (see its message above)";
  const std::vector<float>& r = res[0];
  const double fp32 = (kParams + 1) * sizeof(float);
  EXPECT_EQ(r[0], fp32);
  EXPECT_EQ(r[2], fp32);
  EXPECT_EQ(r[1], 1.f) << "step 0 is a plain all-reduce";
  EXPECT_EQ(r[3], 1.f) << "step 1 is a plain all-reduce";
  EXPECT_EQ(r[5], 0.f) << "step 2 is compressed";
  EXPECT_EQ(r[4], r[8]) << "bytes counted at the communicator = PowerSgd::floats_per_step";
  EXPECT_EQ(r[6], r[4]);
  EXPECT_GE(fp32 / r[4], 10.0);
  RecordProperty("fp32_bytes_per_step", std::to_string(fp32));
  RecordProperty("powersgd_bytes_per_step", std::to_string(r[4]));
  std::printf("[ bytes    ] per step: fp32 %.0f, PowerSGD rank 2 %.0f (%.1fx fewer)\n", fp32, r[4], fp32 / r[4]);
}

// PyTorch 1.13's powerSGD_hook on 2 Gloo processes (the fixture): from the
// state its first compressed step left (Q, each rank's residuals), two more
// steps give the same averages and residuals, and at rank 2 the same Q.
// At rank 3 PyTorch orthogonalises by QR, whose column signs may differ
// from Gram-Schmidt's; P Q^T, and so the averages, do not see them.
TEST(PowerSgd, MatchesPyTorchsPowerSgdHook) {
  std::ifstream f(std::string(DDP_SOURCE_DIR) + "/tests/fixtures/powersgd_pytorch.json");
  ASSERT_TRUE(f) << "tests/fixtures/powersgd_pytorch.json is missing";
  const nlohmann::json fixture = nlohmann::json::parse(f);
  ASSERT_EQ(fixture.at("world_size"), 2);
  for (const auto& c : fixture.at("cases")) {
    const int rank_r = c.at("matrix_approximation_rank");
    SCOPED_TRACE("rank " + std::to_string(rank_r));
    PowerSgdOptions o;
    o.matrix_approximation_rank = rank_r;
    o.start_step = 0;
    for (const auto& t : c.at("tensors")) o.matrices.push_back({t.at("offset"), t.at("rows"), t.at("cols")});
    BucketBounds buckets;
    for (const auto& b : c.at("buckets")) buckets.emplace_back(b.at(0), b.at(1));
    const size_t count = buckets.front().second;
    const auto res = run_ranks(2, [&](int rank, Communicator& comm) {
      std::vector<float> g(count), out;
      PowerSgd psgd(g.data(), count, buckets, o);
      const auto q0 = c.at("after_first_step").at("q").get<std::vector<float>>();
      const auto e0 = c.at("after_first_step").at("residual").at(rank).get<std::vector<float>>();
      if (q0.size() != psgd.q_state().size() || e0.size() != count) return out;  // the layouts disagree
      for (const auto& m : psgd.compressed())  // PyTorch's Q [cols x rank] -> ours, Q^T
        for (size_t j = 0; j < m.cols; ++j)
          for (size_t k = 0; k < m.rank; ++k) psgd.q_state()[m.q_at + k * m.cols + j] = q0[m.q_at + j * m.rank + k];
      std::copy(e0.begin(), e0.end(), psgd.residuals().begin());
      psgd.set_warm_started(true);
      for (const auto& st : c.at("steps")) {
        const auto grad = st.at("grad").at(rank).get<std::vector<float>>();
        if (grad.size() != count) return std::vector<float>{};
        std::copy(grad.begin(), grad.end(), g.begin());  // in place: PowerSgd holds g's buffer
        for (size_t b = 0; b < buckets.size(); ++b) psgd.reduce_bucket(b, comm);
        for (float x : g) out.push_back(x * 0.5f);
        out.insert(out.end(), psgd.residuals().begin(), psgd.residuals().end());
        for (const auto& m : psgd.compressed())  // as PyTorch keeps it: [cols x rank], divided by the world size
          for (size_t j = 0; j < m.cols; ++j)
            for (size_t k = 0; k < m.rank; ++k) out.push_back(psgd.q_state()[m.q_at + k * m.cols + j] * 0.5f);
      }
      return out;
    });
    ASSERT_EQ(res.size(), 2u) << "a rank failed (see its message above)";
    const size_t nq = c.at("after_first_step").at("q").size();
    ASSERT_EQ(res[0].size(), 2 * (2 * count + nq)) << "the fixture's layout is not PowerSgd's";
    // Tolerance: float rounding in products of ~100 terms, relative to the largest value compared.
    auto expect_close = [](const float* got, const std::vector<float>& want, const std::string& what) {
      double largest = 0, worst = 0;
      for (float w : want) largest = std::max(largest, std::fabs(static_cast<double>(w)));
      for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
      EXPECT_LE(worst, 2e-5 * largest) << what << ": worst difference " << worst << " of " << largest;
    };
    for (size_t s = 0; s < c.at("steps").size(); ++s) {
      const auto& st = c.at("steps").at(s);
      for (int r = 0; r < 2; ++r) {
        const float* got = res[r].data() + s * (2 * count + nq);
        const std::string at = "step " + std::to_string(s + 2) + ", rank " + std::to_string(r);
        expect_close(got, st.at("average").get<std::vector<float>>(), at + ", average");
        expect_close(got + count, st.at("residual").at(r).get<std::vector<float>>(), at + ", residual");
        if (rank_r <= 2) expect_close(got + 2 * count, st.at("q").get<std::vector<float>>(), at + ", Q");
      }
    }
  }
}
