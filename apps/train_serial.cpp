// train_serial: trains the CNN in one process (a world of one).
#include <iostream>

#include "dist/communicator.h"
#include "sys/atomic_file.h"
#include "train/cli.h"
#include "train/stop.h"
#include "train/summary.h"
#include "train/trainer.h"

using namespace ddp;

int main(int argc, char** argv) {
  train::install_stop_handlers();
  train::TrainConfig cfg;
  CLI::App app{"Train the MNIST CNN serially (one process).", "train_serial"};
  train::add_training_flags(app, cfg);
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return train::run_main("train_serial", [&] {
    train::validate(cfg);
    train::check_output_paths(cfg);
    const auto data = train::load_datasets(cfg);
    dist::LocalCommunicator comm;
    const auto result = train::train(cfg, comm, data.train, data.test);
    train::print_summary(std::cout, result);
    if (!cfg.save_results.empty()) {
      sys::write_file_atomic(cfg.save_results, train::to_json(result, "train_serial").dump(2) + "\n");
      std::cout << "results written to " << cfg.save_results << "\n";
    }
    return 0;
  });
}
