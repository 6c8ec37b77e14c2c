//===- Schema.h - Helpers shared by the config frontend's files -----------===//

#ifndef FORGE_CONFIG_SCHEMA_H
#define FORGE_CONFIG_SCHEMA_H

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace forge::config {

/// Shapes of schema member types, for the visitors.
template <typename T> struct IsOptional : std::false_type {};
template <typename T> struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T> struct IsVector : std::false_type {};
template <typename T> struct IsVector<std::vector<T>> : std::true_type {
  using Elem = T;
};
template <typename T> struct IsMap : std::false_type {};
template <typename T>
struct IsMap<std::map<std::string, T>> : std::true_type {};

/// "a, b, c" — how allowed values and valid keys are listed in messages.
std::string joinNames(const std::vector<std::string> &names);

} // namespace forge::config

#endif // FORGE_CONFIG_SCHEMA_H
