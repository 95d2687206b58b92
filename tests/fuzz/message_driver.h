// Drives MessageParser over fuzzed bytes the way the proxy does (see
// Session::ReadHead / HandleRequest / Exchange in src/proxy/proxy.cc): bytes arrive
// in 1..3 pieces appended to one growing buffer; after kHeadDone the parser
// is executed again for the body (even with no new bytes); between pieces the
// consumed prefix is dropped when no head is in progress (the proxy's
// compaction), so offsets stay relative to a buffer that moves.
//
// Input: byte 0 = piece count (% 3 + 1) and flags, bytes 1-2 = split points,
// then the wire bytes. The same wire bytes are also parsed in one piece; the
// messages both runs completed must be the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "http/http_message.h"

namespace strangler {
namespace fuzz {

// Switches for findings (tests/fuzz_regressions_test.cc). The first two were
// fixed in 345231c; set one back only to fuzz past a finding not fixed yet.
// llhttp, as built here, takes empty header names (a line starting with ':')
// and, without LLHTTP_STRICT_MODE, names with spaces; MessageParser refuses
// them.
constexpr bool kHeaderNamesAreTokens = true;
// After an interim response, the next Execute stripped leading CR/LF bytes
// of the final response; true parses responses with a 1xx in one piece only.
constexpr bool kSkipAfterInterim = false;
// in_head() is false in the trailer section of a chunked body, so the proxy
// may reset or compact its buffer there (tests/fuzz_regressions_test.cc,
// "trailer"); the driver does the same whenever the head is done.
constexpr bool kCompactInBody = true;

inline bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

class Recorder : public MessageHandler {
 public:
  Recorder(MessageType type, bool head_response) : type_(type), head_response_(head_response) {}
  MessageParser* parser = nullptr;
  const std::string* buf = nullptr;  // the buffer of the Execute in progress
  size_t limit = 0;                  // bytes of *buf given to the parser so far
  std::vector<std::string> messages; // one summary per head
  std::string body;

  bool InBuffer(const Span& s) const { return size_t{s.off} + s.len <= limit; }

  int OnHead() override {
    const MessageParser& p = *parser;
    FUZZ_CHECK(!p.in_head());
    const char* base = buf->data();
    std::string m;
    if (type_ == MessageType::kRequest) {
      FUZZ_CHECK(InBuffer(p.method()) && InBuffer(p.target()));
      FUZZ_CHECK(p.method().len > 0);
      FUZZ_CHECK(p.head_start() == p.method().off);
      for (char c : p.method().in(base)) FUZZ_CHECK(IsTokenChar(c));
      FUZZ_CHECK(p.target().len > 0);
      FUZZ_CHECK(p.target().off > p.method().off);
      m.append(p.method().in(base)).append(" ").append(p.target().in(base));
    } else {
      FUZZ_CHECK(InBuffer(p.reason()));
      // llhttp takes "HTTP/1.1 2 OK" as status 2; MessageParser refuses it.
      FUZZ_CHECK(p.status() >= 100 && p.status() <= 999);
      m.append(std::to_string(p.status())).append(" ").append(p.reason().in(base));
    }
    m.append(" ").append(std::to_string(p.http_major())).append(".").append(std::to_string(p.http_minor()));
    FUZZ_CHECK(p.headers().size() <= MessageParser::kMaxHeaders);
    for (const HeaderSpan& h : p.headers()) {
      FUZZ_CHECK(InBuffer(h.name) && InBuffer(h.value));
      std::string_view name = h.name.in(base), value = h.value.in(base);
      if (kHeaderNamesAreTokens) {
        FUZZ_CHECK(!name.empty());
        for (char c : name) FUZZ_CHECK(IsTokenChar(c));
      }
      // Whatever the name, it is one line's field name.
      FUZZ_CHECK(name.find_first_of(":\r\n") == std::string_view::npos);
      // A value holds no line break (obs-fold is refused).
      FUZZ_CHECK(value.find_first_of("\r\n") == std::string_view::npos);
      m.append("\n").append(h.name.in(base)).append(": ").append(h.value.in(base));
    }
    m.append(p.chunked() ? " chunked" : "").append(p.keep_alive() ? " ka" : "");
    if (p.has_content_length()) m.append(" cl=").append(std::to_string(p.content_length()));
    messages.push_back(std::move(m));
    return type_ == MessageType::kResponse && head_response_ ? 1 : 0;
  }

