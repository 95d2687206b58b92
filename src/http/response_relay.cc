#include "http/response_relay.h"

#include <cstdio>

#include "http/header_fields.h"

namespace strangler {

namespace {

// Appends the codings of one Transfer-Encoding value to *out, ", "-separated.
void AppendCodings(std::string_view value, std::string* out) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    std::string_view c = value.substr(start, comma - start);  // npos: to the end
    while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
    while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
    if (!c.empty()) {
      if (!out->empty()) out->append(", ");
      out->append(c);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

// How many of the ", "-separated codings are chunked.
int CountChunked(std::string_view codings) {
  int n = 0;
  size_t start = 0;
  while (start <= codings.size()) {
    size_t comma = codings.find(", ", start);
    if (IEquals(codings.substr(start, comma - start), "chunked")) ++n;
    if (comma == std::string_view::npos) break;
    start = comma + 2;
  }
  return n;
}

void DropLastCoding(std::string* codings) {
  size_t comma = codings->rfind(", ");
  codings->resize(comma == std::string::npos ? 0 : comma);
}

}  // namespace

ResponseRelay::ResponseRelay() : handler_(this), parser_(MessageType::kResponse, &handler_) {}

void ResponseRelay::Begin(const RelayRequest& req, RelayObserver* observer) {
  parser_.Reset();
  req_ = req;
  observer_ = observer;
  out_.clear();
  status_ = 0;
  refused_ = tunnel_ = rechunk_ = no_reuse_ = started_ = false;
  client_keep_alive_ = req.client_keep_alive;
}

ResponseRelay::Event ResponseRelay::Ended() {
  if (refused_) return Event::kRefused;
  if (rechunk_) out_.append("0\r\n\r\n");
  return Event::kDone;
}

ResponseRelay::Event ResponseRelay::Feed(const char* base, size_t from, size_t to,
                                         size_t* used) {
  base_ = base;
  switch (parser_.Execute(base, from, to, used)) {
    case MessageParser::Event::kMessageDone: return Ended();
    case MessageParser::Event::kError: return refused_ ? Event::kRefused : Event::kError;
    default: return Event::kNeedMore;
  }
}

ResponseRelay::Event ResponseRelay::Finish() {
  if (!started_ || tunnel_) return Event::kError;
  return parser_.Finish() == MessageParser::Event::kMessageDone ? Ended() : Event::kError;
}

bool ResponseRelay::Reusable(size_t leftover) const {
  return leftover == 0 && !no_reuse_ && !tunnel_ && parser_.keep_alive();
}

int ResponseRelay::OnHead() {
  const char* base = base_;
  const int status = parser_.status();
  // Switching protocols only to what was asked for: a WebSocket upgrade,
  // which the answer must name (a bare 101 may be followed by anything).
  if (status == 101) {
    bool names_websocket = false;
    for (const HeaderSpan& h : parser_.headers()) {
      if (IEquals(h.name.in(base), "upgrade") && ListsToken(h.value.in(base), "websocket")) {
        names_websocket = true;
      }
    }
    if (!req_.websocket || !names_websocket) return -1;
  }
  // Bodiless answers (RFC 9112 6.3): whatever length they carry, nothing
  // follows their head. A length there means the backend and the router may
  // disagree on where the next answer starts: that connection is not reused.
  const bool bodiless = req_.head || status < 200 || status == 204 || status == 304;
  if (bodiless && (parser_.chunked() || (parser_.has_content_length() && parser_.content_length() > 0))) {
    no_reuse_ = true;
  }
  // Chunked applied twice ("chunked, chunked") is no valid answer (RFC 9112
  // 6.1): the parser undoes it once, so relayed it would name a coding
  // that is not there. 502, as HAProxy answers it.
  std::string codings;  // transfer codings the router does not undo, in order
  for (const HeaderSpan& h : parser_.headers()) {
    if (IEquals(h.name.in(base), "transfer-encoding")) AppendCodings(h.value.in(base), &codings);
  }
  // Likewise chunked named where the parser found no chunked body (not the
  // last coding: "chunked, gzip", or "chunked," with an empty element after
  // it): relayed, chunked would be named over a body chunked anew.
  const int chunked = CountChunked(codings);
  if (chunked > 1 || (chunked == 1 && !parser_.chunked())) return -1;
  if (status >= 500 && req_.refuse_5xx) {
    status_ = status;
    refused_ = true;
    return -1;  // not relayed: the exchange ends and the request falls back
  }
  if (status < 200 && status != 101 && req_.http10) return 1;  // HTTP/1.0 knows no interim answers
  out_.append(req_.http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  // Three digits: the parser refuses a status under 100, llhttp one over 999.
  const char code[4] = {static_cast<char>('0' + status / 100 % 10),
                        static_cast<char>('0' + status / 10 % 10),
                        static_cast<char>('0' + status % 10), ' '};
  out_.append(code, sizeof(code));
  out_.append(parser_.reason().in(base));
  out_.append("\r\n");
  ConnectionTokens tokens;
  for (const HeaderSpan& h : parser_.headers()) {
    if (IEquals(h.name.in(base), "connection")) tokens.Add(h.value.in(base));
  }
  upstream_has_rid_ = false;
  for (const HeaderSpan& h : parser_.headers()) {
    std::string_view name = h.name.in(base);
    // Content-Length is written from what was parsed (below), so that a
    // Connection header naming it cannot leave an answer unframed.
    if (IsHopByHop(name) || tokens.Names(name) || IEquals(name, "content-length")) continue;
    if (IEquals(name, "x-request-id")) upstream_has_rid_ = true;
    AppendHeader(&out_, name, h.value.in(base));
  }
  started_ = true;
  if (status == 101) {
    out_.append("Connection: upgrade\r\nUpgrade: websocket\r\n");
    if (!upstream_has_rid_) AppendHeader(&out_, "X-Request-Id", req_.request_id);
    out_.append("\r\n");
    status_ = status;
    tunnel_ = true;
    return 1;
  }
  if (status < 200) {  // interim: passed on, then the real answer
    out_.append("\r\n");
    return 1;
  }
  status_ = status;
  if (observer_) observer_->OnFinalHead(parser_, base);
  rechunk_ = false;
  if (status == 204) {
    // No length at all (RFC 9110 8.6).
  } else if (parser_.has_content_length()) {
    // For HEAD and 304, the length of the body it stands for; else the body's.
    char len[40];
    int ln = std::snprintf(len, sizeof(len), "Content-Length: %llu\r\n",
                           static_cast<unsigned long long>(parser_.content_length()));
    out_.append(len, static_cast<size_t>(ln));
  } else if (!bodiless) {
    if (req_.http10) {
      client_keep_alive_ = false;  // the end of the body is the end of the connection
    } else {
      // The body is passed on re-chunked; a coding the backend applied
      // before chunked (gzip, chunked) is still on it and stays named.
      if (parser_.chunked()) DropLastCoding(&codings);  // undone by the parser
      out_.append("Transfer-Encoding: ");
      if (!codings.empty()) out_.append(codings).append(", ");
      out_.append("chunked\r\n");
      rechunk_ = true;
    }
  }
  if (!upstream_has_rid_) AppendHeader(&out_, "X-Request-Id", req_.request_id);
  if (!client_keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  return bodiless ? 1 : 0;
}

bool ResponseRelay::OnBody(const char* data, size_t len) {
  if (observer_) observer_->OnBodyPiece(data, len);
  if (rechunk_) {
    AppendChunk(&out_, data, len);
  } else {
    out_.append(data, len);
  }
  return true;
}

}  // namespace strangler
