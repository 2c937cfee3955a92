#include "tests/test_util.h"

#include <stdlib.h>

#include "storage/saga_id.h"

namespace cde::test {

TempDir::TempDir() {
  std::string templ =
      (std::filesystem::temp_directory_path() / "cde-test-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) std::abort();
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

SagaRecord MakeSaga(const std::string& id, const std::string& workflow,
                    SagaState state, uint64_t last_seq) {
  SagaRecord r;
  r.id = id;
  r.workflow = workflow;
  r.version = 1;
  r.state = state;
  r.created_ms = SagaIdTimeMs(id).value_or(0);
  r.updated_ms = r.created_ms + 5;
  r.last_seq = last_seq;
  r.body = {{"input", {{"order", id}}}, {"current_step", 0}};
  return r;
}

LogRecord MakeEvent(const std::string& saga_id, uint64_t seq,
                    const std::string& type) {
  LogRecord e;
  e.saga_id = saga_id;
  e.seq = seq;
  e.time_ms = 1700000000000 + static_cast<int64_t>(seq);
  e.type = type;
  e.data = {{"step", "s" + std::to_string(seq)}};
  return e;
}

Status WriteOne(Store& store, const Transition& t, bool sync) {
  const Transition* batch[] = {&t};
  return store.Write(batch, sync);
}

std::vector<std::string> MakeIds(size_t n, int64_t first_ms) {
  SagaIdGenerator gen(42);
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(gen.Next(first_ms + static_cast<int64_t>(i)));
  }
  return ids;
}

}  // namespace cde::test
