// Head limits are enforced while the head is still arriving: a client that
// sends a head over --max-header-kb, or a target over 8 KiB, gets 431 or 414
// at once, without the router waiting for (or buffering) the rest of it.
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: a head over the limit is refused before it ends: 431 and 414, nothing forwarded") {
  TwoBackends t({"--max-header-kb", "2"});
  // No blank line ends these heads: the answer cannot wait for one.
  ExpectRefused(t, {{"3 KiB of one header, unfinished",
                     "GET /new/x HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(3000, 'b'), 431},
                    {"a 9 KiB target, its request line unfinished",
                     "GET /new/" + std::string(9000, 'a'), 414}});
  // The router still serves, to the backend the path names.
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  HttpResponse r = c.Get("/new/after");
  REQUIRE_MESSAGE(r.ok, r.error);
  t.ExpectOnly(r, t.fresh);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
