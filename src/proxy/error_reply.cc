#include "proxy/error_reply.h"

#include "decisions/json_text.h"

namespace strangler {

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 408:
      return "Request Timeout";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

std::string RenderErrorReply(const ErrorReply& reply) {
  const int status = reply.status;
  std::string body = "{\"error\":";
  AppendJsonString(StatusText(status), &body);
  body += ",\"status\":" + std::to_string(status) + ",\"message\":";
  AppendJsonString(reply.message, &body);
  body += ",\"backend\":";
  if (reply.backend.empty() || status < 500 || status == 503) {
    body += "null";
  } else {
    AppendJsonString(reply.backend, &body);
  }
  body += ",\"request_id\":";
  AppendJsonString(reply.request_id, &body);
  body += "}\n";
  std::string out =
      std::string(reply.http10 ? "HTTP/1.0 " : "HTTP/1.1 ") + std::to_string(status) + " " +
      StatusText(status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n";
  if (!reply.request_id.empty()) out += "X-Request-Id: " + std::string(reply.request_id) + "\r\n";
  if (reply.close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!reply.head_only) out += body;
  return out;
}

const std::string& BusyReply() {
  static const std::string kBusy = [] {
    const std::string body =
        "{\"error\":\"Service Unavailable\",\"message\":\"too many clients\"}\n";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
           "application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + body;
  }();
  return kBusy;
}

const std::string& PlainHttpOnTlsReply() {
  static const std::string kReply = [] {
    const std::string body =
        "{\"error\":\"Bad Request\",\"message\":\"this port speaks TLS: use https://\"}\n";
    return "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }();
  return kReply;
}

}  // namespace strangler
