// Fuzzes request parsing (MessageParser, kRequest): heads, bodies (chunked,
// Content-Length), pipelining, in 1..3 pieces. See message_driver.h.
#include "message_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strangler::fuzz::FuzzMessage(strangler::MessageType::kRequest, data, size);
  return 0;
}
