#include "audit/line_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace strangler {

namespace {
constexpr size_t kReadChunk = 1 << 20;
}

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  gzFile gz = nullptr;
  if (path == "-") {
    int fd = dup(0);
    if (fd >= 0) gz = gzdopen(fd, "rb");
  } else {
    gz = gzopen(path.c_str(), "rb");
  }
  if (gz == nullptr) {
    return Status::Io("cannot read decision log '" + path + "': " + std::strerror(errno));
  }
  gzbuffer(gz, 256 * 1024);
  return std::unique_ptr<LineReader>(new LineReader(gz, path));
}

LineReader::LineReader(void* gz, std::string path) : gz_(gz), path_(std::move(path)) {
  buf_.resize(kReadChunk);
}

LineReader::~LineReader() { gzclose(static_cast<gzFile>(gz_)); }

bool LineReader::Fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the partial line, at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a line longer than the buffer
  int n = gzread(static_cast<gzFile>(gz_), buf_.data() + end_,
                 static_cast<unsigned>(std::min<size_t>(buf_.size() - end_, 1u << 30)));
  if (n < 0) {
    int err = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &err);
    status_ = Status::Io("cannot read decision log '" + path_ + "': " + (msg ? msg : "error"));
    eof_ = true;
    return false;
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(n);
  return true;
}

bool LineReader::Next(std::string_view* line) {
  size_t scan = begin_;
  for (;;) {
    const char* nl = static_cast<const char*>(std::memchr(buf_.data() + scan, '\n', end_ - scan));
    if (nl != nullptr) {
      size_t e = static_cast<size_t>(nl - buf_.data());
      size_t len = e - begin_;
      if (len > 0 && buf_[e - 1] == '\r') --len;
      *line = std::string_view(buf_.data() + begin_, len);
      begin_ = e + 1;
      unterminated_ = false;
      return true;
    }
    size_t consumed = begin_;
    scan = end_;
    if (!Fill()) break;
    scan -= consumed;  // Fill moved the data to the front
  }
  if (!status_.ok() || begin_ == end_) return false;
  *line = std::string_view(buf_.data() + begin_, end_ - begin_);
  begin_ = end_;
  unterminated_ = true;
  return true;
}

}  // namespace strangler
