// A temporary store and whole CLI commands run against it through RunCli,
// for the tests of what commands print. Not thread-safe.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "cli/cli.h"
#include "test_util.h"

namespace strangler {
namespace testing {

struct Out {
  int code;
  std::string out;
  std::string err;
};

class CliStore {
 public:
  std::string db() const { return dir_.File("t.db"); }
  Out Cli(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", db(), "--actor", "tester"});
    std::ostringstream out, err;
    int code = RunCli(args, out, err);
    return {code, out.str(), err.str()};
  }
  // Fails the test unless the command exits 0.
  Out Must(const std::vector<std::string>& args) const {
    Out r = Cli(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    INFO(line, r.err);
    REQUIRE(r.code == 0);
    return r;
  }
  Json JsonOf(const std::vector<std::string>& args) const {
    Out r = Must(args);
    Json j = Json::parse(r.out, nullptr, false);
    INFO(r.out);
    REQUIRE_FALSE(j.is_discarded());
    return j;
  }

 private:
  TempDir dir_;
};

}  // namespace testing
}  // namespace strangler
