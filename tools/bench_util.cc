#include "tools/bench_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace cde {

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

FdatasyncLatency BareFdatasync(const std::string& dir, int n) {
  using Clock = std::chrono::steady_clock;
  const std::string path = dir + "/fdatasync.probe";
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return {};
  const std::string payload(300, 'x');
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

}  // namespace cde
