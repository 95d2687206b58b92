#include "decisions/log_files.h"

#include <dirent.h>
#include <unistd.h>

#include <spdlog/details/file_helper.h>
#include <spdlog/details/os.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>
#include <utility>

namespace strangler {

namespace {

// A log path as its folder and its file name.
struct LogPath {
  std::string dir;     // "." when the path names none
  std::string prefix;  // what goes before a file name: "dir/" or ""
  std::string base;
};

LogPath SplitLogPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", "", path};
  return {path.substr(0, slash == 0 ? 1 : slash), path.substr(0, slash + 1),
          path.substr(slash + 1)};
}

// Rotated files are named head + N + tail, N >= 1.
struct NamePattern {
  std::string head;
  std::string tail;
};

// The writer's: the number goes before the extension ("decisions.log" ->
// "decisions.N.log"), or last when there is none ("log", ".hidden" ->
// "log.N"), as spdlog's rotating sink, which wrote the log before, names them.
NamePattern WriterPattern(const std::string& base) {
  size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot != 0 && dot + 1 != base.size()) {
    return {base.substr(0, dot + 1), base.substr(dot)};
  }
  return {base + ".", ""};
}

// logrotate's: "decisions.log" -> "decisions.log.N".
NamePattern LogrotatePattern(const std::string& base) { return {base + ".", ""}; }

// N when `name` is head + N + tail with N a number from 1 to 999999999.
bool NumberIn(const std::string& name, const NamePattern& p, long* n) {
  const std::string& head = p.head;
  const std::string& tail = p.tail;
  if (name.size() <= head.size() + tail.size()) return false;
  if (name.compare(0, head.size(), head) != 0) return false;
  if (name.compare(name.size() - tail.size(), tail.size(), tail) != 0) return false;
  std::string mid = name.substr(head.size(), name.size() - head.size() - tail.size());
  if (mid.empty() || mid.size() > 9) return false;
  for (char c : mid) {
    if (c < '0' || c > '9') return false;
  }
  *n = std::stol(mid);
  return *n > 0;
}

// spdlog's rotating_file_sink, with the rotated files named by
// RotatedLogName. Called by spdlog under base_sink's mutex.
class RotatingFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  RotatingFileSink(std::string path, size_t max_bytes, size_t keep)
      : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {
    file_.open(path_);
    size_ = file_.size();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t text;
    formatter_->format(msg, text);
    size_t new_size = size_ + text.size();
    // An empty file takes the batch whatever its size: after a failed write
    // (a full disk) the count is ahead of the file, and rotating an empty
    // file would only push a real one out.
    if (new_size > max_bytes_) {
      file_.flush();
      if (file_.size() > 0) {
        Rotate();
        new_size = text.size();
      }
    }
    file_.write(text);
    size_ = new_size;
  }
  void flush_() override { file_.flush(); }

 private:
  // path -> 1 -> 2 ... -> keep_; the file past keep_ is overwritten.
  void Rotate() {
    namespace os = spdlog::details::os;
    file_.close();
    for (size_t i = keep_; i > 0; --i) {
      std::string from = RotatedLogName(path_, i - 1);
      if (!os::path_exists(from)) continue;
      std::string to = RotatedLogName(path_, i);
      if (!RenameOver(from, to)) {
        os::sleep_for_millis(100);  // once more, as spdlog does
        if (!RenameOver(from, to)) {
          // A new live file anyway, so that it cannot grow past the limit.
          file_.reopen(true);
          size_ = 0;
          spdlog::throw_spdlog_ex("rotating_file_sink: failed renaming " + from + " to " + to,
                                  errno);
        }
      }
    }
    file_.reopen(true);
  }

  static bool RenameOver(const std::string& from, const std::string& to) {
    (void)spdlog::details::os::remove(to);
    return spdlog::details::os::rename(from, to) == 0;
  }

  const std::string path_;
  const size_t max_bytes_;
  const size_t keep_;
  spdlog::details::file_helper file_;
  size_t size_ = 0;  // bytes written to the live file, as counted
};

}  // namespace

std::string RotatedLogName(const std::string& path, size_t n) {
  if (n == 0) return path;
  LogPath p = SplitLogPath(path);
  NamePattern w = WriterPattern(p.base);
  return p.prefix + w.head + std::to_string(n) + w.tail;
}

Result<std::vector<std::string>> ExpandLogPaths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& p) {
    if (seen.insert(p).second) out.push_back(p);
  };
  for (const std::string& path : paths) {
    if (path == "-") {
      add(path);
      continue;
    }
    LogPath p = SplitLogPath(path);
    const NamePattern writer = WriterPattern(p.base);
    const NamePattern logrotate = LogrotatePattern(p.base);
    const NamePattern patterns[] = {writer,
                                    {writer.head, writer.tail + ".gz"},
                                    logrotate,
                                    {logrotate.head, logrotate.tail + ".gz"}};
    std::vector<std::pair<long, std::string>> rotated;
    if (DIR* d = opendir(p.dir.c_str())) {
      while (dirent* ent = readdir(d)) {
        std::string name = ent->d_name;
        for (const NamePattern& pattern : patterns) {
          long n = 0;
          if (NumberIn(name, pattern, &n)) {
            rotated.emplace_back(n, p.prefix + name);
            break;
          }
        }
      }
      closedir(d);
    }
    std::sort(rotated.begin(), rotated.end(), [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first > b.first;
      return a.second < b.second;
    });
    bool exists = access(path.c_str(), F_OK) == 0;
    if (!exists && rotated.empty()) {
      return Status::NotFound("no decision log at '" + path +
                              "' (nor rotated files beside it): give the LOG path that "
                              "`strangler serve --log` writes");
    }
    for (const auto& r : rotated) add(r.second);
    if (exists) add(path);
  }
  return out;
}

std::shared_ptr<spdlog::sinks::sink> MakeLogFileSink(const std::string& path,
                                                     const LogRotation& rotation) {
  if (rotation.max_bytes == 0) {
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  }
  return std::make_shared<RotatingFileSink>(path, static_cast<size_t>(rotation.max_bytes),
                                            static_cast<size_t>(std::max(rotation.keep, 1)));
}

}  // namespace strangler
