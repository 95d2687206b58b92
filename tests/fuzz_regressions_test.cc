// Regression tests for what the libFuzzer targets (tests/fuzz/) found. Each
// case names its target and the input kept in tests/fuzz/crashes/. A case
// marked skip() shows a finding not fixed yet in src/ (it would abort an ASan
// run); drop the decorator with the fix and flip the matching constant in
// tests/fuzz/message_driver.h.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_message.h"
#include "rules/route_table.h"

namespace strangler {
namespace {

// Records what MessageParser reports, as strings.
class Recorder : public MessageHandler {
 public:
  explicit Recorder(const std::string* buf) : buf_(buf) {}
  MessageParser* parser = nullptr;
  std::vector<int> statuses;
  std::vector<std::string> names, values;
  std::string body;
  int empty_body_pieces = 0;

  int OnHead() override {
    statuses.push_back(parser->status());
    for (const HeaderSpan& h : parser->headers()) {
      names.emplace_back(h.name.in(buf_->data()));
      values.emplace_back(h.value.in(buf_->data()));
    }
    return 0;
  }
  bool OnBody(const char* data, size_t len) override {
    if (len == 0) ++empty_body_pieces;
    body.append(data, len);
    return true;
  }

 private:
  const std::string* buf_;
};

struct Fed {
  std::vector<MessageParser::Event> events;
  bool error = false;
};

// Feeds `pieces` one after another into one growing buffer, the way the
// proxy does: Execute after each piece, again after kHeadDone, and on after
// kMessageDone while bytes remain.
Fed Feed(MessageParser* p, std::string* buf, const std::vector<std::string>& pieces) {
  Fed out;
  size_t rpos = 0;
  for (const std::string& piece : pieces) {
    buf->append(piece);
    for (int guard = 0; guard < 16; ++guard) {
      size_t used = 0;
      auto ev = p->Execute(buf->data(), rpos, buf->size(), &used);
      rpos += used;
      out.events.push_back(ev);
      if (ev == MessageParser::Event::kError) {
        out.error = true;
        return out;
      }
      if (ev == MessageParser::Event::kNeedMore) break;
      if (ev == MessageParser::Event::kMessageDone && rpos == buf->size()) break;
    }
  }
  return out;
}

bool IsTokenName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// fuzz_response_head, crashes/fuzz_response_head-interim-split-eats-lf:
// after an interim response, MessageParser::Execute leaves at_start_ set
// while the final response has already begun, so the next Execute strips
// leading CR/LF bytes that belong to the final response. Split after the CR
// of the status line, the LF goes and llhttp takes the 'L' of "Location" as
// the line feed: the header arrives as "ocation".
TEST_CASE("fuzz: a response after 100 Continue split after a CR keeps its bytes") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf,
                 {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r",
                  "\nLocation: /x\r\nContent-Length: 2\r\n\r\n{}"});
  CHECK_FALSE(fed.error);
  REQUIRE(rec.statuses.size() == 2);
  CHECK(rec.statuses[1] == 201);
  REQUIRE(rec.names.size() == 2);
  CHECK(rec.names[0] == "Location");
  CHECK(rec.body == "{}");
}

// Same finding, body side: the final response's head ends a read, its body
// starts with line feeds in the next one; they must stay part of the body
// (they are stripped, and the response then waits for two more bytes).
TEST_CASE("fuzz: a body after 100 Continue that starts with LF keeps it") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf,
                 {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                  "\n\nX"});
  CHECK_FALSE(fed.error);
  CHECK(rec.body == "\n\nX");
  REQUIRE_FALSE(fed.events.empty());
  CHECK(fed.events.back() == MessageParser::Event::kMessageDone);
}

// Control: the same bytes in one piece parse correctly today.
TEST_CASE("fuzz: a response after 100 Continue in one piece") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf,
                 {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /x\r\n"
                  "Content-Length: 2\r\n\r\n{}"});
  CHECK_FALSE(fed.error);
  REQUIRE(rec.names.size() == 2);
  CHECK(rec.names[0] == "Location");
  CHECK(rec.body == "{}");
}

