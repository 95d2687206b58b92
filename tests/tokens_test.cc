// Tests of the control API's token file: its lines, the digests, and
// finding a presented token among them.
#include "control/tokens.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "test_util.h"

namespace strangler {
namespace {

using testing::TempDir;

TEST_SUITE_BEGIN("control");

TEST_CASE("tokens: SHA-256 in hex, new tokens unique and url-safe") {
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = NewToken();
    REQUIRE(t.ok());
    CHECK(t->rfind("strangler_", 0) == 0);
    CHECK(t->size() == 10 + 43);  // 32 bytes in base64url, unpadded
    CHECK(t->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               10) == std::string::npos);
    CHECK(seen.insert(*t).second);
  }
}

TEST_CASE("tokens: a token file written and read back; a presented token found by digest") {
  TempDir dir;
  const std::string file = dir.File("tokens");
  std::vector<TokenEntry> entries = {{"ops", TokenRole::kWrite, Sha256Hex("secret-1")},
                                     {"viewer", TokenRole::kRead, Sha256Hex("secret-2")}};
  REQUIRE(WriteTokenFile(file, entries).ok());
  auto read = ReadTokenFile(file);
  REQUIRE(read.ok());
  REQUIRE(read->size() == 2);
  const TokenEntry* ops = FindToken(*read, "secret-1");
  REQUIRE(ops != nullptr);
  CHECK(ops->name == "ops");
  CHECK(ops->role == TokenRole::kWrite);
  CHECK(FindToken(*read, "secret-2")->role == TokenRole::kRead);
  CHECK(FindToken(*read, "secret-3") == nullptr);
  CHECK(FindToken(*read, "") == nullptr);
  CHECK(FindToken(*read, Sha256Hex("secret-1")) == nullptr);  // the digest is no token
}

TEST_CASE("tokens: a bad line fails the whole file, naming the line") {
  const std::string good = "ops:write:" + Sha256Hex("x");
  struct Row {
    std::string text;
    bool ok;
  };
  const Row rows[] = {
      {"# comment\n\n" + good + "\n", true},
      {good + "\r\n", true},
      {"ops:admin:" + Sha256Hex("x") + "\n", false},
      {"Ops:read:" + Sha256Hex("x") + "\n", false},
      {"ops:read:" + Sha256Hex("x").substr(1) + "\n", false},
      {"ops:read:" + std::string(64, 'G') + "\n", false},
      {"ops:read\n", false},
      {good + "\nnonsense\n", false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    TempDir dir;
    std::ofstream(dir.File("tokens")) << row.text;
    auto read = ReadTokenFile(dir.File("tokens"));
    CHECK(read.ok() == row.ok);
    if (!row.ok)
      CHECK(read.status().message().find("not NAME:read|write:SHA256") != std::string::npos);
  }
  auto missing = ReadTokenFile("/nonexistent/tokens");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
