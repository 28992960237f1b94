// bfloat16 gradient compression: the float -> bf16 rounding (ties to even,
// NaN, infinities, overflow, subnormals), the bulk kernels against the
// scalar definition, and the compressed all-reduce across 2 and 3 real Gloo
// processes: the float average within bf16's tolerance, and the same bits
// on every rank.
//
// The multi-process cases fork their ranks from the test process itself
// (each child joins a Gloo job in a private rendezvous directory, writes its
// result to a file and _exits), so they need no worker binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/rng.h"
#include "dist/bf16.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "dist_test_util.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

float from_bits(uint32_t u) { return std::bit_cast<float>(u); }
uint32_t to_bits(float f) { return std::bit_cast<uint32_t>(f); }

// An independent definition of round-to-nearest-even to bf16, in double:
// the two bf16 neighbours of a finite f and the distance to each.
uint16_t reference_bf16(float f) {
  const uint32_t u = to_bits(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);
  if (std::isinf(f)) return static_cast<uint16_t>(u >> 16);
  const uint32_t lo = u & 0xffff0000u;  // truncation: towards zero
  const uint32_t hi = lo + 0x10000u;    // next away from zero (may be infinity)
  const double dlo = std::fabs(static_cast<double>(f) - from_bits(lo));
  // The value that bf16's largest finite number would round up to is 2^128.
  const double vhi = (hi & 0x7fffffffu) == 0x7f800000u ? std::copysign(std::ldexp(1.0, 128), f)
                                                        : static_cast<double>(from_bits(hi));
  const double dhi = std::fabs(vhi - static_cast<double>(f));
  if (dlo < dhi) return static_cast<uint16_t>(lo >> 16);
  if (dhi < dlo) return static_cast<uint16_t>(hi >> 16);
  return static_cast<uint16_t>(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);  // tie: the even one
}

bool is_nan_bf16(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0; }

}  // namespace

TEST(Bf16, ExactValuesAndTiesToEven) {
  EXPECT_EQ(float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  // 1 + 2^-8 lies exactly between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81).
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  // Between 0x3f81 (odd) and 0x3f82 (even): the tie goes up.
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(float_to_bf16(from_bits(0xbf818000u)), 0xbf82);
  EXPECT_EQ(float_to_bf16(from_bits(0xbf808000u)), 0xbf80);
  // A tie that carries into the exponent: 0x3fff8000 -> 0x4000 (2.0).
  EXPECT_EQ(float_to_bf16(from_bits(0x3fff8000u)), 0x4000);
  EXPECT_EQ(bf16_to_float(0x4000), 2.0f);
  // Subnormals round the same way.
  EXPECT_EQ(float_to_bf16(from_bits(0x00008000u)), 0x0000);
  EXPECT_EQ(float_to_bf16(from_bits(0x00018000u)), 0x0002);
  EXPECT_EQ(float_to_bf16(from_bits(0x00008001u)), 0x0001);
  EXPECT_EQ(float_to_bf16(0.1f), 0x3dcd);  // 0x3dcccccd
}

TEST(Bf16, InfinityNanAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(float_to_bf16(inf), 0x7f80);
  EXPECT_EQ(float_to_bf16(-inf), 0xff80);
  EXPECT_TRUE(std::isinf(bf16_to_float(0x7f80)));
  // NaNs stay NaNs, quiet, with their sign, even when only low bits are set
  // (plain rounding would turn 0x7f800001 into infinity).
  EXPECT_EQ(float_to_bf16(from_bits(0x7fc00000u)), 0x7fc0);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f800001u)), 0x7fc0);
  EXPECT_EQ(float_to_bf16(from_bits(0x7fffffffu)), 0x7fff);
  EXPECT_EQ(float_to_bf16(from_bits(0xff800001u)), 0xffc0);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  // The largest finite float is past bf16's largest finite value + half an
  // ulp: it rounds to infinity; bf16's largest finite value is kept.
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7f0000u)), 0x7f7f);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7f8000u)), 0x7f80);  // tie, odd below: up, to infinity
}

TEST(Bf16, EveryBf16ValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t back = float_to_bf16(bf16_to_float(static_cast<uint16_t>(h)));
    if (is_nan_bf16(static_cast<uint16_t>(h)))
      EXPECT_EQ(back, h | 0x40) << std::hex << h;
    else
      ASSERT_EQ(back, h) << std::hex << h;
  }
}

