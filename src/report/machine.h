// Facts about the machine and the libraries, recorded with every result.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace ddp::report {

int online_cores();
std::string cpu_model();
nlohmann::json machine_json();   // cores, cpu_model, hostname, memory_gib
nlohmann::json versions_json();  // compiler (the trainer adds the libraries it links)

}  // namespace ddp::report
