//===- Schema.h - Helpers shared by the config frontend's files -----------===//

#ifndef FORGE_CONFIG_SCHEMA_H
#define FORGE_CONFIG_SCHEMA_H

#include <string>
#include <vector>

namespace forge::config {

/// "a, b, c" — how allowed values and valid keys are listed in messages.
std::string joinNames(const std::vector<std::string> &names);

} // namespace forge::config

#endif // FORGE_CONFIG_SCHEMA_H