// Every upper half, with the low halves that matter (ties, their
// neighbours, the ends) and random ones, against the reference; the bulk
// kernel (vectorised) against the scalar function on the same inputs.
TEST(Bf16, MatchesTheReferenceAndTheBulkKernelsMatchScalar) {
  std::vector<float> in;
  in.reserve(65536 * 14);
  SplitMix64 rng(7);
  for (uint32_t hi = 0; hi < 0x10000; ++hi) {
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7ffeu, 0x7fffu, 0x8000u, 0x8001u, 0xfffeu, 0xffffu})
      in.push_back(from_bits(hi << 16 | lo));
    for (int k = 0; k < 6; ++k) in.push_back(from_bits(hi << 16 | static_cast<uint32_t>(rng.next() & 0xffff)));
  }
  std::vector<uint16_t> want(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    want[i] = reference_bf16(in[i]);
    ASSERT_EQ(float_to_bf16(in[i]), want[i]) << std::hex << to_bits(in[i]);
  }
  for (const char* isa : {"avx512", "avx2", "scalar"}) {
    if (!use_bf16_kernels(isa)) continue;  // this CPU lacks it
    SCOPED_TRACE(isa);
    for (size_t n : {in.size(), size_t{13}}) {  // a tail shorter than a vector too
      std::vector<uint16_t> bulk(n + 1, 0xabcd);
      floats_to_bf16(in.data() + 1, bulk.data(), n - 1);  // misaligned
      EXPECT_EQ(bulk[n - 1], 0xabcd);                      // nothing written past the end
      for (size_t i = 0; i + 1 < n; ++i)
        ASSERT_EQ(bulk[i], want[i + 1]) << std::hex << to_bits(in[i + 1]) << " at " << std::dec << i;
    }
  }
  use_bf16_kernels("best");
}

class Bf16Kernels : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!use_bf16_kernels(GetParam())) GTEST_SKIP() << "this CPU has no " << GetParam();
  }
  void TearDown() override { use_bf16_kernels("best"); }
};
INSTANTIATE_TEST_SUITE_P(Isa, Bf16Kernels, ::testing::Values("avx512", "avx2", "scalar"));

TEST_P(Bf16Kernels, WideningScalesAndSumAddsInFloatWithAliasing) {
  const size_t n = 1003;  // not a multiple of any vector width
  std::vector<uint16_t> a(n), b(n);
  SplitMix64 rng(11);
  for (size_t i = 0; i < n; ++i) {
    a[i] = float_to_bf16((2.f * rng.uniform_float() - 1.f) * 8.f);
    b[i] = float_to_bf16((2.f * rng.uniform_float() - 1.f) * 0.01f);
  }
  a[5] = 0x7f80;  // inf + finite = inf
  a[6] = 0x7f80;
  b[6] = 0xff80;  // inf + -inf = NaN
  a[7] = 0x7fc0;  // NaN + finite = NaN
  a[n - 2] = 0x7f80;  // the same in the scalar tail
  b[n - 2] = 0xff80;
  a[n - 1] = 0xffc1;
  std::vector<float> wide(n);
  bf16_to_floats(a.data(), wide.data(), n, 0.5f);
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(wide[i])) continue;
    ASSERT_EQ(wide[i], bf16_to_float(a[i]) * 0.5f) << i;
  }

  std::vector<uint16_t> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
  EXPECT_EQ(want[5], 0x7f80);
  EXPECT_TRUE(is_nan_bf16(want[6]));
  EXPECT_TRUE(is_nan_bf16(want[7]));
  std::vector<uint16_t> c(n);
  bf16_sum(c.data(), a.data(), b.data(), n);
  EXPECT_EQ(c, want);
  std::vector<uint16_t> a2 = a, b2 = b;
  bf16_sum(a2.data(), a2.data(), b.data(), n);  // c == a, as Gloo calls it
  EXPECT_EQ(a2, want);
  bf16_sum(b2.data(), a.data(), b2.data(), n);  // c == b
  EXPECT_EQ(b2, want);
}

// A communicator with no bf16 reduction of its own: exercises the default
// Communicator::allreduce_sum_bf16 (widen, float all-reduce, round back).
namespace {
class Widening final : public Communicator {
 public:
  explicit Widening(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return "widening"; }
  void allreduce_sum(float* d, size_t n) override { inner_.allreduce_sum(d, n); }
  void allreduce_sum(double* d, size_t n) override { inner_.allreduce_sum(d, n); }
  void broadcast(float* d, size_t n, int root) override { inner_.broadcast(d, n, root); }
  void barrier() override { inner_.barrier(); }

