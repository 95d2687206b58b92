// The answers the router makes itself (proxy/error_reply.h), byte for byte:
// the status line for the client's version, the JSON body, the backend named
// only for a 502 or 504, no body for HEAD.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/error_reply.h"

namespace strangler {
namespace {

TEST_CASE("error_reply: each status the router sends has its reason phrase") {
  struct Case {
    int status;
    std::string text;
  };
  for (const Case& c : std::vector<Case>{{400, "Bad Request"},
                                         {405, "Method Not Allowed"},
                                         {408, "Request Timeout"},
                                         {413, "Content Too Large"},
                                         {414, "URI Too Long"},
                                         {431, "Request Header Fields Too Large"},
                                         {502, "Bad Gateway"},
                                         {503, "Service Unavailable"},
                                         {504, "Gateway Timeout"},
                                         {418, "Error"},
                                         {0, "Error"}}) {
    INFO(c.status);
    CHECK(std::string(StatusText(c.status)) == c.text);
  }
}

TEST_CASE("error_reply: a 502 names its backend; a 4xx and a 503 never do") {
  struct Case {
    int status;
    bool names_backend;
  };
  for (const Case& c : std::vector<Case>{{502, true}, {504, true}, {400, false}, {503, false}}) {
    INFO(c.status);
    ErrorReply reply;
    reply.status = c.status;
    reply.message = "why \"quoted\"";
    reply.backend = "be";
    reply.request_id = "rid-1";
    const std::string bytes = RenderErrorReply(reply);
    const size_t end = bytes.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    const std::string body = bytes.substr(end + 4);
    CHECK(bytes.rfind("HTTP/1.1 " + std::to_string(c.status) + " " + StatusText(c.status) + "\r\n",
                      0) == 0);
    CHECK(bytes.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n") !=
          std::string::npos);
    CHECK(bytes.find("\r\nX-Request-Id: rid-1\r\n") != std::string::npos);
    CHECK(bytes.find("Connection: close") == std::string::npos);
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), body);
    CHECK(j["status"] == c.status);
    CHECK(j["error"] == StatusText(c.status));
    CHECK(j["message"] == "why \"quoted\"");
    CHECK(j["request_id"] == "rid-1");
    if (c.names_backend) {
      CHECK(j["backend"] == "be");
    } else {
      CHECK(j["backend"].is_null());
    }
  }
}

TEST_CASE("error_reply: HTTP/1.0, Connection: close, HEAD and no request id") {
  ErrorReply reply;
  reply.status = 400;
  reply.message = "m";
  reply.http10 = true;
  reply.close = true;
  reply.head_only = true;
  const std::string bytes = RenderErrorReply(reply);
  CHECK(bytes.rfind("HTTP/1.0 400 Bad Request\r\n", 0) == 0);
  CHECK(bytes.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(bytes.find("X-Request-Id") == std::string::npos);
  // HEAD: the length of the body it stands for, and nothing after the head.
  CHECK(bytes.size() == bytes.find("\r\n\r\n") + 4);
  reply.head_only = false;
  const std::string full = RenderErrorReply(reply);
  const std::string body = full.substr(full.find("\r\n\r\n") + 4);
  CHECK(bytes.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
}

TEST_CASE("error_reply: the busy 503 closes and asks to retry") {
  const std::string& busy = BusyReply();
  CHECK(busy.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(busy.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(busy.find("\r\nRetry-After: 1\r\n") != std::string::npos);
  const std::string body = busy.substr(busy.find("\r\n\r\n") + 4);
  CHECK(busy.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  REQUIRE(!j.is_discarded());
  CHECK(j["message"] == "too many clients");
}

}  // namespace
}  // namespace strangler
