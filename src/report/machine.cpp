#include "report/machine.h"

#include <unistd.h>

#include <fstream>

namespace ddp::report {

int online_cores() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

nlohmann::json machine_json() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const double mem_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE) / (1024.0 * 1024 * 1024);
  return {{"cores", online_cores()}, {"cpu_model", cpu_model()}, {"hostname", host}, {"memory_gib", mem_gib}};
}

nlohmann::json versions_json() {
  return {{"compiler", std::string("g++ ") + __VERSION__}};
}

}  // namespace ddp::report
