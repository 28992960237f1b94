// train_parallel: data-parallel training (the DistributedDataParallel
// algorithm) over Gloo or MPI, on one machine or many.
//
// What a process is depends on how it was started:
//  --backend mpi   under mpirun / srun (OMPI_COMM_WORLD_SIZE, PMIX_RANK or
//                  PMI_RANK set): one MPI rank. Otherwise the launcher: it
//                  runs itself through mpirun with --world-size ranks.
//  --backend gloo  with DDP_RENDEZVOUS_DIR set (a child of our own launcher):
//                  one rank, meeting the others in that private directory, or
//                  at --rendezvous when given. With --rendezvous, RANK and
//                  WORLD_SIZE set by any launcher (torchrun style) and no
//                  --nnodes / --node-rank / --nproc-per-node: one rank of a
//                  job that meets at --rendezvous. Otherwise the launcher: it
//                  starts this node's ranks (--world-size on one machine, or
//                  --nproc-per-node of --nnodes) and supervises them.

#include <algorithm>
#include <iostream>

#include "common/error.h"
#include "dist/gloo_communicator.h"
#include "dist/launcher.h"
#include "dist/mpi_communicator.h"
#include "dist/mpi_launch.h"
#include "dist/rendezvous.h"
#include "sys/atomic_file.h"
#include "sys/cores.h"
#include "sys/env.h"
#include "sys/launch_env.h"
#include "sys/machine.h"
#include "sys/process.h"
#include "train/cli.h"
#include "train/perf_flags.h"
#include "train/stop.h"
#include "train/summary.h"
#include "train/trainer.h"

using namespace ddp;

