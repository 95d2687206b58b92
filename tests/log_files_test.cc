// Tests of a decision log's file names: the rotated names the writer makes
// are the ones audit finds.
#include "decisions/log_files.h"

#include <doctest/doctest.h>

#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/sink.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("decisions");

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TEST_CASE("RotatedLogName names files as spdlog's rotating sink did") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"decisions.log", "decisions.3.log"},
      {"/var/log/strangler/decisions.log", "/var/log/strangler/decisions.3.log"},
      {"log", "log.3"},
      {"a.b/log", "a.b/log.3"},
      {"dir/.hidden", "dir/.hidden.3"},
      {"dir/.hidden.log", "dir/.hidden.3.log"},
      {"trailing.", "trailing..3"},
      {"x.tar.gz", "x.tar.3.gz"},
  };
  for (const auto& [path, want] : cases) {
    INFO(path);
    CHECK(RotatedLogName(path, 0) == path);
    CHECK(RotatedLogName(path, 3) == want);
    CHECK(RotatedLogName(path, 3) == spdlog::sinks::rotating_file_sink_st::calc_filename(path, 3));
  }
}

TEST_CASE("ExpandLogPaths reads rotated files oldest first, then the live one") {
  TempDir dir;
  for (const char* f : {"decisions.log", "decisions.1.log", "decisions.2.log", "decisions.10.log",
                        "decisions.log.3.gz", "decisions.x.log", "other.log"}) {
    WriteFile(dir.File(f), "");
  }
  auto files = ExpandLogPaths({dir.File("decisions.log")});
  REQUIRE(files.ok());
  std::vector<std::string> want = {dir.File("decisions.10.log"), dir.File("decisions.log.3.gz"),
                                   dir.File("decisions.2.log"), dir.File("decisions.1.log"),
                                   dir.File("decisions.log")};
  CHECK(*files == want);
  // Named twice (a shell glob): read once.
  auto twice = ExpandLogPaths({dir.File("decisions.1.log"), dir.File("decisions.log")});
  REQUIRE(twice.ok());
  CHECK(twice->size() == 5);
  CHECK(ExpandLogPaths({dir.File("none.log")}).status().code() == Code::kNotFound);
  // Only rotated files left (the live one not yet written): still read.
  std::filesystem::remove(dir.File("decisions.log"));
  auto rotated = ExpandLogPaths({dir.File("decisions.log")});
  REQUIRE(rotated.ok());
  CHECK(rotated->size() == 4);
}

TEST_CASE("the writer's rotation keeps `keep` files that ExpandLogPaths reads in order") {
  TempDir dir;
  const std::string path = dir.File("decisions.log");
  LogRotation rotation;
  rotation.max_bytes = 100;
  rotation.keep = 2;
  auto sink = MakeLogFileSink(path, rotation);
  sink->set_pattern("%v");
  std::vector<std::string> batches;
  for (int i = 0; i < 12; ++i) {
    // 30-byte batches, three to a file; one of 120 bytes is never split.
    std::string batch =
        i == 7 ? std::string(119, 'L') : "batch " + std::to_string(i + 10) + std::string(20, '.');
    batches.push_back(batch + "\n");
    sink->log(spdlog::details::log_msg("t", spdlog::level::info, batch));
  }
  sink->flush();
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"decisions.1.log", "decisions.2.log", "decisions.log"});
  CHECK(ReadFile(dir.File("decisions.log")).size() <= 100);

  auto files = ExpandLogPaths({path});
  REQUIRE(files.ok());
  std::string all;
  for (const std::string& f : *files) all += ReadFile(f);
  std::string newest;  // the last batches, in order, ending with the last one
  for (size_t i = batches.size(); i-- > 0 && newest.size() < all.size();) {
    newest = batches[i] + newest;
  }
  CHECK(all == newest);
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
