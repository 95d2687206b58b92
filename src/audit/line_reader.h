// LineReader: the lines of a plain or gzip-compressed file (zlib reads
// both), or of stdin for "-", streamed through a buffer that grows only for
// a line longer than it. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace strangler {

class LineReader {
 public:
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (nor a '\r' before it); valid until the
  // next call. False at the end or on a read error (see status()).
  bool Next(std::string_view* line);
  // True when the last line returned had no final newline (a live log's
  // line still being written).
  bool unterminated() const { return unterminated_; }
  const Status& status() const { return status_; }

 private:
  LineReader(void* gz, std::string path);
  bool Fill();

  void* gz_;  // gzFile
  std::string path_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool unterminated_ = false;
  Status status_;
};

}  // namespace strangler
