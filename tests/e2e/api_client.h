// The control API (/api/v1 of serve's admin listener) from a test: tokens
// made by the real CLI, and a raw HTTP client that checks each answer is
// JSON with the status the test expects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness.h"

namespace strangler {
namespace e2e {

// A token made by `strangler token add` (printed once on stdout).
std::string AddToken(Fixture& fx, const std::string& name, const std::string& role,
                     const std::string& file);

struct Api {
  uint16_t port;
  // Polls GET /readyz until 200 (the data port accepts from listen() on,
  // before serve has wired its admin views); false after the hang guard.
  bool WaitReady();
  HttpResponse Call(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "", Headers headers = {});
  // Checks the status and that the answer is JSON; returns it parsed.
  Json CallJson(const std::string& method, const std::string& path, const std::string& token,
                int want_status, const std::string& body = "", Headers headers = {});
};

// The CLI's message for a failed command ("strangler: MSG" on stderr).
std::string CliError(Fixture& fx, const std::vector<std::string>& args);

}  // namespace e2e
}  // namespace strangler
