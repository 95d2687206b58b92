// `strangler serve`: the proxy with hot reload and the decision log.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace strangler {

struct ServeOptions {
  std::string db_path;
  std::string listen = "127.0.0.1:8080";
  std::string log_path = "./decisions.log";  // "-" = stdout
  double log_max_mb = 0;                     // rotate the log past this many MiB; 0 = never
  int log_keep = 5;                          // rotated files kept
  int threads = 0;                           // worker threads; 0 = decided from the core count
  int reload_ms = 100;                       // store polling interval
  int max_connections = 4096;
  int max_header_kb = 64;                // request head limit (431 beyond)
  int64_t max_body_mb = 0;               // request body limit (413 beyond); 0 = none
  std::string encoded_slash = "decode";  // %2F/%5C in a path: "decode" (read as '/') or "reject"
  int upstream_idle_s = 30;              // pooled backend connections idle longer are closed
  int tunnel_idle_s = 300;         // an upgraded (WebSocket) connection quiet this long is closed
  int drain_s = 10;                // on SIGTERM: how long requests in flight and tunnels may go on
  std::string admin;               // HOST:PORT of the admin listener; "" = none
  std::string admin_token_file;    // the control API's tokens (tokens.h); "" = API off
  bool admin_public_read = false;  // /api/v1 reads (and the dashboard's data) need no token
  std::string tls_cert;  // PEM chain; with tls_key, the listener speaks TLS ("": plain HTTP)
  std::string tls_key;
};

// Where a serve with --admin writes its admin listener's URL for `strangler
// status` to find: next to the store, "<db>.admin" (removed when it stops).
std::string AdminAddressFile(const std::string& db_path);

// Runs until SIGINT/SIGTERM. An error when it cannot start (a bad listen
// address, the store, the log). What it does while serving goes to spdlog's
// default logger, which the caller sets up (the operator's log).
Status RunServe(const ServeOptions& opts);

}  // namespace strangler
