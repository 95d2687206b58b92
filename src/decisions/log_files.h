// The files of one decision log, named here once: the live file, the
// rotated files the writer's size rotation makes beside it (decisions.1.log,
// decisions.2.log, ...) and those logrotate makes (decisions.log.1,
// decisions.log.2.gz, ...), any of them maybe gzip-compressed. DecisionLog
// rotates with MakeLogFileSink, audit finds the files with ExpandLogPaths.
// Functions are thread-safe; a sink is spdlog's to call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace spdlog::sinks {
class sink;
}

namespace strangler {

// Size-based rotation: when the file would pass max_bytes it is renamed
// RotatedLogName(path, 1) (the older ones shift up to 2, 3, ...) and a new
// one started; at most `keep` rotated files are kept. A batch of lines is
// never split across files. max_bytes 0 = never rotate.
struct LogRotation {
  uint64_t max_bytes = 0;
  int keep = 5;
};

// The n-th rotated file of the log at `path` (n >= 1; n 0 is `path`):
// "dir/decisions.log", 3 -> "dir/decisions.3.log"; "dir/log", 3 -> "dir/log.3".
std::string RotatedLogName(const std::string& path, size_t n);

// The files to read for the LOG arguments, oldest first: each path is
// preceded by its rotated files, highest number first: the writer's
// (decisions.3.log, decisions.2.log, decisions.1.log) and logrotate's
// (decisions.log.2.gz, decisions.log.1), compressed or not. "-" (stdin) is
// kept as it is. A file named twice is read once. NotFound when a path has
// neither file nor rotated files.
Result<std::vector<std::string>> ExpandLogPaths(const std::vector<std::string>& paths);

// A sink appending to the file at `path`, rotating it as `rotation` says.
// Throws spdlog::spdlog_ex, as spdlog's own file sinks do, when the file
// cannot be opened or a rotated file cannot be renamed.
std::shared_ptr<spdlog::sinks::sink> MakeLogFileSink(const std::string& path,
                                                     const LogRotation& rotation);

}  // namespace strangler
