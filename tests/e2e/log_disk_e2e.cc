// A decision log whose disk fills: requests keep being served, the failure is
// reported once, and when writing resumes the number of lost lines is logged.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: a full log disk: serving goes on, the lost lines are counted when it resumes") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  std::string fs = fx.dir().File("logfs");
  REQUIRE(mkdir(fs.c_str(), 0755) == 0);
  // A small filesystem of our own to fill (needs root, as CI and the dev
  // machines run; elsewhere the test says why it cannot run).
  if (mount("tmpfs", fs.c_str(), "tmpfs", 0, "size=256k") != 0) {
    FAIL("cannot mount a tmpfs to fill (" << std::strerror(errno) << "): run as root");
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{fs};
  // serve writes its log at fx.log_path(): point that into the small disk.
  std::string log = fs + "/decisions.log";
  REQUIRE(symlink(log.c_str(), fx.log_path().c_str()) == 0);
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 5; ++i) REQUIRE(c.Get("/before").status == 200);
  REQUIRE(fx.WaitForLogLines(5).size() == 5);  // on disk before it fills
  // Pad the log to a page boundary with empty lines: the free tail of its last
  // tmpfs page would otherwise take the first few lines (or a small first
  // batch, when the router is slow, as under ASan) after the disk is full.
  {
    struct stat st {};
    REQUIRE(stat(log.c_str(), &st) == 0);
    std::ofstream pad(log, std::ios::binary | std::ios::app);
    pad << std::string(static_cast<size_t>((4096 - st.st_size % 4096) % 4096), '\n');
    REQUIRE(pad.good());
  }

  // Fill the disk.
  std::string filler = fs + "/filler";
  {
    std::ofstream f(filler, std::ios::binary);
    std::string block(4096, 'f');
    for (int i = 0; i < 1024 && f.good(); ++i) f.write(block.data(), block.size());
  }
  int served = 0;
  for (int i = 0; i < 300; ++i) {
    HttpResponse r = c.Get("/while-full/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
    served += r.status == 200;
  }
  CHECK(served == 300);
  // The failure is reported (by the flusher, within its next batch or two).
  CHECK(PollUntil([&] {
    return fx.serve()->Stderr().find("decision log not written") != std::string::npos;
  }));

  // Space again: writing resumes and says how many lines were lost.
  REQUIRE(unlink(filler.c_str()) == 0);
  std::string err;
  PollUntil(
      [&] {
        REQUIRE(c.Get("/after").status == 200);
        err = fx.serve()->Stderr();
        return err.find("writable again") != std::string::npos;
      },
      kHangGuardMs, 50);
  MESSAGE(err);
  CHECK(err.find("writable again") != std::string::npos);
  const std::string kAgain = "writable again; ";
  const size_t again = err.find(kAgain);
  REQUIRE(again != std::string::npos);
  const int dropped = std::atoi(err.c_str() + again + kAgain.size());
  CHECK(err.find(" lines were dropped", again) != std::string::npos);
  CHECK(fx.StopServe(SIGTERM) == 0);
  std::string text = ReadFile(log);
  CHECK(text.find("\"/after\"") != std::string::npos);
  CHECK(text.find("\"/before\"") != std::string::npos);
  // Every line of the 300 is either in the file or counted as dropped. (How
  // many the flusher tried while the disk was full depends on when the space
  // came back: counted, not timed.)
  int written = 0;
  for (size_t at = text.find("\"/while-full/"); at != std::string::npos;
       at = text.find("\"/while-full/", at + 1)) {
    ++written;
  }
  MESSAGE(dropped << " lines dropped while the disk was full, " << written << " written after");
  CHECK(dropped > 0);
  CHECK(dropped + written == 300);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
