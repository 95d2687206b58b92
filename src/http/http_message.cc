#include "http/http_message.h"

#include <cstring>

namespace strangler {
namespace {

bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

MessageParser* Self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

// llhttp checks the request line, headers and framing; the method we check
// ourselves (any token, as RFC 9110 allows), so llhttp is shown this one,
// whose request framing is the generic one (Content-Length or chunked);
// CONNECT alone is shown as itself (see StartRequest).
constexpr char kStandInMethod[] = "PUT ";

}  // namespace

MessageParser::MessageParser(MessageType type, MessageHandler* handler)
    : type_(type), handler_(handler) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &MessageParser::OnMessageBegin;
  settings_.on_url = &MessageParser::OnUrl;
  settings_.on_status = &MessageParser::OnStatus;
  settings_.on_header_field = &MessageParser::OnHeaderField;
  settings_.on_header_value = &MessageParser::OnHeaderValue;
  settings_.on_header_value_complete = &MessageParser::OnHeaderValueComplete;
  settings_.on_headers_complete = &MessageParser::OnHeadersComplete;
  settings_.on_body = &MessageParser::OnBody;
  settings_.on_message_complete = &MessageParser::OnMessageComplete;
  settings_.on_chunk_header = &MessageParser::OnChunkHeader;
  llhttp_init(&parser_, type == MessageType::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  headers_.reserve(32);
}

void MessageParser::Reset() {
  llhttp_init(&parser_, type_ == MessageType::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  at_start_ = true;
  in_head_ = false;
  faking_ = false;
  error_ = nullptr;
  refused_ = nullptr;
  error_code_ = HPE_OK;
  headers_.clear();
}

int MessageParser::OnMessageBegin(llhttp_t* p) {
  MessageParser* self = Self(p);
  self->headers_.clear();
  self->target_ = Span{};
  self->reason_ = Span{};
  self->value_open_ = false;
  self->trailer_name_len_ = 0;
  self->in_head_ = true;
  return 0;
}

int MessageParser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  uint32_t off = static_cast<uint32_t>(at - self->base_);
  if (self->target_.len == 0) self->target_.off = off;
  self->target_.len = off + static_cast<uint32_t>(len) - self->target_.off;
  return 0;
}

int MessageParser::OnStatus(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  uint32_t off = static_cast<uint32_t>(at - self->base_);
  if (self->reason_.len == 0) self->reason_.off = off;
  self->reason_.len = off + static_cast<uint32_t>(len) - self->reason_.off;
  return 0;
}

int MessageParser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  if (!self->in_head_) {  // a trailer: no offsets, the buffer may have moved
    for (size_t i = 0; i < len; ++i) {
      if (!IsTchar(at[i])) {
        return Refuse(p, "invalid trailer name");
      }
    }
    self->trailer_name_len_ += len;
    return 0;
  }
  uint32_t off = static_cast<uint32_t>(at - self->base_);
  if (self->headers_.empty() || self->value_open_ ||
      self->headers_.back().value.off != 0) {
    if (self->headers_.size() >= kMaxHeaders) {
      return Refuse(p, "too many headers");
    }
    self->value_open_ = false;
    self->headers_.push_back(HeaderSpan{{off, 0}, {0, 0}});
  }
  Span& name = self->headers_.back().name;
  name.len = off + static_cast<uint32_t>(len) - name.off;
  return 0;
}

int MessageParser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  if (!self->in_head_) return 0;  // trailer values are not forwarded
  uint32_t off = static_cast<uint32_t>(at - self->base_);
  Span& value = self->headers_.back().value;
  if (value.off == 0) value.off = off;
  value.len = off + static_cast<uint32_t>(len) - value.off;
  return 0;
}

int MessageParser::OnHeaderValueComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  if (!self->in_head_) {
    bool named = self->trailer_name_len_ > 0;
    self->trailer_name_len_ = 0;
    if (!named) {
      return Refuse(p, "invalid trailer name");
    }
    return 0;
  }
  if (self->headers_.empty()) return 0;
  HeaderSpan& h = self->headers_.back();
  // An empty value gets no OnHeaderValue; mark the header closed either way.
  if (h.value.off == 0) {
    h.value.off = h.name.off + h.name.len;
    h.value.len = 0;
  }
  self->value_open_ = true;
  // llhttp lets a name be empty or hold spaces, and joins obsolete line
  // folding into the value. Neither may be forwarded: refuse (RFC 9112 5.1,
  // 5.2).
  std::string_view name = h.name.in(self->base_);
  bool token = !name.empty();
  for (char c : name) token = token && IsTchar(c);
  if (!token) {
    return Refuse(p, "invalid header name");
  }
  // From the end of the name: a fold right after the colon ("Host:\r\n x")
  // leaves the value's first piece after the line break. (An empty value
  // may be placed past its own line end: nothing to look at then.)
  const uint32_t after_name = h.name.off + h.name.len;
  const std::string_view name_to_value_end =
      h.value.len == 0 ? std::string_view()
                       : std::string_view(self->base_ + after_name,
                                          h.value.off + h.value.len - after_name);
  bool line_break = false;  // (a plain loop: find_first_of calls memchr per byte)
  for (char c : name_to_value_end) line_break = line_break || c == '\r' || c == '\n';
  if (line_break) {
    return Refuse(p, "obsolete line folding in a header value");
  }
  return 0;
}

