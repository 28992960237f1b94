// The scaling model against cases computed by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "report/scaling_model.h"
#include "results_test_util.h"

using namespace ddp::report;
using nlohmann::json;

namespace {

// M = 1000 training samples, E = 100 test samples, B = 10; 1 ms per training
// sample (0.5 ms of it backward), 0.2 ms per test sample; two buckets: 4 MB
// final halfway through backward, then 2 MB final at its end.
ModelParams hand_model() {
  ModelParams m;
  m.train_samples = 1000;
  m.test_samples = 100;
  m.batch = 10;
  m.t_step = 1e-3;
  m.t_bwd = 0.5e-3;
  m.t_eval = 0.2e-3;
  m.buckets = {{4e6, 0.5}, {2e6, 1.0}};
  return m;
}

}  // namespace

TEST(ReportScalingModel, RingAllReduceIsTheAlphaBetaFormula) {
  // 2(p-1) alpha + 2(p-1)/p n/beta
  EXPECT_DOUBLE_EQ(ring_allreduce_s(4e6, 4, 1e-4, 1e9), 6 * 1e-4 + 1.5 * 4e-3);
  EXPECT_DOUBLE_EQ(ring_allreduce_s(1e6, 2, 5e-5, 1e9), 2 * 5e-5 + 1e-3);
  EXPECT_DOUBLE_EQ(ring_allreduce_s(1e6, 1, 5e-5, 1e9), 0);
}

TEST(ReportScalingModel, ExposedAllReduceFollowsTheBuckets) {
  const auto m = hand_model();
  // p = 4, a step of 10 samples: T_bwd = 5 ms. T_ring(4 MB) = 0.6 + 6 = 6.6 ms, T_ring(2 MB) = 0.6 + 3 = 3.6 ms.
  // f0 = 2.5 + 6.6 = 9.1 ms; f1 = max(9.1, 5) + 3.6 = 12.7 ms; exposed = 12.7 - 5 = 7.7 ms.
  EXPECT_NEAR(exposed_allreduce_s(m.buckets, 5e-3, 4, 1e-4, 1e9), 7.7e-3, 1e-12);
  // One bucket: exposed = max(0, T_ring - (1 - r) T_bwd).
  EXPECT_NEAR(exposed_allreduce_s({{1e6, 0.2}}, 10e-3, 2, 0, 1e9), 0.0, 1e-12);          // 1 ms hidden in 8 ms
  EXPECT_NEAR(exposed_allreduce_s({{1e7, 0.2}}, 10e-3, 2, 0, 1e9), 10e-3 - 8e-3, 1e-12);  // 10 ms, 8 hidden
  EXPECT_DOUBLE_EQ(exposed_allreduce_s(m.buckets, 5e-3, 1, 1e-4, 1e9), 0);
}

TEST(ReportScalingModel, PredictionMatchesAHandComputedCase) {
  const auto m = hand_model();
  const Prediction p = predict(m, 4, 1e-4, 1e9);
  // shard 250, S = 25 steps of 10 samples; compute 10 ms + exposed 7.7 ms per step;
  // eval ceil(100/4) = 25 test samples x 0.2 ms = 5 ms.
  EXPECT_DOUBLE_EQ(p.steps, 25);
  EXPECT_DOUBLE_EQ(p.samples_per_step, 10);
  EXPECT_NEAR(p.compute_step_s, 10e-3, 1e-15);
  EXPECT_NEAR(p.allreduce_step_s, 10.2e-3, 1e-12);
  EXPECT_NEAR(p.exposed_step_s, 7.7e-3, 1e-12);
  EXPECT_NEAR(p.train_epoch_s, 25 * 17.7e-3, 1e-12);
  EXPECT_NEAR(p.eval_epoch_s, 5e-3, 1e-12);
  EXPECT_NEAR(p.epoch_s, 0.4475, 1e-12);
  // T_epoch(1) = 1000 x 1 ms + 100 x 0.2 ms = 1.02 s.
  EXPECT_NEAR(p.speedup, 1.02 / 0.4475, 1e-9);
  EXPECT_NEAR(p.efficiency, 1.02 / 0.4475 / 4, 1e-9);

  const Prediction one = predict(m, 1, 1e-4, 1e9);
  EXPECT_DOUBLE_EQ(one.speedup, 1);
  EXPECT_DOUBLE_EQ(one.exposed_step_s, 0);
  EXPECT_NEAR(one.epoch_s, 1.02, 1e-12);
}