// fuzz_response_head, crashes/fuzz_response_head-space-in-header-name:
// llhttp is compiled without LLHTTP_STRICT_MODE (its default, 0), which lets
// a header name hold spaces. The proxy refuses such request headers (400),
// but response headers are forwarded to the client as they are.
TEST_CASE("fuzz: a response header name with a space is refused") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf, {"HTTP/1.1 200 OK\r\nFoo Bar: x\r\nContent-Length: 0\r\n\r\n"});
  bool refused_or_clean = fed.error;
  if (!fed.error) {
    refused_or_clean = true;
    for (const std::string& n : rec.names) refused_or_clean = refused_or_clean && IsTokenName(n);
  }
  CHECK(refused_or_clean);
}

// fuzz_request_head, crashes/fuzz_request_head-connect-empty-target: CONNECT
// is shown to llhttp as itself (for its authority target), and llhttp then
// takes "CONNECT \n" with no target at all; MessageParser refuses an empty
// target (found the day CONNECT stopped being parsed as the stand-in method).
TEST_CASE("fuzz: a request with an empty target is refused, CONNECT too") {
  for (const std::string& wire : {std::string("CONNECT \r\nHost: x\r\n\r\n"),
                                 std::string("CONNECT \n\r\ni/")}) {
    CAPTURE(wire);
    std::string buf;
    Recorder rec(&buf);
    MessageParser p(MessageType::kRequest, &rec);
    rec.parser = &p;
    Fed fed = Feed(&p, &buf, {wire});
    CHECK(fed.error);
  }
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kRequest, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf, {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"});
  CHECK_FALSE(fed.error);
}

// fuzz_request_head, crashes/fuzz_request_head-empty-header-name: a line
// starting with ':' gives a header with an empty name (llhttp 8.1 accepts it
// even in strict mode). Requests: the proxy refuses it (400, "invalid header
// name"). Responses: forwarded to the client as ": value".
TEST_CASE("fuzz: a response header with an empty name is refused") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf, {"HTTP/1.1 200 OK\r\n:xpect: 100-continue\r\nContent-Length: 0\r\n\r\n"});
  bool refused_or_clean = fed.error;
  if (!fed.error) {
    refused_or_clean = true;
    for (const std::string& n : rec.names) refused_or_clean = refused_or_clean && !n.empty();
  }
  CHECK(refused_or_clean);
}

// fuzz_response_head, crashes/fuzz_response_head-status-2: llhttp takes
// "HTTP/1.1 2 OK" as status 2, which MessageParser (status < 200) treats as
// an interim response and the proxy forwards as "HTTP/1.1 002". RFC 9112: a
// status code is three digits.
TEST_CASE("fuzz: a status code below 100 is refused") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kResponse, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf, {"HTTP/1.1 2 OK\r\nContent-Length: 0\r\n\r\n"});
  bool refused = fed.error;
  for (int s : rec.statuses) refused = refused && (s >= 100);
  CHECK(refused);
}

// fuzz_request_head, crashes/fuzz_request_head-empty-body-piece: an Execute
// with no new bytes in the middle of a chunk calls OnBody(data, 0) (llhttp
// flushes its open body span). The proxy re-chunks request bodies with
// AppendChunk, which would write "0\r\n\r\n" -- a last-chunk -- upstream.
// The proxy does not execute an empty range mid-body today (only right after
// kHeadDone), so this is latent; the MessageHandler contract should not
// allow it.
TEST_CASE("fuzz: no empty body piece from an Execute without new bytes") {
  std::string buf =
      "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
  Recorder rec(&buf);
  MessageParser p(MessageType::kRequest, &rec);
  rec.parser = &p;
  size_t rpos = 0, used = 0;
  auto ev = p.Execute(buf.data(), rpos, buf.size(), &used);
  REQUIRE(ev == MessageParser::Event::kHeadDone);
  rpos += used;
  ev = p.Execute(buf.data(), rpos, buf.size(), &used);
  REQUIRE(ev == MessageParser::Event::kNeedMore);
  rpos += used;
  CHECK(rec.body == "hel");
  ev = p.Execute(buf.data(), rpos, buf.size(), &used);  // nothing new
  CHECK(ev == MessageParser::Event::kNeedMore);
  CHECK(rec.empty_body_pieces == 0);
}