int MessageParser::OnHeadersComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  self->in_head_ = false;
  if (self->type_ == MessageType::kResponse && self->status() < 100) {
    return Refuse(p, "status code is not three digits", -1);
  }
  // llhttp takes "CONNECT \r\n" with no target at all.
  if (self->type_ == MessageType::kRequest && self->target_.len == 0) {
    return Refuse(p, "empty request target", -1);
  }
  int rc = self->handler_->OnHead();
  if (rc != 0) return rc;
  return self->type_ == MessageType::kRequest ? HPE_PAUSED : 0;
}

int MessageParser::OnBody(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  // llhttp flushes an open body span on every execute, even with no new
  // bytes; an empty piece means nothing (and re-chunked, "0" would end it).
  if (len == 0) return 0;
  if (!self->handler_->OnBody(at, len)) {
    return Refuse(p, "body sink failed");
  }
  return 0;
}

int MessageParser::OnChunkHeader(llhttp_t* p) {
  // llhttp takes any size that fits 64 bits; one that no off_t can hold is
  // refused, as nginx and HAProxy refuse it (else the peer waits for an
  // impossible amount of data).
  if (p->content_length > kMaxChunkBytes) {
    return Refuse(p, "chunk size too large");
  }
  return 0;
}

int MessageParser::OnMessageComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  // Interim (1xx) responses are followed by the real one: keep going, in
  // llhttp's own state (the next response may already be half parsed).
  // A 101 ends the HTTP part of the connection: what follows is the new
  // protocol's, never parsed.
  if (self->type_ == MessageType::kResponse && self->status() < 200 && self->status() != 101) {
    return 0;
  }
  self->at_start_ = true;
  return HPE_PAUSED;
}

int MessageParser::Refuse(llhttp_t* p, const char* why, int rc) {
  Self(p)->refused_ = why;
  return rc;
}

const char* MessageParser::StopReason() const {
  return refused_ != nullptr ? refused_ : llhttp_get_error_reason(&parser_);
}

MessageParser::Event MessageParser::Fail(const char* why, llhttp_errno_t code) {
  error_ = why;
  error_code_ = code;
  return Event::kError;
}

MessageParser::Event MessageParser::StartRequest(const char* base, size_t from, size_t to,
                                                 size_t* used) {
  size_t i = from;
  while (i < to && (base[i] == '\r' || base[i] == '\n')) ++i;  // stray CRLF between requests
  size_t tok = i;
  while (i < to && IsTchar(base[i])) ++i;
  if (i == to) {
    *used = tok - from;
    if (i - tok > 64) return Fail("method too long", HPE_INVALID_METHOD);
    return Event::kNeedMore;
  }
  if (base[i] != ' ' || i == tok) return Fail("invalid method", HPE_INVALID_METHOD);
  // CONNECT with an authority target ("host:443", which llhttp's strict URL
  // parser takes only after CONNECT) is shown to llhttp as itself; with any
  // other target, as the stand-in. So its target's first byte is needed.
  const bool connect_method = std::string_view(base + tok, i - tok) == "CONNECT";
  if (connect_method && i + 1 >= to) {
    *used = tok - from;
    return Event::kNeedMore;
  }
  method_ = Span{static_cast<uint32_t>(tok), static_cast<uint32_t>(i - tok)};
  head_start_ = tok;
  at_start_ = false;
  faking_ = true;
  static constexpr char kConnect[] = "CONNECT ";
  const bool connect = connect_method && base[i + 1] != '/' && base[i + 1] != '*';
  const char* stand_in = connect ? kConnect : kStandInMethod;
  const size_t stand_in_len = connect ? sizeof(kConnect) - 1 : sizeof(kStandInMethod) - 1;
  base_ = stand_in;
  llhttp_errno_t rc = llhttp_execute(&parser_, stand_in, stand_in_len);
  faking_ = false;
  if (rc != HPE_OK) return Fail(StopReason(), rc);
  *used = i + 1 - from;
  return Event::kNeedMore;
}

MessageParser::Event MessageParser::Execute(const char* base, size_t from, size_t to,
                                            size_t* used) {
  *used = 0;
  if (error_code_ != HPE_OK) return Event::kError;
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&parser_);
  size_t pre = 0;
  if (at_start_) {
    if (type_ == MessageType::kRequest) {
      Event e = StartRequest(base, from, to, &pre);
      if (e == Event::kError || at_start_) {
        *used = pre;
        return e;
      }
      from += pre;
    } else {
      at_start_ = false;
    }
  }
  base_ = base;
  llhttp_errno_t rc = llhttp_execute(&parser_, base + from, to - from);
  size_t consumed = to - from;
  if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
    consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - (base + from));
  }
  *used = pre + consumed;
  if (rc == HPE_OK) return Event::kNeedMore;
  if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
    return in_head_ || !at_start_ ? Event::kHeadDone : Event::kMessageDone;
  }
  return Fail(StopReason(), rc);
}

MessageParser::Event MessageParser::Finish() {
  llhttp_errno_t rc = llhttp_finish(&parser_);
  if (rc == HPE_OK) return at_start_ ? Event::kMessageDone : Event::kNeedMore;
  if (rc == HPE_PAUSED) return Event::kMessageDone;
  return Fail(StopReason(), rc);
}

}  // namespace strangler
