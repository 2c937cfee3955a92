#include "tools/bench_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace cde {

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

namespace {

FdatasyncLatency TimeFdatasyncs(const std::string& dir, int n, bool overwrite) {
  using Clock = std::chrono::steady_clock;
  const std::string path = dir + "/fdatasync.probe";
  // --data-dir may name a directory the store has not made yet.
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "fdatasync probe: cannot open %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return {};
  }
  const std::string payload(300, 'x');
  if (overwrite) {
    const std::string zeros(payload.size() * static_cast<size_t>(n), '\0');
    if (write(fd, zeros.data(), zeros.size()) < 0 || fdatasync(fd) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
      close(fd);
      unlink(path.c_str());
      return {};
    }
  }
  std::vector<double> latencies;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (write(fd, payload.data(), payload.size()) < 0) break;
    if (fdatasync(fd) != 0) break;
    latencies.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  close(fd);
  unlink(path.c_str());
  return {Percentile(latencies, 0.5), Percentile(latencies, 0.99)};
}

}  // namespace

FdatasyncLatency BareFdatasync(const std::string& dir, int n) {
  return TimeFdatasyncs(dir, n, /*overwrite=*/false);
}

FdatasyncLatency BareFdatasyncOverwrite(const std::string& dir, int n) {
  return TimeFdatasyncs(dir, n, /*overwrite=*/true);
}

}  // namespace cde
