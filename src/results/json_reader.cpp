#include "results/json_reader.h"

namespace ddp::results {

namespace {

std::string message(const std::string& source, const std::string& field, const std::string& problem) {
  return (source.empty() ? std::string() : source + ": ") + "the field '" + field + "' " + problem;
}

}  // namespace

SchemaError::SchemaError(const std::string& source, const std::string& field, const std::string& problem)
    : UserError(message(source, field, problem),
                "the file was damaged, edited, or written by an incompatible version of this program: "
                "run the training again to write it anew"),
      source_(source),
      field_(field) {}

FieldReader::FieldReader(const nlohmann::json& j, std::string source, std::string path)
    : j_(j), source_(std::move(source)), path_(std::move(path)) {
  if (!j_.is_object()) wrong_type(j_, path_.empty() ? "(top level)" : path_, "an object");
}

FieldReader FieldReader::object(const char* key) const {
  const auto it = j_.find(key);
  if (it == j_.end()) throw SchemaError(source_, field(key), "is missing");
  return FieldReader(*it, source_, field(key));
}

const nlohmann::json& FieldReader::array(const char* key) const {
  const auto it = j_.find(key);
  if (it == j_.end()) throw SchemaError(source_, field(key), "is missing");
  if (!it->is_array()) wrong_type(*it, field(key), "an array");
  return *it;
}

const nlohmann::json& FieldReader::any_object(const char* key) const {
  const auto it = j_.find(key);
  if (it == j_.end()) throw SchemaError(source_, field(key), "is missing");
  if (!it->is_object()) wrong_type(*it, field(key), "an object");
  return *it;
}

FieldReader FieldReader::element(const char* key, size_t i) const {
  return FieldReader(array(key)[i], source_, field(key) + "[" + std::to_string(i) + "]");
}

void FieldReader::wrong_type(const nlohmann::json& v, const std::string& field, const std::string& expected) const {
  std::string what = v.is_null() ? "null" : std::string(v.type_name());
  if (v.is_primitive() && !v.is_null()) {
    const std::string text = v.dump();
    what += " " + (text.size() > 40 ? text.substr(0, 37) + "..." : text);
  }
  throw SchemaError(source_, field, "is " + what + ", expected " + expected);
}

double number_or(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

bool bool_or(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace ddp::results
