#include "metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace strangler {
namespace {

// /proc/self/stat's fields after the command name (which may hold spaces
// and parentheses: it ends at the last ')'); fields[0] is field 3, state.
bool StatFields(std::vector<std::string>* fields) {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string f;
  while (rest >> f) fields->push_back(f);
  return fields->size() >= 22;
}

// Seconds since the epoch at boot (/proc/stat's btime), or -1.
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && (in >> value)) return value;
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

int OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;  // the directory's own descriptor
}

}  // namespace

void AppendProcessMetrics(Exposition* out) {
  using Type = Exposition::Type;
  std::vector<std::string> f;
  if (StatFields(&f)) {
    // Field n of stat(5) is f[n - 3].
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out->Family("process_cpu_seconds_total", Type::kCounter,
                "Total user and system CPU time spent in seconds.");
    out->Sample((std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks);
    out->Family("process_virtual_memory_bytes", Type::kGauge, "Virtual memory size in bytes.");
    out->Sample(std::stod(f[23 - 3]));
    out->Family("process_resident_memory_bytes", Type::kGauge, "Resident memory size in bytes.");
    out->Sample(std::stod(f[24 - 3]) * page);
    double boot = BootTime();
    if (boot >= 0) {
      out->Family("process_start_time_seconds", Type::kGauge,
                  "Start time of the process since unix epoch in seconds.");
      out->Sample(boot + std::stod(f[22 - 3]) / ticks);
    }
  }
  int fds = OpenFds();
  if (fds >= 0) {
    out->Family("process_open_fds", Type::kGauge, "Number of open file descriptors.");
    out->Sample(fds);
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out->Family("process_max_fds", Type::kGauge, "Maximum number of open file descriptors.");
    out->Sample(lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(lim.rlim_cur));
  }
}

}  // namespace strangler
