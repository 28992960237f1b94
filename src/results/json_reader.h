// Typed reading of the JSON documents this program writes (results files,
// checkpoint metadata). Each field is either required — absent, or of the
// wrong type, is a SchemaError naming the field and the file — or optional
// with a default the caller states. A number written from NaN comes back as
// null (nlohmann::json writes NaN as null) and reads as NaN again.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "common/error.h"

namespace ddp::results {

// A field of a document that is missing or has the wrong type. what():
// "<source>: the field '<field>' <problem>"; the hint says how to recover.
class SchemaError : public UserError {
 public:
  SchemaError(const std::string& source, const std::string& field, const std::string& problem);
  const std::string& source() const { return source_; }  // the file ("" when not known)
  const std::string& field() const { return field_; }    // its path: "epochs[2].time_breakdown_s.backward"

 private:
  std::string source_, field_;
};

// Reads the members of one JSON object. `source` names the file in errors;
// `path` is where the object lies in it ("" for the top level).
class FieldReader {
 public:
  // Throws SchemaError when `j` is not an object.
  FieldReader(const nlohmann::json& j, std::string source, std::string path = "");

  // A member that must be there. T: double, float (number or null = NaN),
  // an integer type, bool, std::string.
  template <class T>
  T required(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) throw SchemaError(source_, field(key), "is missing");
    return convert<T>(*it, field(key));
  }
  // A member that older files lack: `fallback` when it is absent.
  template <class T>
  T optional(const char* key, T fallback) const {
    const auto it = j_.find(key);
    return it == j_.end() ? fallback : convert<T>(*it, field(key));
  }
  // Whether the member is there (for optional objects).
  bool has(const char* key) const { return j_.contains(key); }
  // Required members that are an object / an array / an object of free form.
  FieldReader object(const char* key) const;
  const nlohmann::json& array(const char* key) const;
  const nlohmann::json& any_object(const char* key) const;
  // Element i of array member `key` (from array(key)), which must be an object.
  FieldReader element(const char* key, size_t i) const;
  // Element i of array member `key` converted to T.
  template <class T>
  T element_value(const char* key, size_t i) const {
    return convert<T>(array(key)[i], field(key) + "[" + std::to_string(i) + "]");
  }

  const std::string& source() const { return source_; }
  std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // One value as T, or SchemaError naming `field` when it has another type.
  template <class T>
  T convert(const nlohmann::json& v, const std::string& field) const {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) wrong_type(v, field, "true or false");
      return v.get<bool>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (v.is_null()) return std::numeric_limits<T>::quiet_NaN();
      if (!v.is_number()) wrong_type(v, field, "a number");
      return static_cast<T>(v.get<double>());
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) wrong_type(v, field, "an integer");
      if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) wrong_type(v, field, "a smaller integer");
        return static_cast<T>(u);
      }
      const int64_t s = v.get<int64_t>();
      if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (std::is_signed_v<T> && s > static_cast<int64_t>(std::numeric_limits<T>::max())))
        wrong_type(v, field, std::is_signed_v<T> ? "a smaller integer" : "a non-negative integer");
      return static_cast<T>(s);
    } else {
      static_assert(std::is_same_v<T, std::string>, "FieldReader reads bool, numbers and strings");
      if (!v.is_string()) wrong_type(v, field, "a string");
      return v.get<std::string>();
    }
  }

 private:
  [[noreturn]] void wrong_type(const nlohmann::json& v, const std::string& field, const std::string& expected) const;

  const nlohmann::json& j_;
  std::string source_, path_;
};

// A number member of a document whose readers accept partial content
// (performance_metrics.json, which reports what ran): `fallback` when the
// member is missing, null or not a number, or `j` is not an object.
double number_or(const nlohmann::json& j, const char* key, double fallback);
// The same for a boolean member.
bool bool_or(const nlohmann::json& j, const char* key, bool fallback);

}  // namespace ddp::results