TEST(ReportScalingModel, UnevenShardsAndHugeWorlds) {
  const auto m = hand_model();
  const Prediction p3 = predict(m, 3, 0, 1e18);  // shard ceil(1000/3) = 334 -> 34 steps of 334/34 samples
  EXPECT_DOUBLE_EQ(p3.steps, 34);
  EXPECT_NEAR(p3.samples_per_step, 334.0 / 34, 1e-12);
  EXPECT_NEAR(p3.train_epoch_s, 334 * 1e-3, 1e-9);  // no communication cost: exactly the shard's compute
  // Beyond M / B = 100 ranks every rank takes one step per epoch; with no
  // communication cost the speedup still grows (smaller shards) ...
  const Prediction p1000 = predict(m, 1000, 0, 1e18);
  EXPECT_DOUBLE_EQ(p1000.steps, 1);
  EXPECT_DOUBLE_EQ(p1000.samples_per_step, 1);
  // ... but the latency of 2(p-1) messages per bucket makes large worlds slower than small ones.
  EXPECT_LT(predict(m, 1000, 30e-6, 1e9).speedup, predict(m, 100, 30e-6, 1e9).speedup);
}

TEST(ReportScalingModel, SharedCoresSlowComputeDown) {
  EXPECT_DOUBLE_EQ(shared_cores_slowdown(1, 1, 2), 1);
  EXPECT_DOUBLE_EQ(shared_cores_slowdown(2, 1, 2), 1);
  EXPECT_DOUBLE_EQ(shared_cores_slowdown(4, 1, 2), 2);
  EXPECT_DOUBLE_EQ(shared_cores_slowdown(2, 2, 2), 2);
  const auto m = hand_model();
  const Prediction p = predict(m, 4, 0, 1e18, 2);  // 4 ranks on 2 cores, free communication: speedup 2
  EXPECT_NEAR(p.speedup, 2, 1e-9);
}

TEST(ReportScalingModel, FitRecoversAlphaAndBeta) {
  for (int p : {2, 4}) {
    const double alpha = 40e-6, beta = 2.5e9;
    std::vector<std::pair<double, double>> s;
    for (double n : {4.0, 1024.0, 65536.0, 262144.0, 1048576.0, 1686568.0}) s.push_back({n, ring_allreduce_s(n, p, alpha, beta)});
    const auto [a, b] = fit_alpha_beta(s, p);
    EXPECT_NEAR(a, alpha, 1e-9 * alpha) << p;
    EXPECT_NEAR(b, beta, 1e-6 * beta) << p;
  }
  EXPECT_THROW(fit_alpha_beta({{4, 1e-4}}, 2), std::invalid_argument);
  EXPECT_THROW(fit_alpha_beta({{4, 2e-4}, {1e6, 1e-4}}, 2), std::invalid_argument);  // shrinking with size
}

TEST(ReportScalingModel, EffectiveBetaInvertsTheBusyTime) {
  const std::vector<Bucket> b = {{1048576, 0.2}, {637992, 1}};
  const double busy = ring_allreduce_s(1048576, 2, 50e-6, 3e8) + ring_allreduce_s(637992, 2, 50e-6, 3e8);
  EXPECT_NEAR(effective_beta(busy, b, 2, 50e-6), 3e8, 1e-3);
  EXPECT_TRUE(std::isnan(effective_beta(1e-4, b, 2, 50e-6)));  // latency alone is more than that
}

TEST(ReportScalingModel, CalibratesFromASerialResultsFile) {
  // Layers a, b, c (forward order); backward runs c (1 s), b (2 s), a (1 s).
  // Parameters: a [0, 100), c [100, 400) floats, and one extra element [400, 401)
  // outside every layer. Buckets: [200, 401) starts in c (final after 1/4 of
  // backward), [0, 200) starts in a (final at the end), [400, 401) alone would
  // be final at once.
  const auto serial = ddp::results::test::results_from(
      {{"samples_per_epoch", 1000},
       {"test_samples", 500},
       {"config", {{"batch_size", 10}}},
       {"epochs",
        {{{"train_time_s", 2.0}, {"eval_time_s", 0.5}, {"time_breakdown_s", {{"backward", 1.0}}}},
         {{"train_time_s", 2.0}, {"eval_time_s", 0.5}, {"time_breakdown_s", {{"backward", 1.0}}}}}},
       {"layer_times_s", {{"a", {{"backward_s", 1.0}}}, {"b", {{"backward_s", 2.0}}}, {"c", {{"backward_s", 1.0}}}}}});
  const ModelParams m = calibrate(serial, {"a", "b", "c"}, {{"a", 0, 100}, {"c", 100, 300}}, {{200, 400}, {0, 200}});
  EXPECT_DOUBLE_EQ(m.train_samples, 1000);
  EXPECT_DOUBLE_EQ(m.test_samples, 500);
  EXPECT_EQ(m.batch, 10);
  EXPECT_DOUBLE_EQ(m.t_step, 4.0 / 2000);
  EXPECT_DOUBLE_EQ(m.t_bwd, 2.0 / 2000);
  EXPECT_DOUBLE_EQ(m.t_eval, 1.0 / 1000);
  ASSERT_EQ(m.buckets.size(), 2u);
  EXPECT_DOUBLE_EQ(m.buckets[0].bytes, 800);
  EXPECT_DOUBLE_EQ(m.buckets[0].ready_fraction, 0.25);
  EXPECT_DOUBLE_EQ(m.buckets[1].bytes, 800);
  EXPECT_DOUBLE_EQ(m.buckets[1].ready_fraction, 1.0);
  EXPECT_DOUBLE_EQ(m.gradient_bytes(), 1600);

  const ModelParams back = model_params_from_json(to_json(m));
  EXPECT_DOUBLE_EQ(back.t_step, m.t_step);
  EXPECT_EQ(back.buckets.size(), 2u);
  EXPECT_DOUBLE_EQ(back.buckets[0].ready_fraction, 0.25);

  const ModelParams half = calibrate(serial, {"a", "b", "c"}, {{"a", 0, 100}, {"c", 100, 300}}, {{400, 401}, {0, 400}}, 2);
  EXPECT_DOUBLE_EQ(half.buckets[0].bytes, 2);
  EXPECT_DOUBLE_EQ(half.buckets[0].ready_fraction, 0);
  EXPECT_DOUBLE_EQ(half.buckets[1].bytes, 800);
  EXPECT_THROW(calibrate(ddp::results::RunResult{}, {"a"}, {{"a", 0, 1}}, {{0, 1}}), std::invalid_argument);
}