// fuzz_request_head / fuzz_response_head, crashes/*-trailer-name-split-
// compacted (found after 345231c): in the trailer section of a chunked body
// in_head() is false, so the proxy resets (rpos_ = wpos_ = 0 when all is
// consumed, Session::FillClient) or compacts its buffer, but MessageParser
// keeps each trailer's name and value as offsets into that buffer. A trailer
// name split across two reads then gets name.len = new_off + len - old_off,
// wrapped to ~4 GiB, and OnHeaderValueComplete (which since 345231c reads the
// name and value to refuse bad names and obs-fold) reads out of bounds
// (ASan: heap-buffer-overflow at http_message.cc:117). In an optimised build
// it answered 400 "invalid header name" for a valid request. Fixed: trailer
// fields are checked piece by piece and never kept as offsets.
TEST_CASE("fuzz: a trailer split across reads after the proxy reset its buffer") {
  std::string in(4096, '\0');  // the connection's buffer, positions reset below
  Recorder rec(&in);
  MessageParser p(MessageType::kRequest, &rec);
  rec.parser = &p;
  const std::string first =
      "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Tr";
  in.replace(0, first.size(), first);
  size_t rpos = 0, wpos = first.size(), used = 0;
  REQUIRE(p.Execute(in.data(), rpos, wpos, &used) == MessageParser::Event::kHeadDone);
  rpos += used;
  REQUIRE(p.Execute(in.data(), rpos, wpos, &used) == MessageParser::Event::kNeedMore);
  rpos += used;
  REQUIRE(rpos == wpos);
  REQUIRE_FALSE(p.in_head());
  rpos = wpos = 0;  // Session::FillClient: all consumed, no head in progress
  const std::string second = "ailer: t\r\n\r\n";
  in.replace(0, second.size(), second);
  wpos = second.size();
  CHECK(p.Execute(in.data(), rpos, wpos, &used) == MessageParser::Event::kMessageDone);
}

// Found while writing the fuzzers' invariants: an obs-fold (CRLF then SP/HT
// inside a field value) is accepted and reported inside the value, so the
// proxy forwards it. RFC 9112 5.2: a server must reject it (400) or replace
// each obs-fold with SP before forwarding.
TEST_CASE("fuzz: an obs-fold in a request header is refused or unfolded") {
  std::string buf;
  Recorder rec(&buf);
  MessageParser p(MessageType::kRequest, &rec);
  rec.parser = &p;
  Fed fed = Feed(&p, &buf, {"GET / HTTP/1.1\r\nHost: a\r\nX-Fold: one\r\n  two\r\n\r\n"});
  bool ok = fed.error;
  if (!ok) {
    ok = true;
    for (const std::string& v : rec.values) ok = ok && v.find_first_of("\r\n") == std::string::npos;
  }
  CHECK(ok);
}

// fuzz_path_pattern, crashes/fuzz_path_pattern-normalize-double-decode:
// NormalizePath decodes in one pass, so "%7%33" becomes "%73" and is not
// decoded again (a second pass would make it "s"). By design: the routing
// path is decoded once, as a backend decodes once. Pinned so a change is
// deliberate.
TEST_CASE("fuzz: NormalizePath decodes percent-escapes in one pass") {
  std::string scratch;
  CHECK(NormalizePath("/%7%33E7Eu", &scratch) == "/%73E7Eu");
  std::string again;
  CHECK(NormalizePath("/%73E7Eu", &again) == "/sE7Eu");
  CHECK(NormalizePath("/a/%2E%2E/b", &scratch) == "/b");
  CHECK(NormalizePath("/a/%2E%2e%2Fb", &scratch) == "/b");  // %2F is '/' (issue 12)
}

}  // namespace
}  // namespace strangler

#if __has_include("rule_file.h")
#include "rules/rule_file.h"

namespace strangler {
namespace {

// fuzz_rule_file, crashes/fuzz_rule_file-number-overflow-*: ParseRuleFile
// catches json::parse_error only; a number literal beyond double range makes
// nlohmann::json throw json::out_of_range (406), which escapes (the CLI
// reports it as "this is a bug"). It should be one more problem line.
TEST_CASE("fuzz: ParseRuleFile reports a number overflow as a problem") {
  std::vector<std::string> problems;
  CHECK_NOTHROW(ParseRuleFile(R"({"backends": [], "x": 1e999})", &problems));
  problems.clear();
  try {
    ParseRuleFile(R"({"backends": [{"name": "a", "urls": ["http://h:1"], "timeout_ms": 1e400}]})",
                  &problems);
  } catch (...) {
  }
  CHECK_FALSE(problems.empty());
}

}  // namespace
}  // namespace strangler
#endif
