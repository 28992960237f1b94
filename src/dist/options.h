// The choices a data-parallel run makes about communication, as enums with
// the names train_parallel's flags and the results file use
// (common/enum_names.h: to_string, enum_from_string).
#pragma once
#include <array>

#include "common/enum_names.h"

namespace ddp::dist {

// --backend: which library moves the gradients.
enum class Backend { gloo, mpi };

// --allreduce-algorithm: Gloo's all-reduce (dist/gloo_communicator.h). With
// MPI, OpenMPI picks its own (dist::mpi_allreduce_algorithm).
enum class AllreduceAlgorithm { ring, bcube };

// --grad-compression: what goes on the wire for the gradients
// (dist/grad_sync.h): floats, bfloat16 (dist/bf16.h), or PowerSGD's
// low-rank factors (dist/powersgd.h).
enum class Compression { none, bf16, powersgd };

// --overlap: what the user asked for; dist::choose_overlap turns `automatic`
// into one of GradSync's two ways (Overlap).
enum class OverlapMode { automatic, thread, none };

// How GradSync runs the all-reduce: on a communication thread while backward
// goes on, or on the training thread after backward.
enum class Overlap { thread, none };

}  // namespace ddp::dist

namespace ddp {

template <>
struct EnumNames<dist::Backend> {
  static constexpr std::array<EnumName<dist::Backend>, 2> list{{{"gloo", dist::Backend::gloo},
                                                                {"mpi", dist::Backend::mpi}}};
};
template <>
struct EnumNames<dist::AllreduceAlgorithm> {
  static constexpr std::array<EnumName<dist::AllreduceAlgorithm>, 2> list{
      {{"ring", dist::AllreduceAlgorithm::ring}, {"bcube", dist::AllreduceAlgorithm::bcube}}};
};
template <>
struct EnumNames<dist::Compression> {
  static constexpr std::array<EnumName<dist::Compression>, 3> list{{{"none", dist::Compression::none},
                                                                    {"bf16", dist::Compression::bf16},
                                                                    {"powersgd", dist::Compression::powersgd}}};
};
template <>
struct EnumNames<dist::OverlapMode> {
  static constexpr std::array<EnumName<dist::OverlapMode>, 3> list{{{"auto", dist::OverlapMode::automatic},
                                                                    {"thread", dist::OverlapMode::thread},
                                                                    {"none", dist::OverlapMode::none}}};
};
template <>
struct EnumNames<dist::Overlap> {
  static constexpr std::array<EnumName<dist::Overlap>, 2> list{{{"thread", dist::Overlap::thread},
                                                                {"none", dist::Overlap::none}}};
};

}  // namespace ddp
