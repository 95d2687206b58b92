// The answers the router makes itself: a JSON error naming the status, why,
// the backend that failed (for a 502 or 504 only) and the request id, and the
// 503 for a client over --max-connections. Pure functions over bytes.
#pragma once

#include <string>
#include <string_view>

namespace strangler {

// "Bad Gateway" for 502; "Error" for a status the router never sends.
const char* StatusText(int status);

struct ErrorReply {
  int status = 0;
  std::string_view message;     // why, for a person
  std::string_view backend;     // named only in a 502/504: the one that failed
  std::string_view request_id;  // also sent as X-Request-Id when not empty
  bool http10 = false;          // status line for an HTTP/1.0 client
  bool close = false;           // Connection: close
  bool head_only = false;       // the request was HEAD: no body
};

// The whole answer, head and body.
std::string RenderErrorReply(const ErrorReply& reply);

// The 503 a client over --max-connections gets before its connection closes.
const std::string& BusyReply();
// The 400 a plain HTTP request sent to a TLS listener gets (in plain HTTP).
const std::string& PlainHttpOnTlsReply();

}  // namespace strangler
