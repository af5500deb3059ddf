// The broker's config file: TOML, one `NAME = VALUE` line per setting, the
// names being the flags' without "--" (see tern.toml).
#pragma once

#include <string>

#include "config.h"

namespace tern {

// Applies the settings in the file at `path` to *config. Returns false, with
// *error one line naming the file, the line and the key, if the file cannot be
// read or parsed, or holds an unknown key, a value of the wrong type or one
// out of range.
bool read_config_file(const std::string& path, Config* config,
                      std::string* error);

}  // namespace tern
