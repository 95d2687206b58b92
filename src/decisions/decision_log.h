// DecisionLog: one JSON line per request (decision_line.h), written by
// spdlog's async logger so that the request path only formats a line and
// appends it to a batch under a short lock. A flusher thread hands the batch
// to spdlog every 20 ms (or at 64 KiB), so spdlog's queue wakes its writer
// per batch, not per request.
// When spdlog's queue is full the oldest batches are overwritten rather than
// blocking a request. Write() is thread-safe. Nothing else writes to the file.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <string_view>

#include "base/status.h"
#include "decisions/decision_record.h"
#include "decisions/log_files.h"

namespace spdlog {
class logger;
namespace details {
class thread_pool;
}  // namespace details
}

namespace strangler {

class DecisionLog {
 public:
  // path "-" writes to stdout (no rotation). Fails when the file cannot be
  // opened.
  static Result<std::unique_ptr<DecisionLog>> Open(const std::string& path,
                                                   const LogRotation& rotation = {});
  ~DecisionLog();  // flushes

  void Write(const DecisionRecord& r);
  // Blocks until every line written so far is on disk.
  void Flush();

 private:
  static constexpr size_t kBatchBytes = 64 * 1024;
  static constexpr int kBatchMs = 20;

  DecisionLog(std::shared_ptr<spdlog::logger> logger,
              std::shared_ptr<spdlog::details::thread_pool> pool);
  void Emit(std::string* batch);

  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;  // the logger's writer thread
  std::mutex batch_mu_;
  std::string batch_;  // lines joined by '\n'; guarded by batch_mu_
  bool stop_ = false;  // guarded by batch_mu_
  std::condition_variable flusher_cv_;
  std::thread flusher_;
};

}  // namespace strangler
