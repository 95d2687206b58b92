// MessageParser: one direction of one HTTP/1.1 connection, parsed with llhttp
// built in strict mode (LLHTTP_STRICT_MODE: the CRLF after chunk data is
// checked, bare LF line ends refused) and no lenient flags. The caller owns the byte buffer; the
// parser reports the request line and headers as offsets into it, so the
// buffer may grow (and move) while a head is being read, but bytes of the
// current head must stay in place until the head has been handled.
// Not thread-safe: one parser per connection direction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <llhttp.h>

#include "base/text.h"

namespace strangler {

struct Span {
  uint32_t off = 0;
  uint32_t len = 0;
  std::string_view in(const char* base) const { return {base + off, len}; }
};

struct HeaderSpan {
  Span name;
  Span value;
};

// Receives what the parser finds. Return values follow llhttp's conventions.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  // The head is complete (spans valid). Return 0 to go on, 1 when the message
  // has no body whatever its headers say (a response to HEAD, 1xx, 204,
  // 304), -1 to fail. Requests pause after it; a 101 response ends the
  // message stream (kMessageDone, nothing after it is parsed).
  virtual int OnHead() = 0;
  // A piece of the decoded body (chunk framing removed). False to fail.
  virtual bool OnBody(const char* data, size_t len) = 0;
};

enum class MessageType { kRequest, kResponse };

class MessageParser {
 public:
  enum class Event {
    kNeedMore,     // all given bytes consumed; read more
    kHeadDone,     // (requests) head handled; call Execute again for the body
    kMessageDone,  // a whole message; bytes after it belong to the next
    kError,
  };

  static constexpr size_t kMaxHeaders = 256;
  // Largest chunk size taken (2^63 - 1, what a signed 64-bit length holds).
  static constexpr uint64_t kMaxChunkBytes = 0x7fffffffffffffffULL;

  MessageParser(MessageType type, MessageHandler* handler);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Forgets everything; ready for a new connection's first message.
  void Reset();

  // Parses base[from, to). *used = bytes consumed (parsing resumes at
  // from + *used next time; base may differ then, offsets stay relative).
  Event Execute(const char* base, size_t from, size_t to, size_t* used);
  // The peer closed: completes a message delimited by EOF.
  Event Finish();

  // Head of the current message.
  Span method() const { return method_; }   // requests
  Span target() const { return target_; }   // requests: raw request-target
  Span reason() const { return reason_; }   // responses: reason phrase
  int status() const { return llhttp_get_status_code(const_cast<llhttp_t*>(&parser_)); }
  int http_major() const { return parser_.http_major; }
  int http_minor() const { return parser_.http_minor; }
  const std::vector<HeaderSpan>& headers() const { return headers_; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  bool has_content_length() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  uint64_t content_length() const { return parser_.content_length; }
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool upgrade() const { return parser_.upgrade != 0; }
  // True when the body runs to EOF (a response without length or chunking).
  bool needs_eof() const { return llhttp_message_needs_eof(&parser_) != 0; }
  // Where the current head began (requests), for the header-size limit.
  size_t head_start() const { return head_start_; }
  bool in_head() const { return in_head_; }
  const char* error() const { return error_; }
  llhttp_errno_t error_code() const { return error_code_; }

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnStatus(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);
  static int OnChunkHeader(llhttp_t* p);
  Event Fail(const char* why, llhttp_errno_t code);
  // A callback's refusal: its reason is kept here, not given to llhttp,
  // which replaces a failing callback's reason with its own ("`on_..._
  // complete` callback error"). Returns `rc`.
  static int Refuse(llhttp_t* p, const char* why, int rc = HPE_USER);
  // Why llhttp stopped: a callback's own reason first.
  const char* StopReason() const;
  Event StartRequest(const char* base, size_t from, size_t to, size_t* used);

  MessageType type_;
  MessageHandler* handler_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  const char* base_ = nullptr;  // buffer of the Execute in progress
  bool faking_ = false;         // feeding llhttp our stand-in method
  bool at_start_ = true;        // next byte starts a message
  bool in_head_ = false;
  bool value_open_ = false;
  // Trailer section: fields are checked piece by piece and dropped (never
  // forwarded), since the caller may move its buffer once the head is done.
  size_t trailer_name_len_ = 0;
  size_t head_start_ = 0;
  Span method_, target_, reason_;
  std::vector<HeaderSpan> headers_;
  const char* error_ = nullptr;
  const char* refused_ = nullptr;  // set by Refuse()
  llhttp_errno_t error_code_ = HPE_OK;
};

}  // namespace strangler
