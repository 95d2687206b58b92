// MirrorCopy: a session's copy of the request in progress for its route's
// --mirror. It keeps what the Mirror needs while the request is forwarded
// (the target, the forwarded header lines, the decoded body up to
// kMirrorBodyCap) and captures the client's answer as it is relayed. The
// copy is handed to the Mirror once the client has its answer; a request
// that ends any other way (a 413, a client gone, a cut answer) has its copy
// counted as dropped. One per session; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/mirror.h"

namespace strangler {

class MirrorCopy {
 public:
  explicit MirrorCopy(Mirror* mirror) : mirror_(mirror) {}

  // Whether this request is copied: reads only (GET, HEAD, OPTIONS) unless
  // --mirror-writes, and --mirror-percent of them by `draw` (any random
  // number). A body known to be over the cap is counted as dropped here.
  bool Wanted(const MirrorPlan& plan, std::string_view method, bool has_length,
              uint64_t content_length, uint64_t draw);
  // Starts a copy; `headers` are the forwarded header lines for the mirror.
  void Begin(std::shared_ptr<const MirrorPlan> plan, std::string_view target, std::string headers);
  bool active() const { return active_; }
  // A piece of the request's decoded body; past the cap the copy is dropped.
  void AddBody(const char* data, size_t len);
  // Where the relay of the client's answer reports it (null when no copy).
  RelayObserver* capture() { return active_ ? &capture_ : nullptr; }
  // The client has its answer: the copy goes to the Mirror's queue.
  void Submit(std::string_view method, std::string_view request_id,
              std::string_view primary_backend, int64_t ts_ms);
  // The request ended without an answer from its backend: counted as dropped.
  void Drop();

 private:
  Mirror* mirror_;
  bool active_ = false;
  std::shared_ptr<const MirrorPlan> plan_;
  // Copies: the client buffer is reused for the body while the request goes on.
  std::string target_, headers_, body_;
  ResponseCapture capture_;
};

}  // namespace strangler
