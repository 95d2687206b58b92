// MessageParser on bytes: what it refuses (and says why), and what it takes.
// The request path relies on these answers: a refused head or body is a 400
// that reaches no backend, a refused answer is the backend's 502.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "http/http_message.h"

namespace strangler {
namespace {

// Keeps the heads' header names and the decoded body. `body_ok` false makes
// every body piece fail, as a sink that cannot take more does.
class Sink : public MessageHandler {
 public:
  explicit Sink(const std::string* buf) : buf_(buf) {}
  MessageParser* parser = nullptr;
  std::vector<std::string> names;
  std::string body;
  bool body_ok = true;
  int on_head = 0;

  int OnHead() override {
    for (const HeaderSpan& h : parser->headers()) names.emplace_back(h.name.in(buf_->data()));
    return on_head;
  }
  bool OnBody(const char* data, size_t len) override {
    body.append(data, len);
    return body_ok;
  }

 private:
  const std::string* buf_;
};

struct Parsed {
  MessageParser::Event last = MessageParser::Event::kNeedMore;
  std::string error;  // MessageParser::error() after kError
};

// Parses all of `bytes` the way the proxy does: Execute again after
// kHeadDone, until an error, a whole message, or more bytes are needed.
Parsed ParseAll(MessageParser* p, const std::string& bytes) {
  Parsed out;
  size_t rpos = 0;
  for (int guard = 0; guard < 64; ++guard) {
    size_t used = 0;
    out.last = p->Execute(bytes.data(), rpos, bytes.size(), &used);
    rpos += used;
    if (out.last == MessageParser::Event::kHeadDone) continue;
    break;
  }
  if (out.last == MessageParser::Event::kError) out.error = p->error() ? p->error() : "";
  return out;
}

std::string Headers(int n) {
  std::string h;
  for (int i = 0; i < n; ++i) h += "X-H" + std::to_string(i) + ": v\r\n";
  return h;
}

// Parses `bytes` as one request; the event it ends on and the error.
Parsed ParseRequest(const std::string& bytes) {
  Sink sink(&bytes);
  MessageParser p(MessageType::kRequest, &sink);
  sink.parser = &p;
  Parsed r = ParseAll(&p, bytes);
  if (r.last == MessageParser::Event::kError) {
    CHECK(p.error_code() != HPE_OK);
    // An error sticks: more bytes do not revive the parser.
    size_t used = 99;
    CHECK(p.Execute(bytes.data(), 0, bytes.size(), &used) == MessageParser::Event::kError);
    CHECK(used == 0);
  }
  return r;
}

const std::string kChunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

// Refused by the checks MessageParser adds to llhttp's, from callbacks whose
// error reason llhttp keeps.
TEST_CASE("http_message: requests refused, each with why") {
  struct Case {
    std::string name, bytes, error;
  };
  const std::vector<Case> cases = {
      {"one header over the limit", "GET / HTTP/1.1\r\n" + Headers(257) + "\r\n",
       "too many headers"},
      {"method over 64 bytes, no space yet", std::string(65, 'M'), "method too long"},
      {"method with a control byte", "GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", "invalid method"},
      {"no method at all", " / HTTP/1.1\r\nHost: x\r\n\r\n", "invalid method"},
      // Strict llhttp refuses a space in a name itself, in a trailer too.
      {"header name with a space", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
       "Invalid header token"},
      {"trailer name with a space", kChunked + "1\r\na\r\n0\r\nBad Name: v\r\n\r\n",
       "Invalid header token"},
  };
  for (const Case& c : cases) {
    INFO(c.name << ": " << c.bytes.substr(0, 120));
    Parsed r = ParseRequest(c.bytes);
    CHECK(r.last == MessageParser::Event::kError);
    CHECK(r.error == c.error);
  }
}

// Refused from on_header_value_complete and on_chunk_header: the request
// must not parse (the proxy answers 400 and forwards nothing).
TEST_CASE("http_message: empty names, folded values and absurd chunk sizes are refused") {
  for (const std::string& bytes : std::vector<std::string>{
           "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
           "GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n",
           kChunked + "1\r\na\r\n0\r\n: v\r\n\r\n",
           kChunked + "8000000000000000\r\n",
       }) {
    INFO(bytes);
    CHECK(ParseRequest(bytes).last == MessageParser::Event::kError);
  }
  // The largest chunk size taken is 2^63 - 1: the parser waits for its data.
  CHECK(ParseRequest(kChunked + "7fffffffffffffff\r\nabc").last ==
        MessageParser::Event::kNeedMore);
}

// llhttp replaces the reason a callback sets with its own when the callback
// fails ("`on_header_value_complete` callback error"): a client's 400 said
// that instead of why. MessageParser keeps its callbacks' reasons.
TEST_CASE("http_message: the reason of a refused empty name, fold or chunk size is kept") {
  struct Case {
    std::string bytes, error;
  };
  for (const Case& c : std::vector<Case>{
           {"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "invalid header name"},
           {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            "obsolete line folding in a header value"},
           {kChunked + "1\r\na\r\n0\r\n: v\r\n\r\n", "invalid trailer name"},
           {kChunked + "8000000000000000\r\n", "chunk size too large"},
       }) {
    INFO(c.bytes);
    CHECK(ParseRequest(c.bytes).error == c.error);
  }
}

TEST_CASE("http_message: requests taken at the limits") {
  SUBCASE("256 headers") {
    const std::string bytes = "GET / HTTP/1.1\r\n" + Headers(256) + "\r\n";
    Sink sink(&bytes);
    MessageParser p(MessageType::kRequest, &sink);
    sink.parser = &p;
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kMessageDone);
    CHECK(sink.names.size() == 256);
    CHECK(sink.names.back() == "X-H255");
  }
  SUBCASE("a 64-byte method waits for its space, then parses") {
    const std::string method(64, 'M');
    std::string bytes = method;
    Sink sink(&bytes);
    MessageParser p(MessageType::kRequest, &sink);
    sink.parser = &p;
    size_t used = 0;
    CHECK(p.Execute(bytes.data(), 0, bytes.size(), &used) == MessageParser::Event::kNeedMore);
    CHECK(used == 0);  // nothing taken until the method is whole
    bytes += " /m HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kMessageDone);
    CHECK(p.method().in(bytes.data()) == method);
    CHECK(p.target().in(bytes.data()) == "/m");
  }
  SUBCASE("CONNECT waits for its target's first byte, then is shown to llhttp as itself") {
    std::string bytes = "CONNECT ";
    Sink sink(&bytes);
    MessageParser p(MessageType::kRequest, &sink);
    sink.parser = &p;
    size_t used = 0;
    CHECK(p.Execute(bytes.data(), 0, bytes.size(), &used) == MessageParser::Event::kNeedMore);
    CHECK(used == 0);
    bytes += "example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    CHECK(p.Execute(bytes.data(), 0, bytes.size(), &used) == MessageParser::Event::kHeadDone);
    CHECK(p.method().in(bytes.data()) == "CONNECT");
    CHECK(p.target().in(bytes.data()) == "example.com:443");
  }
  SUBCASE("an empty header value, first, between and last") {
    const std::string bytes =
        "GET / HTTP/1.1\r\nX-A:\r\nHost: x\r\nX-B: \r\nX-C:\r\n\r\n";
    Sink sink(&bytes);
    MessageParser p(MessageType::kRequest, &sink);
    sink.parser = &p;
    size_t used = 0;
    REQUIRE(p.Execute(bytes.data(), 0, bytes.size(), &used) == MessageParser::Event::kHeadDone);
    std::vector<std::string> names, values;
    for (const HeaderSpan& h : p.headers()) {
      names.emplace_back(h.name.in(bytes.data()));
      values.emplace_back(h.value.in(bytes.data()));
    }
    CHECK(names == std::vector<std::string>{"X-A", "Host", "X-B", "X-C"});
    CHECK(values == std::vector<std::string>{"", "x", "", ""});
  }
  SUBCASE("a valid trailer ends the body and is not a header") {
    const std::string bytes =
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n";
    Sink sink(&bytes);
    MessageParser p(MessageType::kRequest, &sink);
    sink.parser = &p;
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kMessageDone);
    CHECK(sink.body == "abc");
    CHECK(sink.names == std::vector<std::string>{"Host", "Transfer-Encoding"});
  }
}

TEST_CASE("http_message: a body the sink refuses, and a head the handler refuses") {
  const std::string bytes = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  SUBCASE("body sink fails") {
    Sink sink(&bytes);
    sink.body_ok = false;
    MessageParser p(MessageType::kResponse, &sink);
    sink.parser = &p;
    Parsed r = ParseAll(&p, bytes);
    CHECK(r.last == MessageParser::Event::kError);
    CHECK(r.error == "body sink failed");
  }
  SUBCASE("OnHead says -1") {
    Sink sink(&bytes);
    sink.on_head = -1;
    MessageParser p(MessageType::kResponse, &sink);
    sink.parser = &p;
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kError);
    CHECK(sink.body.empty());
  }
  SUBCASE("OnHead says 1: no body whatever the length says") {
    const std::string two = bytes.substr(0, bytes.size() - 3) + bytes.substr(0, bytes.size() - 3);
    Sink sink(&two);
    sink.on_head = 1;
    MessageParser p(MessageType::kResponse, &sink);
    sink.parser = &p;
    size_t used = 0;
    CHECK(p.Execute(two.data(), 0, two.size(), &used) == MessageParser::Event::kMessageDone);
    CHECK(used == two.size() / 2);  // the second answer's head is left for the next message
  }
}

TEST_CASE("http_message: Finish completes a body delimited by the end of the connection") {
  SUBCASE("no length: EOF ends it") {
    const std::string bytes = "HTTP/1.1 200 OK\r\n\r\nto the end";
    Sink sink(&bytes);
    MessageParser p(MessageType::kResponse, &sink);
    sink.parser = &p;
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kNeedMore);
    CHECK(p.needs_eof());
    CHECK(p.Finish() == MessageParser::Event::kMessageDone);
    CHECK(sink.body == "to the end");
  }
  SUBCASE("cut inside a Content-Length body: an error") {
    const std::string bytes = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    Sink sink(&bytes);
    MessageParser p(MessageType::kResponse, &sink);
    sink.parser = &p;
    CHECK(ParseAll(&p, bytes).last == MessageParser::Event::kNeedMore);
    CHECK_FALSE(p.needs_eof());
    CHECK(p.Finish() == MessageParser::Event::kError);
    CHECK(p.error() != nullptr);
  }
  SUBCASE("nothing at all") {
    Sink sink(nullptr);
    MessageParser p(MessageType::kResponse, &sink);
    CHECK(p.Finish() == MessageParser::Event::kMessageDone);
  }
}

}  // namespace
}  // namespace strangler
