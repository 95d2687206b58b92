// Unit tests for the request-target and Host checks (src/http/request_target.h).
#include <doctest/doctest.h>

#include <string>

#include "http/request_target.h"

using namespace strangler;

TEST_CASE("request target: BadTarget refuses a fragment, whitespace and control bytes") {
  CHECK(BadTarget("/a/b?c=d") == nullptr);
  CHECK(BadTarget("*") == nullptr);
  CHECK(std::string(BadTarget("/a#frag")).find("'#'") != std::string::npos);
  for (const char* bad : {"/a b", "/a\tb", "/a\x01", "/a\x7f"}) {
    CAPTURE(bad);
    CHECK(BadTarget(bad) != nullptr);
  }
}

TEST_CASE("request target: ValidHost takes host[:port] and nothing else") {
  for (const char* ok :
       {"x", "example.com", "example.com:8080", "127.0.0.1:1", "[::1]", "[::1]:80"}) {
    CAPTURE(ok);
    CHECK(ValidHost(ok));
  }
  for (const char* bad : {"", ":80", "a, b", "x/admin", "user@x", "x:8o", "x:80:81", "[]",
                          "[::1", "[::1]x", "[g::1]", "a b", "[fe80::1%25eth0]"}) {
    CAPTURE(bad);
    CHECK_FALSE(ValidHost(bad));
  }
}

TEST_CASE("request target: HasEncodedControl finds %00-%1F and %7F, not other escapes") {
  for (const char* p : {"/a%00", "/a%0a", "/a%0D/b", "/%09", "/a%1f", "/a%7F", "/x%41%7f"}) {
    INFO(p);
    CHECK(HasEncodedControl(p));
  }
  for (const char* p : {"/a%20", "/a%2F", "/a%41", "/a%", "/a%0", "/a%0g", "/a%g0", "/a%80", "/a0a"}) {
    INFO(p);
    CHECK_FALSE(HasEncodedControl(p));
  }
}

TEST_CASE("request target: HasEncodedSlash finds %2F and %5C in any case") {
  CHECK(HasEncodedSlash("/a%2Fb"));
  CHECK(HasEncodedSlash("/a%2fb"));
  CHECK(HasEncodedSlash("/a%5cb"));
  CHECK_FALSE(HasEncodedSlash("/a%20b"));
  CHECK_FALSE(HasEncodedSlash("/a%2"));
  CHECK_FALSE(HasEncodedSlash("/a/b"));
}

TEST_CASE("request target: SplitTarget gives origin-form, and the authority of an absolute one") {
  std::string scratch;
  TargetParts p = SplitTarget("/p?q=1", &scratch);
  CHECK(p.error == nullptr);
  CHECK_FALSE(p.absolute);
  CHECK(p.path_and_query == "/p?q=1");

  p = SplitTarget("*", &scratch);
  CHECK(p.error == nullptr);
  CHECK(p.path_and_query == "*");

  p = SplitTarget("http://example.com:8080/a/b?c", &scratch);
  CHECK(p.error == nullptr);
  CHECK(p.absolute);
  CHECK(p.authority == "example.com:8080");
  CHECK(p.path_and_query == "/a/b?c");

  p = SplitTarget("HTTPS://x", &scratch);
  CHECK(p.absolute);
  CHECK(p.authority == "x");
  CHECK(p.path_and_query == "/");

  p = SplitTarget("http://x?q=1", &scratch);
  CHECK(p.absolute);
  CHECK(p.path_and_query == "/?q=1");
  CHECK(p.path_and_query.data() == scratch.data());

  CHECK(SplitTarget("ftp://x/", &scratch).error != nullptr);
  CHECK(SplitTarget("example.com/a", &scratch).error != nullptr);
  CHECK(SplitTarget("http://user@x/a", &scratch).error != nullptr);
  CHECK(SplitTarget("http:///a", &scratch).error != nullptr);
}
