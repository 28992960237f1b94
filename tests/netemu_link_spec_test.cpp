// RATE[,DELAY] as the user writes it (no privileges needed).
#include <gtest/gtest.h>

#include "common/error.h"
#include "netemu/link_spec.h"

using namespace ddp;
using namespace ddp::netemu;

TEST(NetemuLinkSpec, RatesAndDelaysWithUnits) {
  EXPECT_DOUBLE_EQ(parse_link_spec("1gbit").rate_bit_per_s, 1e9);
  EXPECT_DOUBLE_EQ(parse_link_spec("10gbit").rate_bit_per_s, 1e10);
  EXPECT_DOUBLE_EQ(parse_link_spec("500mbit").rate_bit_per_s, 5e8);
  EXPECT_DOUBLE_EQ(parse_link_spec("2.5Gbit").rate_bit_per_s, 2.5e9);
  EXPECT_DOUBLE_EQ(parse_link_spec("1500kbit").rate_bit_per_s, 1.5e6);
  EXPECT_DOUBLE_EQ(parse_link_spec("1mbit").rate_bit_per_s, kMinRateBitPerS);   // the bounds themselves
  EXPECT_DOUBLE_EQ(parse_link_spec("100gbit").rate_bit_per_s, kMaxRateBitPerS);
  EXPECT_DOUBLE_EQ(parse_link_spec("1gbit").delay_s, 0);
  const LinkSpec s = parse_link_spec("1gbit,100us");
  EXPECT_DOUBLE_EQ(s.rate_bit_per_s, 1e9);
  EXPECT_DOUBLE_EQ(s.delay_s, 100e-6);
  EXPECT_EQ(s.text, "1gbit,100us");
  EXPECT_DOUBLE_EQ(parse_link_spec("10gbit,1.5ms").delay_s, 1.5e-3);
  EXPECT_DOUBLE_EQ(parse_link_spec("1gbit,1s").delay_s, 1);
}

TEST(NetemuLinkSpec, BadFormsNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no link rate"},
      {"fast", "is not a rate"},
      {"1gbps", "bytes per second"},
      {"1g", "not a rate in bit/s"},
      {"0gbit", "must be positive"},
      {"-1gbit", "is not a rate"},
      {"1gbit,", "is not a delay"},
      {"1gbit,100", "is not a delay"},
      {"1gbit,1ms,2", "more than two parts"},
      {",1ms", "no link rate"},
      {"0.5kbit", "outside what an emulated link can be"},
      {"999kbit", "outside what an emulated link can be"},
      {"1e3gbit", "outside what an emulated link can be"},
      {"1tbit", "outside what an emulated link can be"}};
  for (const auto& [text, phrase] : cases) {
    try {
      parse_link_spec(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << text << ": " << e.what();
      EXPECT_FALSE(e.hint().empty()) << text;
    }
  }
}

TEST(NetemuLinkSpec, TextForPeople) {
  EXPECT_EQ(rate_text(1e9), "1 Gbit/s");
  EXPECT_EQ(rate_text(9.36e9), "9.36 Gbit/s");
  EXPECT_EQ(rate_text(5e8), "500 Mbit/s");
  EXPECT_EQ(delay_text(100e-6), "100 us");
  EXPECT_EQ(delay_text(1.5e-3), "1.5 ms");
}
