// Counter-based randomness: every random stream is a pure function of
// (seed, purpose, counters), so a run can be resumed anywhere and ranks
// agree without sharing state.
#pragma once
#include <cstdint>

namespace ddp {

// SplitMix64: a fast, well-mixed 64-bit generator (Steele, Lea, Flood 2014).
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits (exactly representable as float).
  float uniform_float() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, bound), bound > 0 (Lemire's multiply-shift, bias < 2^-32 for our sizes).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }
};

inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  SplitMix64 g(a ^ (b * 0xD1342543DE82EF95ull + 0x632BE59BD9B4E019ull));
  return g.next();
}

}  // namespace ddp
