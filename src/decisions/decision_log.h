// DecisionLog: one JSON line per request (decision_line.h), written by
// spdlog's async logger so that the request path only formats a line and
// appends it to a batch under a short lock. A flusher thread hands the batch
// to spdlog every 20 ms (or at 64 KiB), so spdlog's queue wakes its writer
// per batch, not per request.
// When spdlog's queue is full (the disk does not keep up) a batch is dropped
// and its lines counted, rather than a request blocked. Thread-safe.
// Nothing else writes to the file.
#pragma once

#include <atomic>
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
  // Lines dropped because the writer fell behind, since the log opened.
  uint64_t dropped_lines() const { return dropped_lines_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kBatchBytes = 64 * 1024;
  static constexpr int kBatchMs = 20;
  static constexpr size_t kQueueBatches = 8192;  // spdlog's queue
  // Room kept in the queue for the flushes spdlog::flush_every() queues.
  static constexpr size_t kQueueSlack = 16;

  DecisionLog(std::shared_ptr<spdlog::logger> logger,
              std::shared_ptr<spdlog::details::thread_pool> pool);
  void Emit(std::string* batch);

  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;  // the logger's writer thread
  std::mutex batch_mu_;
  std::string batch_;  // lines joined by '\n'; guarded by batch_mu_
  bool stop_ = false;  // guarded by batch_mu_
  std::mutex emit_mu_;  // one batch into the queue at a time
  std::atomic<uint64_t> dropped_lines_{0};
  std::condition_variable flusher_cv_;
  std::thread flusher_;
};

}  // namespace strangler
