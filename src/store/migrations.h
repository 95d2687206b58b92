// The SQL migrations compiled into the binary (generated from migrations/).
#pragma once

#include <vector>

namespace strangler {

struct Migration {
  int version;          // the file's number: 0001_init.sql -> 1
  const char* name;     // file name without .sql
  const char* sql;
};

// Ascending by version.
const std::vector<Migration>& Migrations();

}  // namespace strangler
