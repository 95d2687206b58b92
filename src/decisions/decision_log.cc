#include "decisions/decision_log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <algorithm>

#include "decisions/decision_line.h"

namespace strangler {

namespace {

// Keeps the log from taking the router down when it cannot be written (a
// full disk, an I/O error): each batch is written and flushed at once, so a
// failure is seen with the lines it held; those lines are counted, the
// failure is reported once on stderr, and when writing works again the
// number of lines lost is reported. Called from spdlog's single writer
// thread only.
class GuardedSink final : public spdlog::sinks::sink {
 public:
  explicit GuardedSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    try {
      inner_->log(msg);
      inner_->flush();
    } catch (const std::exception& e) {
      uint64_t lines = 1;
      for (char c : msg.payload) lines += c == '\n';
      if (dropped_ == 0) {
        spdlog::error("decision log not written ({}); serving goes on, lost lines are counted",
                      e.what());
      }
      dropped_ += lines;
      return;
    }
    if (dropped_ > 0) {
      spdlog::warn("decision log writable again; {} lines were dropped while it was not",
                   dropped_);
      dropped_ = 0;
    }
  }
  void flush() override {
    try {
      inner_->flush();
    } catch (const std::exception&) {
      // Reported by log(), which flushes every batch itself.
    }
  }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> f) override {
    inner_->set_formatter(std::move(f));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
  uint64_t dropped_ = 0;
};

}  // namespace

Result<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path,
                                                       const LogRotation& rotation) {
  if (path != "-") {
    // spdlog would create missing directories; a typo should fail instead.
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::Io("cannot open decision log '" + path + "': directory '" + dir +
                        "' does not exist");
    }
  }
  try {
    // 8192 queued batches, one writer thread. The log's own pool (not
    // spdlog's global one), so that its thread is joined before the logger
    // and its sinks are destroyed.
    auto pool = std::make_shared<spdlog::details::thread_pool>(kQueueBatches, 1);
    std::shared_ptr<spdlog::sinks::sink> sink;
    if (path == "-") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
      sink = MakeLogFileSink(path, rotation);
    }
    sink = std::make_shared<GuardedSink>(std::move(sink));
    auto logger = std::make_shared<spdlog::async_logger>(
        "decisions", sink, pool, spdlog::async_overflow_policy::overrun_oldest);
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::err);
    // Registered so that spdlog::flush_every() reaches it: lines are on disk
    // within a second, for `tail -f` and `audit` on a live log.
    spdlog::drop("decisions");
    spdlog::register_logger(logger);
    return std::unique_ptr<DecisionLog>(new DecisionLog(std::move(logger), std::move(pool)));
  } catch (const std::exception& e) {
    return Status::Io("cannot open decision log '" + path + "': " + e.what());
  }
}

DecisionLog::DecisionLog(std::shared_ptr<spdlog::logger> logger,
                         std::shared_ptr<spdlog::details::thread_pool> pool)
    : logger_(std::move(logger)), pool_(std::move(pool)) {
  flusher_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(batch_mu_);
    while (!stop_) {
      flusher_cv_.wait_for(lock, std::chrono::milliseconds(kBatchMs));
      std::string batch;
      batch.swap(batch_);
      lock.unlock();
      Emit(&batch);
      lock.lock();
      if (batch_.empty() && batch.capacity() <= kBatchBytes * 2) batch_.swap(batch);
    }
  });
}

DecisionLog::~DecisionLog() {
  {
    std::lock_guard<std::mutex> lock(batch_mu_);
    stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  Flush();
  spdlog::drop("decisions");
  // Joins the writer thread (it ends after the messages still queued), so
  // that nothing of the logger is in use when it is destroyed here.
  pool_.reset();
}

void DecisionLog::Emit(std::string* batch) {
  if (batch->empty()) return;
  std::lock_guard<std::mutex> lock(emit_mu_);
  if (pool_->queue_size() + kQueueSlack >= kQueueBatches) {
    // Full: spdlog would overwrite the oldest batch, uncounted. This one
    // goes instead, counted.
    dropped_lines_.fetch_add(1 + static_cast<uint64_t>(std::count(batch->begin(), batch->end(), '\n')),
                             std::memory_order_relaxed);
  } else {
    // One spdlog message per batch of lines: spdlog ends it with the last newline.
    logger_->log(spdlog::level::info, spdlog::string_view_t(batch->data(), batch->size()));
  }
  batch->clear();
}

void DecisionLog::Write(const DecisionRecord& r) {
  thread_local std::string line;
  line.clear();
  FormatDecision(r, &line);
  std::string full;
  {
    std::lock_guard<std::mutex> lock(batch_mu_);
    if (!batch_.empty()) batch_.push_back('\n');
    batch_.append(line);
    if (batch_.size() < kBatchBytes) return;
    full.swap(batch_);
  }
  Emit(&full);
}

void DecisionLog::Flush() {
  std::string batch;
  {
    std::lock_guard<std::mutex> lock(batch_mu_);
    batch.swap(batch_);
  }
  Emit(&batch);
  // An async logger's flush() is itself queued; the flush is done when the
  // pool has drained the queue up to it. Wait for that.
  logger_->flush();
  for (int i = 0; i < 2000 && pool_->queue_size() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& sink : logger_->sinks()) sink->flush();
}

}  // namespace strangler
