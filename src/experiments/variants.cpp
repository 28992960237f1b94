#include "experiments/variants.h"

#include <wordexp.h>

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "launch/cluster_flags.h"
#include "train/cli.h"
#include "train/parallel_flags.h"

namespace ddp::experiments {

namespace {

const char* const kVariantHint =
    "give each variant as --variant NAME=\"FLAGS\", e.g. --variant powersgd=\"--grad-compression powersgd\" "
    "--variant local8=\"--sync-every 8\" (NAME: letters, digits, '_' and '-'; each name once)";

std::string wordexp_problem(int rc) {
  switch (rc) {
    case WRDE_CMDSUB: return "command substitution ($(...) or `...`) is not run";
    case WRDE_BADCHAR: return "it holds an unquoted | & ; < > ( ) { } or newline";
    case WRDE_BADVAL: return "it names an undefined shell variable";
    case WRDE_SYNTAX: return "its quoting is unbalanced";
    case WRDE_NOSPACE: return "out of memory splitting it";
    default: return "wordexp failed (" + std::to_string(rc) + ")";
  }
}

// FLAGS split into words as the shell would, but with no command run.
std::vector<std::string> split_words(const std::string& name, const std::string& flags) {
  wordexp_t we{};
  const int rc = wordexp(flags.c_str(), &we, WRDE_NOCMD | WRDE_UNDEF);
  if (rc != 0) {
    if (rc == WRDE_NOSPACE) wordfree(&we);  // the only error that may leave words allocated
    throw UserError("--variant " + name + ": cannot split its flags \"" + flags + "\": " + wordexp_problem(rc),
                    "write the flags literally, quoted as in a shell, e.g. --variant " + name +
                        "=\"--accumulate 2\"");
  }
  std::vector<std::string> out(we.we_wordv, we.we_wordv + we.we_wordc);
  wordfree(&we);
  return out;
}

bool good_name(const std::string& n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '_' || ch == '-';
  });
}

// A flag of the variant that the suite gives every run itself (--epochs,
// -e, --batch-size=32, ...) is refused by name, before the parser's "At
// Most 1 required but received 2" could say it less clearly. argv ends with
// the variant's words (runner.cpp).
void refuse_suite_flags(const CLI::App& app, const std::vector<std::string>& argv, const Variant& variant) {
  const size_t own = std::min(variant.args.size(), argv.size());
  const auto flag_of = [](const std::string& w) { return w.substr(0, w.find('=')); };
  for (size_t i = argv.size() - own; i < argv.size(); ++i) {
    if (argv[i].size() < 2 || argv[i][0] != '-') continue;
    const std::string flag = flag_of(argv[i]);
    for (const CLI::Option* o : app.get_options()) {
      if (!o->check_name(flag)) continue;
      for (size_t j = 1; j < argv.size() - own; ++j)
        if (argv[j].size() > 1 && argv[j][0] == '-' && o->check_name(flag_of(argv[j])))
          throw UserError("--variant " + variant.name + " gives " + flag + ", which run_experiments gives every run "
                          "itself (" + argv[j] + ")",
                          "set it for the whole suite with run_experiments' own flag (run_experiments --help), "
                          "not in --variant");
    }
  }
}

}  // namespace

std::vector<Variant> parse_variants(const std::vector<std::string>& specs) {
  if (specs.empty()) return {Variant{}};
  std::vector<Variant> out;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos)
      throw UserError("--variant '" + spec + "' has no NAME=: a variant is a name and the flags it adds", kVariantHint);
    Variant v;
    v.name = spec.substr(0, eq);
    v.flags = spec.substr(eq + 1);
    if (!good_name(v.name))
      throw UserError("--variant name '" + v.name + "' is not made of letters, digits, '_' and '-' (it names files)",
                      kVariantHint);
    if (std::any_of(out.begin(), out.end(), [&](const Variant& x) { return x.name == v.name; }))
      throw UserError("--variant " + v.name + " is given twice", kVariantHint);
    v.args = split_words(v.name, v.flags);
    out.push_back(v);
  }
  return out;
}

void check_train_parallel_argv(const std::vector<std::string>& argv, const Variant& variant) {
  // The flags exactly as train_parallel registers them (apps/train_parallel.cpp).
  train::TrainConfig cfg;
  launch::ClusterFlags f;
  CLI::App app{"train_parallel", "train_parallel"};
  train::add_training_flags(app, cfg);
  train::add_parallel_flags(app, cfg);
  launch::add_cluster_flags(app, f);
  refuse_suite_flags(app, argv, variant);
  std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  std::reverse(args.begin(), args.end());  // CLI11's parse(vector) takes them reversed
  const std::string hint = "fix the flags of --variant " + variant.name +
                           " (train_parallel --help lists them; run_experiments gives every run --epochs, "
                           "--batch-size, --precision, --backend and the other suite flags itself)";
  try {
    app.parse(args);
    train::validate(cfg);
  } catch (const CLI::ParseError& e) {
    // --help and --version end train_parallel before it trains (exit 0).
    const std::string why = e.get_exit_code() == 0 ? "it asks for --help or --version, which train nothing" : e.what();
    throw UserError("--variant " + variant.name + "=\"" + variant.flags + "\": train_parallel refuses it: " + why, hint);
  } catch (const UserError& e) {
    throw UserError("--variant " + variant.name + "=\"" + variant.flags + "\": train_parallel refuses it: " + e.what(),
                    e.hint().empty() ? hint : e.hint());
  }
}

}  // namespace ddp::experiments
