// A parameter tensor as a view into the model's flat buffers: its value in
// the parameter buffer and its gradient at the same offset in the gradient
// buffer. Layouts are plain (OIHW / OI) so the buffers mean the same on every
// rank and machine, and match PyTorch's state_dict.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ddp::nn {

struct ParamView {
  float* value = nullptr;
  float* grad = nullptr;
};

struct ParamSpec {
  std::string name;           // PyTorch's name: "conv1.weight", ...
  std::vector<long> shape;    // PyTorch's shape
  size_t offset = 0;          // into the flat buffers, in floats
  size_t count = 0;
  int fan_in = 0;             // for PyTorch's default initialisation
};

}  // namespace ddp::nn
