// ResponseRelay: one backend answer on its way to the client. It parses the
// bytes of an upstream connection (interim 1xx answers, then the final one)
// and writes what the client gets: the status line for the client's HTTP
// version, the end-to-end headers, and framing of the router's own making
// (Content-Length from the parsed length, chunked when the backend gave no
// length). It decides whether the upstream connection may carry another
// request. No sockets here: the caller reads and writes, so that the whole
// policy is tested and fuzzed on bytes (tests/fuzz/fuzz_response_relay.cc).
// Not thread-safe: one per client connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/http_message.h"

namespace strangler {

// What the relay needs to know of the request an answer is for.
struct RelayRequest {
  bool head = false;             // the method was HEAD: no body, whatever the headers say
  bool http10 = false;           // the client speaks HTTP/1.0
  bool websocket = false;        // the request asked to upgrade to WebSocket
  bool client_keep_alive = true; // the client connection may stay open after this answer
  bool refuse_5xx = false;       // a final 5xx is not relayed (the request falls back)
  std::string_view request_id;   // added as X-Request-Id when the backend sent none
};

// Hooks for the caller (the mirror's capture of the answer). Optional.
class RelayObserver {
 public:
  virtual ~RelayObserver() = default;
  // The final answer's head; `base` is the buffer the parser's spans point into.
  virtual void OnFinalHead(const MessageParser& parser, const char* base) = 0;
  // A piece of the final answer's decoded body.
  virtual void OnBodyPiece(const char* data, size_t len) = 0;
};

class ResponseRelay {
 public:
  enum class Event {
    kNeedMore,  // all bytes given were consumed; read more
    kDone,      // the final answer is complete (or a 101 switched protocols)
    kRefused,   // a final 5xx with refuse_5xx (status() says which); nothing was written
    kError,     // not a valid answer; what was written may be partial
  };

  ResponseRelay();
  ResponseRelay(const ResponseRelay&) = delete;
  ResponseRelay& operator=(const ResponseRelay&) = delete;

  // Starts reading the answer to `req` from a connection's next bytes.
  // `observer` (may be null) must outlive the exchange.
  void Begin(const RelayRequest& req, RelayObserver* observer);
  // Parses base[from, to) as MessageParser::Execute does (*used bytes).
  Event Feed(const char* base, size_t from, size_t to, size_t* used);
  // The backend closed the connection: completes an answer delimited by it.
  Event Finish();

  // Bytes for the client, appended as the answer is parsed; the caller
  // sends and clears them whenever it likes.
  std::string& out() { return out_; }
  // The final status (0 until its head); after kRefused, the refused one.
  int status() const { return status_; }
  // True once the backend switched to WebSocket (101): the bytes after the
  // head belong to the tunnel, and the connection is the tunnel's.
  bool tunnel() const { return tunnel_; }
  // False when the client connection must close after this answer.
  bool client_keep_alive() const { return client_keep_alive_; }
  // After kDone: whether the upstream connection may carry another request,
  // given that `leftover` bytes were read past the answer. Never when
  // anything followed the answer, when the answer said close, or when a
  // bodiless answer (1xx, 204, 304, to HEAD) carried a length: then the
  // backend and the router may disagree on where the next answer starts.
  bool Reusable(size_t leftover) const;
  // Set when the connection must not be reused whatever happens next (the
  // backend answered before it had the whole request).
  void ForbidReuse() { no_reuse_ = true; }
  bool started() const { return started_; }  // a head was written to out()
  bool in_head() const { return parser_.in_head(); }
  const char* error() const { return parser_.error(); }

 private:
  class Handler : public MessageHandler {
   public:
    explicit Handler(ResponseRelay* r) : r_(r) {}
    int OnHead() override { return r_->OnHead(); }
    bool OnBody(const char* data, size_t len) override { return r_->OnBody(data, len); }

   private:
    ResponseRelay* r_;
  };
  int OnHead();
  bool OnBody(const char* data, size_t len);
  Event Ended();

  Handler handler_;
  MessageParser parser_;
  RelayRequest req_;
  RelayObserver* observer_ = nullptr;
  const char* base_ = nullptr;  // buffer of the Feed in progress
  std::string out_;
  int status_ = 0;
  bool refused_ = false;
  bool tunnel_ = false;
  bool rechunk_ = false;
  bool no_reuse_ = false;
  bool client_keep_alive_ = true;
  bool started_ = false;
  bool upstream_has_rid_ = false;
};

}  // namespace strangler