namespace {

// The flags of this program beyond the trainer's.
struct ClusterFlags {
  std::string rendezvous;  // redis://HOST[:PORT][/JOB] or file:///DIR
  std::string job_id;      // overrides the URL's
  std::string host;        // address this rank's Gloo transport listens on
  std::string iface;       // ... or the IPv4 address of this interface
  std::string secret_file, redis_password_file;  // secrets: files, never argv (dist/job_secret.h)
  int nnodes = 1, node_rank = 0, nproc_per_node = 0;
  std::string cpu_bind = "core";  // core | none (gloo: each rank on its own core(s))
  bool world_size_given = false, launcher_flags_given = false, backend_given = false;
};

// The parts of a run that every launcher checks once, before any rank starts.
void check_before_launch(const train::TrainConfig& cfg) {
  train::validate(cfg);
  if (!cfg.save_results.empty()) sys::check_writable(cfg.save_results);
  // A missing or corrupt file, or a checkpoint that does not fit, is reported
  // once, here, not by every rank.
  const auto data = train::load_datasets(cfg);
  if (!cfg.resume.empty()) train::check_resumable(cfg, cfg.world_size, data.train);
}

// Checks the cluster flags against each other and the backend.
void check_flags(const train::TrainConfig& cfg, const ClusterFlags& f) {
  if (!f.host.empty() && !f.iface.empty())
    throw UserError("--host and --iface both name the address to listen on", "give one of them");
  if (cfg.backend == "mpi") {
    if (!f.rendezvous.empty() || f.launcher_flags_given || !f.host.empty() || !f.iface.empty() || !f.job_id.empty())
      throw UserError("--rendezvous, --job-id, --nnodes, --node-rank, --nproc-per-node, --host and --iface are "
                      "for the gloo backend",
                      "with --backend mpi, mpirun places the ranks: mpirun -np N -H host1:K,host2:K train_parallel "
                      "--backend mpi ... (or srun --mpi=pmix)");
    return;
  }
  if (f.node_rank >= f.nnodes)
    throw UserError("--node-rank " + std::to_string(f.node_rank) + " is out of range for --nnodes " +
                        std::to_string(f.nnodes),
                    "number the nodes 0 .. nnodes-1");
  if (f.nnodes > 1 && f.rendezvous.empty())
    throw UserError("--nnodes " + std::to_string(f.nnodes) + " needs --rendezvous: the nodes must meet somewhere",
                    "add --rendezvous redis://HOST:PORT/JOB (a Redis server all nodes reach) or "
                    "--rendezvous file:///shared/dir (a directory all nodes mount)");
  if (f.nnodes > 1 && f.host.empty() && f.iface.empty())
    throw UserError("--nnodes " + std::to_string(f.nnodes) +
                        " needs the address the other nodes reach this one at",
                    "add --iface NAME (e.g. eth0) or --host ADDR (this node's address on the cluster network)");
  if (!f.rendezvous.empty()) {
    auto spec = dist::parse_rendezvous(f.rendezvous);
    dist::load_credentials(spec, f.secret_file, f.redis_password_file);
    if (f.nnodes > 1) dist::require_job_secret(spec);  // throws for redis:// (the warning comes at launch)
    if (!f.job_id.empty()) dist::check_job_id(f.job_id);
  } else if (!f.secret_file.empty() || !f.redis_password_file.empty()) {
    throw UserError("--secret-file and --redis-password-file are for --rendezvous",
                    "a job on one machine gets a fresh secret from its launcher: drop them, or add --rendezvous");
  }
  if (!f.host.empty()) dist::check_bindable(f.host);
  if (!f.iface.empty()) dist::interface_ipv4(f.iface);
}

// The address this rank listens on: --iface's, --host, or the default.
std::string listen_address(const ClusterFlags& f, const std::string& fallback) {
  if (!f.iface.empty()) return dist::interface_ipv4(f.iface);
  if (!f.host.empty()) return f.host;
  return fallback;
}

// ---- Gloo ----------------------------------------------------------------

int run_gloo_launcher(train::TrainConfig cfg, const ClusterFlags& f, int argc, char** argv) {
  // This node's share of the world.
  int per_node = cfg.world_size;
  if (f.nproc_per_node > 0) {
    per_node = f.nproc_per_node;
    if (f.world_size_given && cfg.world_size != f.nnodes * per_node)
      throw UserError("--world-size " + std::to_string(cfg.world_size) + " is not --nnodes " +
                          std::to_string(f.nnodes) + " x --nproc-per-node " + std::to_string(per_node),
                      "give --nproc-per-node only (the world is nnodes x nproc-per-node)");
  } else if (cfg.world_size % f.nnodes != 0) {
    throw UserError("--world-size " + std::to_string(cfg.world_size) + " cannot be split evenly over --nnodes " +
                        std::to_string(f.nnodes),
                    "give --nproc-per-node K (the world is then nnodes x K)");
  } else {
    per_node = cfg.world_size / f.nnodes;
  }
  cfg.world_size = f.nnodes * per_node;
  if (cfg.world_size > 4096) throw UserError("a world of more than 4096 ranks", "use fewer ranks");
  check_before_launch(cfg);

  const int cores = sys::online_cores();
  const bool oversubscribed = per_node * cfg.threads > cores;
  if (f.nnodes == 1)
    std::cout << "train_parallel: " << per_node << " processes x " << cfg.threads << " thread(s) on " << cores
              << " cores, gloo backend" << (f.rendezvous.empty() ? "" : ", rendezvous " + f.rendezvous) << std::endl;
  else
    std::cout << "train_parallel: node " << f.node_rank << " of " << f.nnodes << ": ranks " << f.node_rank * per_node
              << ".." << (f.node_rank + 1) * per_node - 1 << " of " << cfg.world_size << ", " << cfg.threads
              << " thread(s) each on " << cores << " cores, gloo backend, rendezvous " << f.rendezvous
              << ", listening on " << listen_address(f, "?") << std::endl;
  if (oversubscribed)
    std::cout << "train_parallel: OVERSUBSCRIBED: " << per_node * cfg.threads << " threads share " << cores
              << " cores; ranks will take turns, so expect lower throughput per rank" << std::endl;

  dist::LaunchOptions opts;
  opts.world_size = per_node;
  opts.rank_offset = f.node_rank * per_node;
  opts.global_world_size = cfg.world_size;
  opts.argv.push_back("/proc/self/exe");
  for (int i = 1; i < argc; ++i) opts.argv.push_back(argv[i]);
  opts.job_name = "train_parallel";
  if (!f.rendezvous.empty()) {  // ranks of other launchers must hold the same secret as these
    auto spec = dist::parse_rendezvous(f.rendezvous);
    dist::load_credentials(spec, f.secret_file, f.redis_password_file);
    if (f.nnodes > 1 || !spec.secret.empty()) opts.job_secret = spec.secret;
    if (const auto warning = f.nnodes > 1 ? dist::require_job_secret(spec) : ""; !warning.empty())
      std::cout << "train_parallel: " << warning << std::endl;
  }
  // Idle OpenMP threads must sleep, not spin, when ranks share cores.
  if (oversubscribed && !sys::env_set("OMP_WAIT_POLICY")) opts.env.push_back({"OMP_WAIT_POLICY", "passive"});
  return dist::launch_local(opts);
}

// Trains on an established communicator; rank 0 reports.
int train_and_report(train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm,
                     const std::string& binding) {
  train::RunResult result;
  try {
    result = train::train(cfg, comm, data.train, data.test);
    result.binding = binding;
  } catch (const train::Stopped& s) {
    if (comm.rank() == 0) throw;  // rank 0 speaks for the job
    return 128 + s.signal;
  }
  if (comm.rank() == 0) {
    train::print_summary(std::cout, result);
    if (!cfg.save_results.empty()) {
      sys::write_file_atomic(cfg.save_results, train::to_json(result, "train_parallel").dump(2) + "\n");
      std::cout << "results written to " << cfg.save_results << "\n";
    }
  }
  comm.barrier();  // no rank leaves while another may still need it
  return 0;
}

int run_gloo_worker(train::TrainConfig cfg, const ClusterFlags& f) {
  train::install_stop_handlers();  // before Gloo starts its threads
  const auto where = sys::place_from_env();
  std::string sharing;  // set when every core it may use is claimed by other jobs (sys/cores.h)
  const std::string binding = f.cpu_bind == "none" ? "none: --cpu-bind none"
                              : sys::bind_to_cores(where.local_rank, where.local_world_size, cfg.threads, &sharing);
  if (!sharing.empty()) std::cout << "train_parallel: " << sharing << std::endl;
  const auto timeout = std::chrono::milliseconds(static_cast<long>(cfg.timeout_s * 1000));
  if (f.rendezvous.empty()) {  // a child of our own launcher, in its private directory
    auto gloo = dist::gloo_options_from_env();
    cfg.world_size = gloo.size;
    gloo.timeout = timeout;
    gloo.algorithm = cfg.allreduce_algorithm;
    gloo.host = listen_address(f, gloo.host);
    const auto data = train::load_datasets(cfg);
    auto comm = dist::make_gloo_communicator(gloo);
    return train_and_report(cfg, data, *comm, binding);
  }

  // A rank of a job that meets at --rendezvous (on one machine or many).
  const auto place = sys::place_from_env();
  if (place.rank < 0 || place.world_size < 0)
    throw UserError("--rendezvous needs RANK and WORLD_SIZE in the environment of every rank",
                    "start the ranks with a launcher that sets them (torchrun style), or let train_parallel start "
                    "them: --nnodes M --node-rank I --nproc-per-node K");
  auto spec = dist::parse_rendezvous(f.rendezvous);
  if (!f.job_id.empty()) {
    dist::check_job_id(f.job_id);
    spec.job = f.job_id;
  }
  dist::load_credentials(spec, f.secret_file, f.redis_password_file);
  if (const auto warning = dist::require_job_secret(spec); !warning.empty() && place.rank == 0 &&
                                                                  !sys::env_set(sys::kRendezvousDirVar))
    std::cout << "train_parallel: " << warning << std::endl;
  const bool spans_machines = place.local_world_size > 0 && place.local_world_size < place.world_size;
  if (spans_machines && f.host.empty() && f.iface.empty())
    throw UserError("this job spans machines (WORLD_SIZE=" + std::to_string(place.world_size) +
                        ", LOCAL_WORLD_SIZE=" + std::to_string(place.local_world_size) +
                        ") but no address to listen on was given",
                    "add --iface NAME or --host ADDR: this machine's address on the network the ranks share");
  dist::GlooOptions base;
  base.rank = place.rank;
  base.size = place.world_size;
  base.timeout = timeout;
  base.algorithm = cfg.allreduce_algorithm;
  base.host = listen_address(f, "127.0.0.1");
  dist::check_bindable(base.host);
  cfg.world_size = base.size;
  const auto data = train::load_datasets(cfg);
  std::string generation;
  const auto gloo = dist::join_rendezvous(spec, base, generation);
  auto comm = dist::make_gloo_communicator(gloo);
  comm->barrier();  // every rank has read what it needs from the store
  if (comm->rank() == 0) dist::clear_generation(spec, generation, comm->size());
  return train_and_report(cfg, data, *comm, binding);
}

// ---- MPI -----------------------------------------------------------------

int run_mpi_launcher(train::TrainConfig cfg, int argc, char** argv) {
  check_before_launch(cfg);
  const int cores = sys::online_cores();
  const bool oversubscribed = cfg.world_size * cfg.threads > cores;
  std::cout << "train_parallel: " << cfg.world_size << " processes x " << cfg.threads << " thread(s) on " << cores
            << " cores, mpi backend (through mpirun)" << std::endl;
  if (oversubscribed)
    std::cout << "train_parallel: OVERSUBSCRIBED: " << cfg.world_size * cfg.threads << " threads share " << cores
              << " cores; ranks will take turns, so expect lower throughput per rank" << std::endl;
  dist::MpirunOptions o;
  o.world_size = cfg.world_size;
  o.cores = cores;
  o.threads_per_rank = cfg.threads;
  o.job_name = "train_parallel";
  o.argv.push_back(sys::self_exe());
  for (int i = 1; i < argc; ++i) o.argv.push_back(argv[i]);
  if (oversubscribed && !sys::env_set("OMP_WAIT_POLICY")) o.env.push_back({"OMP_WAIT_POLICY", "passive"});
  return dist::launch_mpirun(o);
}

int run_mpi_worker(train::TrainConfig cfg, bool world_size_given) {
  train::install_stop_handlers();  // before MPI starts its threads
  dist::MpiOptions mo;
  mo.timeout = std::chrono::milliseconds(static_cast<long>(cfg.timeout_s * 1000));
  mo = dist::mpi_options_from_env(mo);
  const int world = sys::mpi_place_from_env().size;  // -1 if the launcher does not say
  mo.ring_allreduce = sys::ranks_on_this_machine(std::max(world, 1)) * cfg.threads <= sys::online_cores();
  const auto data = train::load_datasets(cfg);
  auto comm = dist::make_mpi_communicator(mo);
  if (world_size_given && cfg.world_size != comm->size() && comm->rank() == 0)
    std::cout << "train_parallel: note: --world-size " << cfg.world_size << " ignored: the MPI launcher started "
              << comm->size() << " ranks" << std::endl;
  cfg.world_size = comm->size();
  cfg.allreduce_algorithm = dist::mpi_allreduce_algorithm();
  return train_and_report(cfg, data, *comm, "by mpirun: " + sys::current_binding());
}

std::string rank_label(const std::string& rank) { return "train_parallel [rank " + (rank.empty() ? "?" : rank) + "]"; }

}  // namespace

