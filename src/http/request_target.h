// What the router accepts as a request target and a Host (RFC 9112 3.2):
// pure checks on the bytes of one request head, shared by the data plane and
// its tests. Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace strangler {

// Why a request target must be refused outright (no fragment; no whitespace
// or control byte can be part of a target), or nullptr when it may go on.
const char* BadTarget(std::string_view target);

// A Host value a backend can take for what it is (RFC 9112 3.2, RFC 3986
// 3.2.2): uri-host [ ":" port ]. Anything else ("a, b", "x/admin",
// "user@x") is refused, so that no backend routes or caches by a Host the
// router did not understand.
bool ValidHost(std::string_view host);

// True when a path holds an encoded '/' or '\' (%2F, %5C, any case).
bool HasEncodedSlash(std::string_view path);
// True when a path holds an encoded control byte (%00-%1F, %7F).
bool HasEncodedControl(std::string_view path);

// A request target split for forwarding: routed on its path, forwarded in
// origin-form. An absolute-form target ("http://host/p?q") gives its
// authority as the Host the backend gets (RFC 9112 3.2.2: a proxy ignores
// the Host it was sent, so no backend routes or caches by a Host that the
// target contradicts).
struct TargetParts {
  std::string_view path_and_query;  // origin-form: "/p?q"
  std::string_view authority;       // absolute-form only: "host[:port]"
  bool absolute = false;
  const char* error = nullptr;      // why the target is refused (400), else nullptr
};

// Splits `target` ("/p?q", "*", or "http[s]://host[/p][?q]"). For a target
// "http://x?q" the origin-form "/?q" is built in *scratch, which must outlive
// the views. CONNECT targets are not passed here.
TargetParts SplitTarget(std::string_view target, std::string* scratch);

}  // namespace strangler
