// fuzz_response_relay: the bytes of one upstream connection, arbitrary (late
// bytes after an answer, a second answer nobody asked for, bodiless answers
// with lengths, garbage inside and between answers), relayed answer after
// answer by ResponseRelay as the proxy does (Session::Exchange), and read
// by one keep-alive client that knows HTTP as a browser does.
//
// Input: byte 0 = flags of the requests (bit 0 the first is HEAD, bit 1
// HTTP/1.0 client, bit 2 WebSocket upgrade asked, bit 3 refuse a 5xx, bits
// 4-7 seed which later requests are HEAD), byte 1 = read size seed, then the
// backend's bytes.
//
// Invariants, for every answer the relay completes:
// - the client, reading everything relayed so far on one connection, is at a
//   message boundary and has read exactly one more final answer (after any
//   interim ones), with the status and decoded body the relay saw;
// - the upstream connection is offered for reuse only when nothing was read
//   past the answer and the answer was framed without doubt;
// - a 101 tunnel only when asked for; nothing final relayed for a refused 5xx.
#include <cstddef>
#include <cstdint>
#include <string>

#include <llhttp.h>

#include "fuzz_common.h"
#include "http/response_relay.h"

namespace strangler {
namespace fuzz {
namespace {

// A client's reading of the relayed bytes: llhttp, with the bodiless rules
// of RFC 9112 6.3 that a browser applies (HEAD, 1xx, 204, 304).
class Client {
 public:
  Client() {
    llhttp_settings_init(&settings_);
    settings_.on_headers_complete = [](llhttp_t* p) -> int {
      Client* c = static_cast<Client*>(p->data);
      int status = p->status_code;
      c->status_ = status;
      return (c->head_ || status < 200 || status == 204 || status == 304) ? 1 : 0;
    };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t len) -> int {
      static_cast<Client*>(p->data)->body_.append(at, len);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) -> int {
      Client* c = static_cast<Client*>(p->data);
      if (c->status_ >= 200) ++c->finals_;
      return 0;
    };
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
    parser_.data = this;
  }
  void Expect(bool head) { head_ = head; }
  // False when the bytes are not valid HTTP for a client.
  bool Read(const std::string& bytes) {
    if (bytes.empty()) return true;
    return llhttp_execute(&parser_, bytes.data(), bytes.size()) == HPE_OK;
  }
  bool Finish() { return llhttp_finish(&parser_) == HPE_OK; }
  // At a message boundary: nothing of a message pending.
  bool Idle() const { return parser_.finish == HTTP_FINISH_SAFE; }
  int finals() const { return finals_; }
  int status() const { return status_; }
  std::string TakeBody() {
    std::string b;
    b.swap(body_);
    return b;
  }

 private:
  llhttp_settings_t settings_;
  llhttp_t parser_;
  bool head_ = false;
  int status_ = 0;
  int finals_ = 0;
  std::string body_;
};

class BodyTap : public RelayObserver {
 public:
  void OnFinalHead(const MessageParser&, const char*) override { body.clear(); }
  void OnBodyPiece(const char* data, size_t len) override {
    FUZZ_CHECK(len > 0);
    body.append(data, len);
  }
  std::string body;
};

}  // namespace
}  // namespace fuzz
}  // namespace strangler

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strangler;
  using namespace strangler::fuzz;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const uint8_t read_seed = data[1];
  const std::string wire(reinterpret_cast<const char*>(data + 2), size - 2);
  const char* base = wire.data();
  const size_t n = wire.size();

  ResponseRelay relay;
  BodyTap tap;
  Client client;
  size_t rpos = 0, wpos = 0;
  size_t step = 0;
  for (int exchange = 0; exchange < 16; ++exchange) {
    RelayRequest req;
    req.head = exchange == 0 ? (flags & 1) != 0 : ((flags >> (4 + exchange % 4)) & 1) != 0;
    req.http10 = (flags & 2) != 0;
    req.websocket = (flags & 4) != 0 && !req.http10;
    req.refuse_5xx = (flags & 8) != 0;
    req.client_keep_alive = !req.http10;
    req.request_id = "rid";
    relay.Begin(req, &tap);
    client.Expect(req.head);
    const int finals_before = client.finals();
    std::string relayed;
    ResponseRelay::Event ev = ResponseRelay::Event::kNeedMore;
    bool eof = false;
    while (ev == ResponseRelay::Event::kNeedMore) {
      if (rpos == wpos) {
        if (wpos == n) {
          eof = true;
          ev = relay.Finish();
          break;
        }
        // Reads of 1..64 bytes, or everything at once, by the seed.
        size_t piece = (read_seed & 0x80) ? n : 1 + ((read_seed * 7 + step++ * 13) % 64);
        wpos = std::min(n, wpos + piece);
      }
      size_t used = 0;
      ev = relay.Feed(base, rpos, wpos, &used);
      FUZZ_CHECK(used <= wpos - rpos);
      rpos += used;
      if (ev == ResponseRelay::Event::kNeedMore) FUZZ_CHECK(rpos == wpos);
      relayed += relay.out();
      relay.out().clear();
    }
    relayed += relay.out();
    relay.out().clear();

    if (ev == ResponseRelay::Event::kRefused) {
      FUZZ_CHECK(req.refuse_5xx && relay.status() >= 500);
      FUZZ_CHECK(client.Read(relayed));  // interim answers at most
      FUZZ_CHECK(client.finals() == finals_before);
      return 0;
    }
    if (ev != ResponseRelay::Event::kDone) return 0;  // the connection fails: both are closed

    if (relay.tunnel()) {
      FUZZ_CHECK(req.websocket);
      FUZZ_CHECK(relay.status() == 101);
      FUZZ_CHECK(!relay.Reusable(wpos - rpos));
      FUZZ_CHECK(relayed.find("HTTP/1.1 101 ") != std::string::npos);
      return 0;
    }
    // The client reads exactly one more final answer, the one relayed.
    FUZZ_CHECK(client.Read(relayed));
    bool to_eof = false;
    if (!relay.client_keep_alive() && !req.head && client.finals() == finals_before) {
      FUZZ_CHECK(client.Finish());  // a body to the end of the connection
      to_eof = true;
    }
    FUZZ_CHECK(client.finals() == finals_before + 1);
    FUZZ_CHECK(client.status() == relay.status());
    FUZZ_CHECK(client.TakeBody() == tap.body);
    FUZZ_CHECK(to_eof || client.Idle());
    if (eof || !relay.client_keep_alive()) return 0;
    const bool bodiless = req.head || relay.status() == 204 || relay.status() == 304;
    if (!relay.Reusable(wpos - rpos)) return 0;
    // Reused only with nothing read past the answer; a bodiless answer
    // that was offered for reuse carried no length it could have meant.
    FUZZ_CHECK(rpos == wpos);
    if (bodiless) FUZZ_CHECK(relayed.find("\r\nTransfer-Encoding:") == std::string::npos);
  }
  return 0;
}
