// The number format the CNN computes in, and what this CPU does with bf16.
//
//   fp32  every tensor in float.
//   bf16  mixed precision (Micikevicius et al. 2018, "Mixed Precision
//         Training"; Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep
//         Learning Training"): the convolutions and fc1 read and write
//         bfloat16 activations and weights and accumulate in float; the
//         master parameters, their gradients (oneDNN's f32 diff_weights),
//         the momentum, fc2, the logits and the loss stay float. The flat
//         parameter and gradient buffers are the same in both, so a
//         checkpoint of one resumes in the other.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "common/enum_names.h"

namespace ddp::nn {

enum class Precision { fp32, bf16 };

// --precision's names (EnumNames below): "fp32" | "bf16"; exact names only.
const char* to_string(Precision p);
std::optional<Precision> precision_from_string(std::string_view name);

// How oneDNN runs bf16 convolutions on this CPU (its effective ISA, so
// ONEDNN_MAX_CPU_ISA counts):
//   native       AVX512_BF16 (vdpbf16ps) or AMX: about twice fp32's rate;
//   emulated     AVX-512 without bf16: oneDNN emulates it, slower than fp32;
//   unsupported  no AVX-512: oneDNN 2.6 has no bf16 convolution kernel for
//                blocked layouts (primitive creation fails).
enum class Bf16Support { native, emulated, unsupported };
struct CpuBf16 {
  Bf16Support support = Bf16Support::unsupported;
  std::string isa;  // oneDNN's name of the effective ISA: "avx512_core_amx", "avx2", ...
};
CpuBf16 cpu_bf16();

// DDP_FORCE_BF16=1 in the environment: run bf16 where cpu_bf16() says
// unsupported (for a oneDNN build that has such kernels). Unset, "" or 0:
// false; any other value throws UserError (a typo must not pass unseen).
bool bf16_forced();

// Checks that `p` can run here before any work: throws UserError for bf16
// on an unsupported CPU (unless forced), naming the ISA and the fix.
// Returns a note for the user when bf16 is emulated (slower than fp32), or "".
std::string check_precision_supported(Precision p);

}  // namespace ddp::nn

namespace ddp {

template <>
struct EnumNames<nn::Precision> {
  static constexpr std::array<EnumName<nn::Precision>, 2> list{{{"fp32", nn::Precision::fp32},
                                                                {"bf16", nn::Precision::bf16}}};
};

}  // namespace ddp