  bool OnBody(const char* data, size_t len) override {
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(data >= buf->data() && data + len <= buf->data() + limit);
    body.append(data, len);
    return true;
  }

 private:
  MessageType type_;
  bool head_response_;
};

struct RunResult {
  std::vector<std::string> messages;
  std::string body;
  std::string events;
  bool error = false;
};

// Parses `wire` delivered in pieces ending at the given cut points.
inline RunResult RunParser(MessageType type, bool head_response, std::string_view wire,
                           const std::vector<size_t>& cuts) {
  Recorder rec(type, head_response);
  MessageParser parser(type, &rec);
  rec.parser = &parser;
  std::string buf;
  size_t rpos = 0;
  size_t fed = 0;
  RunResult out;
  bool between_messages = true;  // no message begun, or the last one done
  for (size_t cut : cuts) {
    // An empty piece executes an empty range, also in the middle of a body
    // (llhttp flushes its open body span then; OnBody must not see len 0).
    // The proxy's compaction: drop consumed bytes when no head is open.
    if (!parser.in_head() && rpos > 0 && (kCompactInBody || between_messages)) {
      buf.erase(0, rpos);
      rpos = 0;
    }
    buf.append(wire.substr(fed, cut - fed));
    buf.shrink_to_fit();  // make the buffer move, as a resized one does
    fed = cut;
    int idle = 0;
    while (true) {
      size_t used = 0;
      rec.buf = &buf;
      rec.limit = buf.size();
      size_t before = rpos;
      auto ev = parser.Execute(buf.data(), rpos, buf.size(), &used);
      FUZZ_CHECK(used <= buf.size() - before);
      rpos += used;
      if (used > 0) between_messages = false;
      if (ev == MessageParser::Event::kMessageDone) between_messages = true;
      if (parser.in_head()) FUZZ_CHECK(parser.head_start() <= buf.size());
      if (ev == MessageParser::Event::kError) {
        FUZZ_CHECK(parser.error() != nullptr);
        out.events += 'E';
        out.error = true;
        out.messages = std::move(rec.messages);
        out.body = std::move(rec.body);
        return out;
      }
      if (ev == MessageParser::Event::kNeedMore) {
        break;
      }
      out.events += ev == MessageParser::Event::kHeadDone ? 'H' : 'M';
      // Progress: a parser that stops without consuming must not loop.
      idle = used == 0 ? idle + 1 : 0;
      FUZZ_CHECK(idle < 4);
      if (ev == MessageParser::Event::kMessageDone && rpos == buf.size()) break;
    }
  }
  rec.buf = &buf;
  rec.limit = buf.size();
  auto fin = parser.Finish();
  out.events += fin == MessageParser::Event::kMessageDone ? 'F'
                : fin == MessageParser::Event::kError   ? 'e'
                                                        : 'n';
  out.messages = std::move(rec.messages);
  out.body = std::move(rec.body);
  return out;
}

inline void FuzzMessage(MessageType type, const uint8_t* data, size_t size) {
  if (size < 3 || size > 65536) return;
  int pieces = data[0] % 3 + 1;
  bool head_response = (data[0] & 0x80) != 0;
  std::string_view wire(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::vector<size_t> cuts;
  if (pieces >= 2) cuts.push_back(wire.empty() ? 0 : data[1] * wire.size() / 256);
  if (pieces >= 3) {
    size_t c2 = wire.empty() ? 0 : data[2] * wire.size() / 256;
    if (c2 < cuts.back()) c2 = cuts.back();
    cuts.push_back(c2);
  }
  cuts.push_back(wire.size());

  RunResult whole = RunParser(type, head_response, wire, {wire.size()});
  // See kSkipAfterInterim.
  if (kSkipAfterInterim && type == MessageType::kResponse) {
    for (const std::string& m : whole.messages) {
      if (std::atoi(m.c_str()) < 200) return;
    }
  }
  RunResult split = RunParser(type, head_response, wire, cuts);
  // The messages completed by both runs are the same; without errors, all.
  size_t common = std::min(split.messages.size(), whole.messages.size());
  for (size_t i = 0; i < common; ++i) FUZZ_CHECK(split.messages[i] == whole.messages[i]);
  if (!split.error && !whole.error) {
    FUZZ_CHECK(split.messages.size() == whole.messages.size());
    FUZZ_CHECK(split.body == whole.body);
  }
}

}  // namespace fuzz
}  // namespace strangler
