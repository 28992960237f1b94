#include "train/cli.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <csignal>

#include "common/error.h"
#include "sys/atomic_file.h"
#include "train/stop.h"
#include "train/trace_window.h"

namespace ddp::train {

std::vector<std::string> normalise_args(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-lr") a = "--learning-rate";
    else if (a.rfind("-lr=", 0) == 0) a = "--learning-rate=" + a.substr(4);
    args.push_back(a);
  }
  std::reverse(args.begin(), args.end());  // CLI11's parse(vector) takes them reversed
  return args;
}

CLI::Validator finite_in(double lo, double hi, bool lo_open) {
  std::ostringstream os;
  os << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  const std::string range = os.str();
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(s, &used);
          if (used != s.size()) return "'" + s + "' is not a number";
        } catch (...) {
          return "'" + s + "' is not a number";
        }
        if (!std::isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
          return s + " is out of range: must be a finite number in " + range;
        return std::string();
      },
      range);
}

void add_training_flags(CLI::App& app, TrainConfig& cfg, TrainingFlagSet which) {
  // In the order of train_serial's --help.
  if (which.run) {
    app.add_option("-e,--epochs", cfg.epochs, "Number of training epochs")
        ->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("-b,--batch-size", cfg.batch_size, "Batch size (per process)")
        ->check(CLI::Range(1, 65536))->capture_default_str();
    app.add_option("--learning-rate", cfg.learning_rate, "Learning rate (also -lr)")
        ->check(finite_in(0, 10, true))->capture_default_str();
  }
  if (which.save_results)
    app.add_option("--save-results", cfg.save_results, "Write the results as JSON to this path");
  if (which.data) {
    app.add_option("--dataset", cfg.dataset, "Dataset")
        ->check(CLI::IsMember({"mnist", "fashion-mnist"}))->capture_default_str();
    app.add_option("--data-dir", cfg.data_dir,
                   "Directory with the IDX files (default: data/mnist, or /usr/share/datasets/fashion-mnist)");
    app.add_option("--limit", cfg.limit, "Train on the first N samples only (0: all)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
    app.add_option("--test-limit", cfg.test_limit,
                   "Evaluate on the first N test samples only (0: all; quick runs, where evaluating the whole test "
                   "set each epoch costs more than training)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  }
  if (which.run) {
    app.add_option("--seed", cfg.seed, "Random seed (initialisation, shuffling, dropout)")->capture_default_str();
    app.add_option("--threads", cfg.threads, "Compute threads per process")
        ->check(CLI::Range(1, 256))->capture_default_str();
  }
  if (which.dropout)
    app.add_option("--dropout", cfg.dropout, "Dropout probability")->check(finite_in(0, 0.95))->capture_default_str();
  if (which.precision)
    add_enum_option(app, "--precision", cfg.precision,
                    "fp32, or bf16: mixed precision (bf16 convolutions and fc1, f32 master weights, gradients and "
                    "loss); needs AVX-512, fast with AVX512_BF16 or AMX");
  if (which.progress) app.add_flag("!--no-progress", cfg.progress, "No progress bar, only a line per epoch");
  if (which.checkpoints) {
    app.add_option("--checkpoint-dir", cfg.checkpoint_dir, "Write checkpoints (safetensors) into this directory");
    app.add_option("--checkpoint-every", cfg.checkpoint_every, "Epochs between checkpoints")
        ->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("--resume", cfg.resume, "Continue from a checkpoint file, or 'auto': the newest in --checkpoint-dir");
  }
  if (which.trace) {
    app.add_option("--trace", cfg.trace,
                   "Write a timeline of the traced steps of every rank and thread to this file (Chrome trace JSON: "
                   "open it in ui.perfetto.dev)")
        ->check([](const std::string& v) { return v.empty() ? std::string("give a file name, e.g. trace.json") : ""; });
    app.add_option("--trace-steps", cfg.trace_steps,
                   "The global steps --trace records, A:B (A inclusive, B exclusive; default: 10:14, or the last 4 "
                   "steps of a shorter run)")
        ->type_name("A:B")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
              try {
                parse_trace_steps(s);
              } catch (const UserError& e) {
                return e.what();
              }
              return std::string();
            },
            ""));
  }
}

