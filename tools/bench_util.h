// What the benchmark programs share: percentiles, and the machine's floor
// for a synced commit, printed beside their figures because it differs
// between machines (0.14 ms on one, 0.5 ms on another) and bounds every
// synced figure.
#ifndef CDE_TOOLS_BENCH_UTIL_H_
#define CDE_TOOLS_BENCH_UTIL_H_

#include <string>
#include <vector>

namespace cde {

struct FdatasyncLatency {
  double p50_ms = 0;
  double p99_ms = 0;
};

// write(300 bytes) + fdatasync, `n` times, each timed: appends to a
// scratch file in `dir` (removed after). Zeros if it cannot be written.
FdatasyncLatency BareFdatasync(const std::string& dir, int n);
// The same over a file written (and synced) full of zeros first: each write
// lands on blocks the file already has, so fdatasync flushes data and no
// size or extent change (what a WAL written over a spare pays).
FdatasyncLatency BareFdatasyncOverwrite(const std::string& dir, int n);

// The p-th quantile (0..1) of `v`, which it sorts; 0 if empty.
double Percentile(std::vector<double>& v, double p);

}  // namespace cde

#endif  // CDE_TOOLS_BENCH_UTIL_H_
