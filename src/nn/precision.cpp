#include "nn/precision.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>

#include "common/error.h"

namespace ddp::nn {

const char* to_string(Precision p) { return ddp::to_string(p); }

std::optional<Precision> precision_from_string(std::string_view name) { return enum_from_string<Precision>(name); }

namespace {

const char* isa_name(dnnl::cpu_isa isa) {
  using I = dnnl::cpu_isa;
  switch (isa) {
    case I::sse41: return "sse41";
    case I::avx: return "avx";
    case I::avx2: return "avx2";
    case I::avx2_vnni: return "avx2_vnni";
    case I::avx512_mic: return "avx512_mic";
    case I::avx512_mic_4ops: return "avx512_mic_4ops";
    case I::avx512_core: return "avx512_core";
    case I::avx512_core_vnni: return "avx512_core_vnni";
    case I::avx512_core_bf16: return "avx512_core_bf16";
    case I::avx512_core_amx: return "avx512_core_amx";
    default: return "none";
  }
}

// oneDNN's ISA values are bit sets, each containing the ISAs it extends
// (avx2_vnni is numerically larger than avx512_core_bf16 but not a superset).
bool includes(dnnl::cpu_isa have, dnnl::cpu_isa want) {
  const auto h = static_cast<unsigned>(have), w = static_cast<unsigned>(want);
  return (h & w) == w;
}

}  // namespace

CpuBf16 cpu_bf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  CpuBf16 c;
  c.isa = isa_name(isa);
  c.support = includes(isa, dnnl::cpu_isa::avx512_core_bf16) ? Bf16Support::native
              : includes(isa, dnnl::cpu_isa::avx512_core)    ? Bf16Support::emulated
                                                             : Bf16Support::unsupported;
  return c;
}

bool bf16_forced() {
  const char* v = std::getenv("DDP_FORCE_BF16");
  if (!v || std::string(v).empty() || std::string(v) == "0") return false;
  if (std::string(v) == "1") return true;
  throw UserError(std::string("DDP_FORCE_BF16 is '") + v + "': it takes 1 (force bf16) or 0",
                  "set DDP_FORCE_BF16=1 to try bf16 on this CPU anyway, or unset it");
}

std::string check_precision_supported(Precision p) {
  if (p != Precision::bf16) return "";
  const CpuBf16 c = cpu_bf16();
  const bool forced = bf16_forced();  // checks the variable's value on every CPU
  if (c.support == Bf16Support::unsupported && !forced)
    throw UserError("--precision bf16 needs AVX-512, and this CPU's best instruction set (as oneDNN sees it) is " +
                        c.isa + ": oneDNN 2.6 has no fast bf16 kernels for it",
                    "use --precision fp32 (or set DDP_FORCE_BF16=1 to try bf16 anyway)");
  if (c.support == Bf16Support::emulated)
    return "note: this CPU has AVX-512 but no native bf16 (oneDNN's ISA: " + c.isa +
           "): oneDNN emulates bf16, which is slower than fp32 here; --precision fp32 is the faster choice";
  return "";
}

}  // namespace ddp::nn
