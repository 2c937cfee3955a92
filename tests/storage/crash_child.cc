// The child of the crash test: commits saga transitions as fast as it can
// through the CommitWriter (synced, pipelined if asked) and reports every
// acknowledgement on fd 3 as one line: "ack <saga_id> <seq> <state>
// <idempotency_key|->". The parent kills it with SIGKILL at a random moment.
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <string>

#include "storage/commit_writer.h"
#include "storage/saga_id.h"
#include "storage/store.h"

using namespace cde;

namespace {

struct Saga {
  std::string id;
  uint64_t seq = 0;
  SagaState state = SagaState::kRunning;
  std::string idem;
  int steps = 0;
};

// The transition that moves `saga` on by one event, as the engine would.
Transition Advance(Saga& saga, std::mt19937& rng) {
  Transition t;
  const std::optional<SagaState> previous =
      saga.seq == 0 ? std::nullopt : std::optional(saga.state);
  ++saga.seq;
  LogRecord e{saga.id,
              saga.seq,
              1700000000000 + static_cast<int64_t>(saga.seq),
              "step_succeeded",
              {{"step", saga.seq}}};
  if (saga.seq == 1) {
    e.type = "saga_started";
    if (!saga.idem.empty()) t.PutIdempotency(saga.idem, saga.id);
  } else if (static_cast<int>(saga.seq) > saga.steps) {
    const SagaState ends[] = {SagaState::kCompleted, SagaState::kCompensated,
                              SagaState::kParked};
    saga.state = ends[rng() % 3];
    e.type = "saga_finished";
    t.DeleteTimer(saga.seq * 10, saga.id, "backoff");
    if (saga.state == SagaState::kParked) {
      t.PutDlq({.saga_id = saga.id,
                .workflow = "crash",
                .version = 1,
                .reason = "step_failed",
                .step = "s"});
    }
  } else if (rng() % 4 == 0) {
    saga.state = saga.state == SagaState::kRunning ? SagaState::kCompensating
                                                   : SagaState::kRunning;
    t.PutTimer({.due_ms = static_cast<int64_t>((saga.seq + 1) * 10),
                .saga_id = saga.id,
                .name = "backoff"});
  }
  if (saga.seq > 1) {
    t.DeleteTimer(static_cast<int64_t>(saga.seq * 10), saga.id, "backoff");
  }
  t.AppendLog(e);
  SagaRecord rec{
      saga.id,    "crash",   1,
      saga.state, 0,         0,
      saga.seq,   saga.idem, {{"pad", std::string(rng() % 200, 'x')}}};
  t.PutSaga(rec, previous);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5 ||
      (argc == 5 && std::string(argv[4]) != "pipeline")) {
    std::fprintf(stderr, "usage: %s DATA_DIR SEED [WAL_SPARE_KIB [pipeline]]\n",
                 argv[0]);
    return 2;
  }
  // With WAL_SPARE_KIB (> 0), the spare is written at open: the WAL this
  // process writes (and leaves when killed) starts as a file of zeros.
  StoreOptions options{.path = argv[1]};
  if (argc >= 4 && std::atoll(argv[3]) > 0) {
    options.wal_spare_bytes = static_cast<uint64_t>(std::atoll(argv[3])) << 10;
    options.wal_spare_at_open = true;
  }
  // "pipeline": each group is written while the one before it syncs
  // (CommitWriterOptions::pipeline), so most kills land during a sync.
  const bool pipeline = argc == 5;
  auto store = OpenRocksStore(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(std::atoi(argv[2]));
  SagaIdGenerator ids(static_cast<uint64_t>(std::atoi(argv[2])));
  CommitWriter writer(store->get(), {.pipeline = pipeline});

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Saga*> ready;  // sagas whose last transition was acknowledged
  auto report = [](const Saga& s) {
    char line[256];
    int n = std::snprintf(line, sizeof line, "ack %s %llu %d %s\n",
                          s.id.c_str(), static_cast<unsigned long long>(s.seq),
                          static_cast<int>(s.state),
                          s.idem.empty() ? "-" : s.idem.c_str());
    // One write(2) under PIPE_BUF bytes: the line arrives whole or not at all.
    if (write(3, line, static_cast<size_t>(n)) != n) std::_Exit(3);
  };
  auto submit = [&](Saga* s) {
    writer.Enqueue(Advance(*s, rng), [&, s](const Status& st) {
      if (!st.ok()) std::_Exit(4);
      report(*s);
      std::lock_guard lock(mu);
      ready.push_back(s);
      cv.notify_one();
    });
  };
  constexpr int kWindow = 32;
  for (int i = 0; i < kWindow; ++i) ready.push_back(nullptr);
  for (int created = 0;;) {
    Saga* s;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return !ready.empty(); });
      s = ready.front();
      ready.pop_front();
    }
    if (s == nullptr || IsTerminal(s->state) ||
        s->state == SagaState::kParked) {
      delete s;  // done: start a new saga in its place
      s = new Saga;
      s->id = ids.Next(1700000000000 + created++);
      s->steps = 1 + static_cast<int>(rng() % 6);
      if (rng() % 2) s->idem = "idem-" + s->id;
    }
    submit(s);
  }
}
