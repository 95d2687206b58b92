// RequestState: what the session knows of the request in progress, from
// its head to its log line. A new request starts from RequestState{}, so
// nothing of the previous one can leak into it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "rules/route_table.h"

namespace strangler {

struct RequestState {
  std::chrono::steady_clock::time_point t0;  // its head was read
  int64_t ts_ms = 0;                         // the same, as Unix ms (for the log)

  // From the head.
  std::string method, request_id;
  bool method_is(std::string_view m) const { return std::string_view(method) == m; }
  std::string host;  // Host, or an absolute-form target's authority (absolute_host)
  std::string xff;   // the X-Forwarded-For fields, joined
  std::string absolute_target;       // origin-form of an absolute target with no path
  std::string_view path_and_query;   // as forwarded: into the client buffer or absolute_target
  bool http10 = false, is_head = false;
  bool client_keep_alive = true;
  bool has_request_id = false;  // the client sent one we use (forwarded as it is)
  int request_id_field = -1;    // which of the head's fields that is
  bool expect_continue = false;
  bool websocket = false;       // an HTTP/1.1 GET asking to upgrade to WebSocket
  bool absolute_host = false;   // absolute-form target: host is its authority, sent as Host
  bool rechunk = false;         // the body goes upstream chunked (it came chunked)
  bool has_body = false;

  // The decision, as logged.
  std::string path;  // normalised
  bool dot_segments = false;  // the raw path held "." or ".." segments
  Decision decision;
  std::string_view route_name, backend_name, reason;

  // Progress.
  uint64_t body_bytes = 0;        // of the body read so far
  bool body_too_large = false;
  bool request_done = false;      // the whole request was read from the client
  bool client_failed = false;     // a send to the client failed
  bool fell_back = false;
  std::string fallback_why;

  // The outcome, as logged.
  int status = 0;
  double upstream_ms = 0;
  double queue_ms = -1;  // waited for a connection under a backend's cap (< 0: did not)
  uint64_t bytes_in = 0, bytes_out = 0;
};

}  // namespace strangler