int main(int argc, char** argv) {
  train::TrainConfig cfg;
  cfg.world_size = 2;
  ClusterFlags f;
  CLI::App app{"Train the MNIST CNN with data parallelism (DistributedDataParallel over Gloo or MPI).",
               "train_parallel"};
  train::add_training_flags(app, cfg);
  auto* world_opt = app.add_option("-w,--world-size", cfg.world_size, "Number of processes")
                        ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--lr-scaling", cfg.lr_scaling, "Learning-rate scaling rule: none, or linear (lr x world size)")
      ->check(CLI::IsMember({"none", "linear"}))->capture_default_str();
  app.add_option("--warmup-epochs", cfg.warmup_epochs, "Epochs over which the scaled learning rate is ramped up")
      ->check(CLI::Range(0, 100000))->capture_default_str();
  app.add_option("--timeout", cfg.timeout_s, "Seconds after which a silent peer counts as dead")
      ->check(train::finite_in(1, 86400))->capture_default_str();
  app.add_option("--bucket-kb", cfg.bucket_kb, "Gradient all-reduce bucket size in KiB")
      ->check(CLI::Range(size_t{4}, size_t{1} << 20))->capture_default_str();
  app.add_option("--allreduce-algorithm", cfg.allreduce_algorithm, "Gloo all-reduce algorithm")
      ->check(CLI::IsMember({"ring", "bcube"}))->capture_default_str();
  train::add_parallel_perf_flags(app, cfg);
  auto* backend_opt = app.add_option("--backend", cfg.backend, "Communication backend: gloo, or mpi (OpenMPI)")
                          ->check(CLI::IsMember({"gloo", "mpi"}))->capture_default_str();
  app.add_option("--rendezvous", f.rendezvous,
                 "Where the ranks meet (gloo): redis://HOST[:PORT][/JOB] or file:///SHARED/DIR");
  app.add_option("--job-id", f.job_id, "Job id in the rendezvous store (default: the URL's /JOB, else ddp)");
  app.add_option("--secret-file", f.secret_file,
                 "File holding the job secret, the same on every node (gloo --rendezvous; or DDP_JOB_SECRET)");
  app.add_option("--redis-password-file", f.redis_password_file,
                 "File holding the Redis password (or DDP_REDIS_PASSWORD; DDP_REDIS_USER for an ACL user)");
  app.add_option("--host", f.host, "Address this node's ranks listen on (gloo; default 127.0.0.1)");
  app.add_option("--iface", f.iface, "Network interface whose IPv4 address the ranks listen on (gloo)");
  app.add_option("--cpu-bind", f.cpu_bind,
                 "gloo: core = bind each rank (and its threads) to its own core(s) among those it may use; none = "
                 "let the scheduler place them (mpirun binds MPI ranks itself)")
      ->check(CLI::IsMember({"core", "none"}))
      ->capture_default_str();
  auto* nnodes_opt = app.add_option("--nnodes", f.nnodes, "Machines in the job (gloo; needs --rendezvous)")
                         ->check(CLI::Range(1, 1024))->capture_default_str();
  auto* node_rank_opt = app.add_option("--node-rank", f.node_rank, "This machine's number, 0 .. nnodes-1")
                            ->check(CLI::Range(0, 1023))->capture_default_str();
  auto* nproc_opt = app.add_option("--nproc-per-node", f.nproc_per_node,
                                   "Processes on this machine (default: --world-size / --nnodes)")
                        ->check(CLI::Range(1, 64));
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  f.world_size_given = world_opt->count() > 0;
  f.backend_given = backend_opt->count() > 0;
  f.launcher_flags_given = nnodes_opt->count() + node_rank_opt->count() + nproc_opt->count() > 0;

  if (cfg.backend == "mpi") {
    if (sys::launched_by_mpi()) {
      const auto place = sys::mpi_place_from_env();
      const std::string who = rank_label(place.rank >= 0 ? std::to_string(place.rank) : "");
      return train::run_main(who, [&] {
        check_flags(cfg, f);
        return run_mpi_worker(cfg, f.world_size_given);
      });
    }
    return train::run_main("train_parallel", [&] {
      check_flags(cfg, f);
      return run_mpi_launcher(cfg, argc, argv);
    });
  }

  const bool child_of_launcher = sys::env_set(sys::kRendezvousDirVar);
  const bool external_rank = !f.rendezvous.empty() && sys::launched_by_launcher() && !f.launcher_flags_given;
  if (child_of_launcher || external_rank)
    return train::run_main(rank_label(sys::rank_as_given()), [&] { return run_gloo_worker(cfg, f); });
  return train::run_main("train_parallel", [&] {
    check_flags(cfg, f);
    if (sys::mpi_place_from_env().openmpi_size > 1 && !f.backend_given)
      throw UserError("started by mpirun with the gloo backend: every process would launch its own job",
                      "add --backend mpi (each process is then one MPI rank)");
    return run_gloo_launcher(cfg, f, argc, argv);
  });
}