namespace {

// The mitigations of communication cost (train/stepper.h) each replace how a
// step synchronises the ranks.
void validate_mitigations(const TrainConfig& cfg) {
  std::string on;
  const auto add = [&on](const std::string& flag) { on += (on.empty() ? "" : " and ") + flag; };
  if (cfg.accumulate > 1) add("--accumulate " + std::to_string(cfg.accumulate));
  if (cfg.sync_every > 1) add("--sync-every " + std::to_string(cfg.sync_every));
  if (cfg.stale_gradients > 0) add("--stale-gradients " + std::to_string(cfg.stale_gradients));
  if (on.find(" and ") != std::string::npos)
    throw UserError(on + " cannot be combined: each replaces how a step synchronises the ranks",
                    "choose one of them (docs/mitigations.md compares them)");
  if (cfg.local_sgd_warmup_steps > 0 && cfg.sync_every <= 1)
    throw UserError("--local-sgd-warmup-steps needs local SGD, --sync-every H with H > 1",
                    "add --sync-every H (e.g. --sync-every 8), or drop --local-sgd-warmup-steps");
  if (cfg.stale_gradients > 0 && cfg.overlap == dist::OverlapMode::none)
    throw UserError("--stale-gradients 1 runs each all-reduce on the communication thread behind the next step, "
                    "and --overlap none has no such thread",
                    "drop --overlap none (--overlap auto or thread)");
  // PowerSGD's error feedback and step count assume one all-reduce of the
  // step's own gradient per step; with a summed group or a gradient a step
  // late, that is not what it would compress (and it is untested there).
  if (cfg.grad_compression == dist::Compression::powersgd && (cfg.accumulate > 1 || cfg.stale_gradients > 0))
    throw UserError("--grad-compression powersgd cannot be combined with " +
                        std::string(cfg.accumulate > 1 ? "--accumulate" : "--stale-gradients") +
                        ": PowerSGD compresses each step's own gradient, all-reduced in that step",
                    "choose one of them (docs/mitigations.md compares them)");
  if (cfg.sync_every > 1 && cfg.local_sgd_warmup_steps == 0 && cfg.grad_compression != dist::Compression::none)
    throw UserError("--grad-compression " + std::string(to_string(cfg.grad_compression)) +
                        " compresses gradient all-reduces, and --sync-every without warm-up all-reduces no "
                        "gradient (it averages parameters, as float)",
                    "drop --grad-compression, or add --local-sgd-warmup-steps W (its DDP steps all-reduce "
                    "compressed gradients)");
}

}  // namespace

void validate(const TrainConfig& cfg) {
  validate_mitigations(cfg);
  if (!cfg.trace_steps.empty() && cfg.trace.empty())
    throw UserError("--trace-steps needs --trace", "name the trace file with --trace FILE");
  if (cfg.resume == "auto" && cfg.checkpoint_dir.empty())
    throw UserError("--resume auto needs --checkpoint-dir", "name the directory the checkpoints are in");
  if ((cfg.powersgd_rank || cfg.powersgd_start_step) && cfg.grad_compression != dist::Compression::powersgd)
    throw UserError(std::string(cfg.powersgd_rank ? "--powersgd-rank" : "--powersgd-start-step") +
                        " needs --grad-compression powersgd (it is " + to_string(cfg.grad_compression) + ")",
                    "add --grad-compression powersgd, or leave out the --powersgd-* flags");
  if (cfg.snapshot_every_s > 0 && cfg.max_restarts == 0 && cfg.checkpoint_dir.empty())
    throw UserError("--snapshot-every needs --max-restarts or --checkpoint-dir: the snapshots would go nowhere",
                    "add --max-restarts N (restart from them after a failure), or --checkpoint-dir DIR (keep them "
                    "there to resume from)");
  if (cfg.warmup_epochs > cfg.epochs)
    throw UserError("--warmup-epochs " + std::to_string(cfg.warmup_epochs) + " exceeds --epochs " +
                        std::to_string(cfg.epochs),
                    "use at most as many warm-up epochs as epochs");
  nn::check_precision_supported(cfg.precision);
}

void check_output_paths(const TrainConfig& cfg) {
  if (!cfg.save_results.empty()) sys::check_writable(cfg.save_results);
  if (!cfg.trace.empty()) sys::check_writable(cfg.trace, "trace.json");
  std::error_code ec;
  if (!cfg.save_results.empty() && !cfg.trace.empty() &&
      std::filesystem::weakly_canonical(cfg.save_results, ec) == std::filesystem::weakly_canonical(cfg.trace, ec))
    throw UserError("--trace and --save-results name the same file, " + cfg.trace + ": one would overwrite the other",
                    "give the trace another name, e.g. trace.json");
}

int run_main(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const CLI::ParseError& e) {
    throw;  // handled by the caller's CLI11_PARSE-like code
  } catch (const Stopped& s) {
    const char* name = s.signal == SIGTERM ? "SIGTERM" : s.signal == SIGINT ? "SIGINT" : "a signal";
    std::cerr << program << ": stopped by " << name;
    if (s.step == 0 && s.epoch > 1)  // train/trainer.cpp: a stop in an epoch's last step ends that epoch first
      std::cerr << " at the end of epoch " << s.epoch - 1 << "; ";
    else
      std::cerr << " in epoch " << s.epoch << " after step " << s.step << "; ";
    if (s.checkpoint_written)
      std::cerr << "checkpoint written. Resume with the same command plus --resume auto\n";
    else
      std::cerr << "no checkpoint written (run with --checkpoint-dir DIR to be able to resume)\n";
    return 128 + s.signal;
  } catch (const UserError& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "  fix: " << e.hint() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace ddp::train
