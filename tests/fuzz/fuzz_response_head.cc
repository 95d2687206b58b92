// Fuzzes response parsing (MessageParser, kResponse): status lines, 1xx
// interim responses, bodies by length, chunks or EOF, responses to HEAD
// (flag bit 0x80 of byte 0). See message_driver.h.
#include "message_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strangler::fuzz::FuzzMessage(strangler::MessageType::kResponse, data, size);
  return 0;
}
