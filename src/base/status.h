// Status and Result<T>: how fallible functions in strangler report failure.
// Plain values, no exceptions; safe to copy between threads.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace strangler {

// Kinds of failure the CLI maps to exit codes: kUsage -> 2, everything else -> 1.
enum class Code { kOk, kUsage, kInvalid, kNotFound, kConflict, kIo, kInternal };

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Usage(std::string m) { return Status(Code::kUsage, std::move(m)); }
  static Status Invalid(std::string m) { return Status(Code::kInvalid, std::move(m)); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status Io(std::string m) { return Status(Code::kIo, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }
  // A failure of kind `c` (not kOk) with message `m`.
  static Status FromCode(Code c, std::string m) { return Status(c, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Appends "; <hint>" unless the message already carries advice (a command
// to run, or a parenthesised note).
inline Status WithHint(const Status& s, const std::string& hint) {
  const std::string& msg = s.message();
  if (s.ok() || hint.empty() || msg.find("; ") != std::string::npos ||
      msg.find("strangler ") != std::string::npos || msg.find('(') != std::string::npos ||
      msg.find(": use ") != std::string::npos) {
    return s;
  }
  return Status::FromCode(s.code(), s.message() + "; " + hint);
}

// Holds either a value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be ok
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace strangler

#define STRANGLER_RETURN_IF_ERROR(expr)          \
  do {                                           \
    ::strangler::Status _st = (expr);            \
    if (!_st.ok()) return _st;                   \
  } while (0)
