// Reading decision logs for `strangler audit`: a damaged gzip file is
// reported with its path (what was read before the damage is kept), and a
// summary without grouping is one group of everything.
#include <doctest/doctest.h>
#include <zlib.h>

#include <string>
#include <string_view>
#include <vector>

#include "audit/line_reader.h"
#include "audit/summary.h"
#include "test_util.h"

namespace strangler {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TEST_CASE("audit: a gzip log damaged in the middle is a read error naming the file") {
  TempDir dir;
  const std::string path = dir.File("decisions.1.log.gz");
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  std::string text;
  // Random-looking lines so that the deflate stream is long and damage in its
  // middle is seen before its end.
  uint64_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    text += "{\"request_id\":\"" + std::to_string(x) + "\",\"status\":200}\n";
  }
  REQUIRE(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())) ==
          static_cast<int>(text.size()));
  REQUIRE(gzclose(gz) == Z_OK);
  std::string bytes = ReadFile(path);
  REQUIRE(bytes.size() > 4096);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  WriteFile(path, bytes);

  auto reader = LineReader::Open(path);
  REQUIRE(reader.ok());
  std::string_view line;
  size_t lines = 0;
  while ((*reader)->Next(&line)) ++lines;
  CHECK(lines < 20000);
  const Status& st = (*reader)->status();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Code::kIo);
  CHECK_MESSAGE(st.message().rfind("cannot read decision log '" + path + "': ", 0) == 0,
                st.message());
}

TEST_CASE("audit: without grouping, every request is in the one group 'all'") {
  CHECK(std::string(GroupByName(GroupBy::kNone)) == "all");
  CHECK(std::string(GroupByName(GroupBy::kPath)) == "path");
  AuditSummary s(GroupBy::kNone);
  for (int status : {200, 502, 200, 404}) {
    DecisionRecord r;
    r.status = status;
    r.path = "/p" + std::to_string(status);
    r.total_ms = 1;
    s.Add(r);
  }
  auto rows = s.Rows();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].key == "all");
  CHECK(rows[0].count == 4);
  CHECK(rows[0].share == doctest::Approx(1.0));
  CHECK(rows[0].error_rate == doctest::Approx(0.25));
  CHECK_FALSE(s.folded());
}

}  // namespace
}  // namespace strangler
