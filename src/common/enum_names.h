// Names for the enums of the command line and the results file: one table
// per enum gives both directions (the flag's value -> the enum when parsing,
// the enum -> the same word in JSON and messages), so the two cannot drift.
//
// An enum takes part by specialising EnumNames:
//   template <> struct EnumNames<Backend> {
//     static constexpr std::array<EnumName<Backend>, 2> list{{{"gloo", Backend::gloo}, {"mpi", Backend::mpi}}};
//   };
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace ddp {

template <class E>
struct EnumName {
  const char* name;
  E value;
};

template <class E>
struct EnumNames;  // specialised next to each enum

template <class E>
concept NamedEnum = requires { EnumNames<E>::list; };

// The enum's name ("gloo"); "?" for a value missing from the table.
template <NamedEnum E>
constexpr const char* to_string(E value) {
  for (const auto& n : EnumNames<E>::list)
    if (n.value == value) return n.name;
  return "?";
}

// The enum named `name` exactly (case-sensitive), or nothing.
template <NamedEnum E>
constexpr std::optional<E> enum_from_string(std::string_view name) {
  for (const auto& n : EnumNames<E>::list)
    if (name == n.name) return n.value;
  return std::nullopt;
}

// "a, b or c": the names, for messages.
template <NamedEnum E>
std::string enum_choices(const char* sep = ", ", const char* last_sep = " or ") {
  std::string s;
  const auto& list = EnumNames<E>::list;
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) s += i + 1 == list.size() ? last_sep : sep;
    s += list[i].name;
  }
  return s;
}

}  // namespace ddp