 private:
  Communicator& inner_;
};

// Rank r's gradient element i: mixed signs and magnitudes from 1e-4 to 10,
// a few exact zeros; not representable in bf16.
float grad_value(int r, size_t i) {
  SplitMix64 g(mix_seed(static_cast<uint64_t>(r) * 1000003u + 17, i));
  const float mag = std::pow(10.f, -4.f + 5.f * g.uniform_float());
  const float sign = g.next() & 1 ? 1.f : -1.f;
  return (g.next() % 97 == 0) ? 0.f : sign * mag * (1.f + g.uniform_float() / 3.f);
}

enum class Path { gradsync, direct, fallback };

// One rank of a Gloo job, in a forked child: fills its gradients, averages
// them with the compressed all-reduce, and returns the result.
std::vector<float> run_rank(int rank, int world, const std::string& rdv, const std::string& job,
                            const std::string& algorithm, size_t count, Path path) {
  GlooOptions o;
  o.rank = rank;
  o.size = world;
  o.rendezvous_dir = rdv;
  o.prefix = job;
  o.timeout = std::chrono::milliseconds(30000);
  o.algorithm = algorithm;
  auto comm = make_gloo_communicator(o);
  std::vector<float> g(count);
  for (int step = 0; step < 2; ++step) {  // twice: the second step reuses everything
    for (size_t i = 0; i < count; ++i) g[i] = grad_value(rank, i);
    if (path == Path::gradsync) {
      // Buckets of 64 KiB, ready in uneven pieces, as backward reports them.
      GradSync sync(*comm, g.data(), count, 64 * 1024, {}, Compression::bf16);
      size_t hi = count, k = static_cast<size_t>(rank);
      const size_t pieces[] = {1, 1000, 33, 50000, 7};
      while (hi > 0) {
        const size_t n = std::min(hi, pieces[k++ % 5]);
        sync.ready(hi - n, n);
        hi -= n;
      }
      sync.finish();
      for (float& x : g) x *= sync.average_scale();
    } else {
      std::vector<uint16_t> h(count);
      floats_to_bf16(g.data(), h.data(), count);
      if (path == Path::direct) {
        comm->allreduce_sum_bf16(h.data(), count);
      } else {
        Widening w(*comm);
        w.allreduce_sum_bf16(h.data(), count);
      }
      bf16_to_floats(h.data(), g.data(), count, 1.0f / static_cast<float>(world));
    }
  }
  comm->barrier();
  return g;
}

// Forks `world` ranks, waits for them (killing all after 60 s), and returns
// every rank's result (empty on failure).
std::vector<std::vector<float>> run_job(int world, const std::string& algorithm, size_t count, Path path) {
  const std::string job = "bf16-" + std::to_string(::getpid()) + "-" + std::to_string(world) + algorithm +
                          std::to_string(count) + "-" + std::to_string(static_cast<int>(path));
  return dist_test::run_forked_ranks(world, [&](int r, const std::string& dir) {
    return run_rank(r, world, dir, job, algorithm, count, path);
  });
}

}  // namespace

TEST(Bf16Allreduce, AverageWithinBf16ToleranceAndSameBitsOnEveryRank) {
  // bf16 keeps 8 significant bits: each rounding errs by at most u = 2^-8
  // of its value. The inputs are rounded once each and every partial sum
  // once (at most world-1 times).
  const double u = std::ldexp(1.0, -8);
  for (const char* algorithm : {"bcube", "ring"}) {
    for (int world : {2, 3}) {
      for (size_t count : {size_t{1}, size_t{7}, size_t{1000}, size_t{65537}, size_t{421643}}) {
        for (Path path : {Path::gradsync, Path::direct, Path::fallback}) {
          if (path == Path::fallback && count != 65537) continue;  // the fallback once per world is enough
          SCOPED_TRACE(std::string(algorithm) + " world " + std::to_string(world) + " count " +
                       std::to_string(count) + " path " + std::to_string(static_cast<int>(path)));
          const auto res = run_job(world, algorithm, count, path);
          ASSERT_EQ(res.size(), static_cast<size_t>(world)) << "a rank failed (see its message above)";
          for (int r = 1; r < world; ++r)
            ASSERT_EQ(std::memcmp(res[r].data(), res[0].data(), count * sizeof(float)), 0)
                << "rank " << r << " has other bits than rank 0";
          double worst = 0;
          for (size_t i = 0; i < count; ++i) {
            double sum = 0, abs_sum = 0;
            for (int r = 0; r < world; ++r) {
              sum += grad_value(r, i);
              abs_sum += std::fabs(grad_value(r, i));
            }
            const double avg = sum / world, got = res[0][i];
            const double tol = (2 * world - 1) * u * abs_sum / world * 1.0001;
            ASSERT_LE(std::fabs(got - avg), tol) << "element " << i << ": " << got << " vs " << avg;
            worst = std::max(worst, std::fabs(got - avg) / (abs_sum / world));
            if (world == 2 && path != Path::fallback) {
              // Two ranks: one addition, the same whichever rank does it.
              const float want =
                  bf16_to_float(float_to_bf16(bf16_to_float(float_to_bf16(grad_value(0, i))) +
                                              bf16_to_float(float_to_bf16(grad_value(1, i))))) *
                  0.5f;
              ASSERT_EQ(std::bit_cast<uint32_t>(res[0][i]), std::bit_cast<uint32_t>(want)) << i;
            }
          }
          RecordProperty("worst_relative_error", std::to_string(worst));
        }
      }
    }
  }
}

TEST(Bf16Allreduce, CompressionNames) {
  EXPECT_EQ(parse_compression("none"), Compression::none);
  EXPECT_EQ(parse_compression("bf16"), Compression::bf16);
  EXPECT_STREQ(compression_name(Compression::bf16), "bf16");
  EXPECT_THROW(parse_compression("fp8"), UserError);
}