TEST(ReportScalingModel, ReportsNetworksAndThisMachine) {
  const auto m = hand_model();
  const auto nets = default_networks();
  ASSERT_EQ(nets.size(), 3u);
  EXPECT_NEAR(nets[0].beta_Bps, 0.9 * 10e9 / 8, 1);
  EXPECT_NEAR(nets[2].beta_Bps, 0.9 * 100e9 / 8, 1);
  MachineComm mc{50e-6, 5e8, 2, 1, 8};
  const json j = model_json(m, nets, &mc, {{2, 1.7}, {4, 1.5}});
  EXPECT_EQ(j["status"], "ok");
  ASSERT_EQ(j["networks"].size(), 3u);
  EXPECT_EQ(j["networks"][0]["predictions"].size(), 11u);  // p = 1, 2, 4, ..., 1024
  EXPECT_EQ(j["networks"][0]["predictions"][10]["p"], 1024);
  EXPECT_GE(j["networks"][2]["best"]["speedup"].get<double>(), j["networks"][0]["best"]["speedup"].get<double>());
  EXPECT_EQ(j["this_machine"]["predictions"].size(), 8u);
  EXPECT_EQ(j["this_machine"]["vs_measured"][1]["p"], 4);
  EXPECT_DOUBLE_EQ(j["this_machine"]["vs_measured"][1]["measured_speedup"].get<double>(), 1.5);
  EXPECT_TRUE(j["formula"].contains("ring_allreduce"));
}

// A measured link's costs: without them the CommCost prediction is the
// plain one; the tbf burst takes bytes off the first bucket only; CPU taken
// from compute lengthens the step by exactly that CPU when nothing is exposed.
TEST(ReportScalingModel, CommCostBurstAndSharedCpu) {
  const ModelParams m = hand_model();
  const double alpha = 10e-6, beta = 1e8;
  const Prediction plain = predict(m, 2, alpha, beta);
  CommCost c{alpha, beta};
  EXPECT_DOUBLE_EQ(predict(m, 2, c).epoch_s, plain.epoch_s);
  c.burst_bytes = 1000;
  const Prediction burst = predict(m, 2, c);
  EXPECT_NEAR(plain.allreduce_step_s - burst.allreduce_step_s, 1000 / beta, 1e-12);
  c.burst_bytes = 0;
  c.cpu_s = 1e-3;
  c.cpu_shared = true;
  const Prediction shared = predict(m, 2, c);
  EXPECT_NEAR(shared.compute_step_s - plain.compute_step_s, 1e-3 * m.buckets.size(), 1e-12);
  EXPECT_LT(shared.speedup, plain.speedup);
  c.cpu_shared = false;
  EXPECT_DOUBLE_EQ(predict(m, 2, c).compute_step_s, plain.compute_step_s);
}

// With a measured network's costs, this machine's curve is predict(m, p,
// cost(p)): the same model model_validation holds against the measurement.
TEST(ReportScalingModel, ThisMachineCurveUsesTheMeasuredNetworksCosts) {
  const ModelParams m = hand_model();
  MachineComm mc{10e-6, 1e8, 2, 1, 4};
  const json plain = model_json(m, {}, &mc, {{2, 1.5}});
  CommCost c{10e-6, 1e8};
  c.cpu_s = 2e-3;
  c.cpu_shared = true;
  mc.cost = [c](int) { return c; };
  const json costed = model_json(m, {}, &mc, {{2, 1.5}});
  const double with = costed["this_machine"]["predictions"][1]["speedup"].get<double>();
  EXPECT_DOUBLE_EQ(with, predict(m, 2, c).speedup);
  EXPECT_LT(with, plain["this_machine"]["predictions"][1]["speedup"].get<double>());
  EXPECT_DOUBLE_EQ(costed["this_machine"]["vs_measured"][0]["model_speedup"].get<double>(), with);
}
