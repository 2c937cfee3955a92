// cde-admin end to end: a store made by the real engine (sagas completed,
// compensated, parked, and running in a long sleep), then the real cde-admin
// binary run against it offline, against a copy the test corrupts, and
// while a real `cde-orchestrator serve` holds the store.
#include <curl/curl.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "storage/cbor_writer.h"
#include "storage/keys.h"
#include "storage/records.h"
#include "tests/admin/admin_process.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::AdminRun;

const std::string kAdmin = CDE_ADMIN_PATH;
const std::string kServer = CDE_SERVER_PATH;

std::vector<json> Definitions() {
  return {
      {{"name", "ok-flow"},
       {"version", 1},
       {"description", "two steps that succeed"},
       {"steps",
        {{{"name", "reserve"}, {"action", "noop"}},
         {{"name", "confirm"},
          {"action", "echo"},
          {"params", {{"order", "${input.order}"}}}}}}},
      {{"name", "undo-flow"},
       {"version", 1},
       {"steps",
        {{{"name", "reserve"},
          {"action", "noop"},
          {"compensate", {{"action", "noop"}}}},
         {{"name", "charge"},
          {"action", "fail"},
          {"params", {{"error", "card declined"}}},
          {"retry", {{"max_attempts", 1}}}}}}},
      {{"name", "park-flow"},
       {"version", 1},
       {"on_failure", "park"},
       {"steps",
        {{{"name", "check"},
          {"action", "fail"},
          {"params", {{"error", "still broken"}}},
          {"retry",
           {{"max_attempts", 2},
            {"initial_backoff_ms", 1},
            {"non_retryable", json::array()}}}}}}},
      {{"name", "nap-flow"},
       {"version", 1},
       {"steps",
        {{{"name", "nap"},
          {"action", "sleep"},
          {"params", {{"duration_ms", 3600000}}}},
         {{"name", "after"}, {"action", "noop"}}}}},
      {{"name", "short-nap"},
       {"version", 1},
       {"steps",
        {{{"name", "nap"},
          {"action", "sleep"},
          // Long enough that a cde-admin started after it, slow as a
          // sanitizer build on a loaded machine is, still finds it running.
          {"params", {{"duration_ms", 6000}}}},
         {{"name", "after"}, {"action", "noop"}}}}},
  };
}

// The sagas of the shared store, by what happened to them.
struct Sagas {
  std::string completed;    // ok-flow
  std::string keyed;        // ok-flow, idempotency key "order-2"
  std::string compensated;  // undo-flow
  std::string parked;       // park-flow, in the DLQ
  std::string sleeping;     // nap-flow, running, sleeping for an hour
};

// Runs the real engine on `dir` to make one saga of each kind.
Status BuildStore(const std::string& dir, Sagas* out) {
  test::EngineHarness h;
  CDE_RETURN_IF_ERROR(h.Open(dir));
  for (const json& d : Definitions())
    CDE_RETURN_IF_ERROR(h.Register(d).status());
  auto start = [&](const std::string& wf, std::string* id,
                   std::string key = "") -> Status {
    auto r = h.Start({.workflow = wf,
                      .input = {{"order", 42}},
                      .idempotency_key = std::move(key)});
    CDE_RETURN_IF_ERROR(r.status());
    *id = r->saga_id;
    return Status::OK();
  };
  CDE_RETURN_IF_ERROR(start("ok-flow", &out->completed));
  CDE_RETURN_IF_ERROR(h.AwaitInactive(out->completed).status());
  CDE_RETURN_IF_ERROR(start("ok-flow", &out->keyed, "order-2"));
  CDE_RETURN_IF_ERROR(h.AwaitInactive(out->keyed).status());
  CDE_RETURN_IF_ERROR(start("undo-flow", &out->compensated));
  CDE_RETURN_IF_ERROR(h.AwaitInactive(out->compensated).status());
  CDE_RETURN_IF_ERROR(start("park-flow", &out->parked));
  CDE_RETURN_IF_ERROR(h.AwaitInactive(out->parked).status());
  CDE_RETURN_IF_ERROR(start("nap-flow", &out->sleeping));
  CDE_RETURN_IF_ERROR(
      h.AwaitStored(out->sleeping, SagaState::kRunning).status());
  return h.Close();
}

// Names, sizes and modification times of the files under `dir`.
std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> Listing(
    const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[e.path().string()] = {e.file_size(), e.last_write_time()};
    }
  }
  return out;
}

// The store's RocksDB opened directly, to damage it on purpose.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::Options o;
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(o, path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names)
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::Status s = rocksdb::DB::Open(o, path, cfs, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawDb() {
    for (auto* h : handles_)
      db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    delete db_;
  }
  rocksdb::ColumnFamilyHandle* Cf(Cf cf) {
    for (auto* h : handles_) {
      if (h->GetName() == CfName(cf)) return h;
    }
    return nullptr;
  }
  void Put(cde::Cf cf, const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), Cf(cf), key, value).ok());
  }
  void Delete(cde::Cf cf, const std::string& key) {
    ASSERT_TRUE(db_->Delete(rocksdb::WriteOptions(), Cf(cf), key).ok());
  }
  SagaRecord Saga(const std::string& id) {
    std::string v;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), Cf(Cf::kSagas), id, &v).ok());
    auto rec = DecodeSaga(v, id);
    EXPECT_TRUE(rec.ok());
    return rec.ok() ? *rec : SagaRecord{};
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

// Registers `definition` on the real engine over `dir`, runs one saga of
// it to its end and closes the engine; the saga's id.
Result<std::string> RunOneSaga(const std::string& dir, const json& definition) {
  test::EngineHarness h;
  CDE_RETURN_IF_ERROR(h.Open(dir));
  CDE_RETURN_IF_ERROR(h.Register(definition).status());
  auto started = h.Start({.workflow = definition["name"].get<std::string>()});
  CDE_RETURN_IF_ERROR(started.status());
  CDE_RETURN_IF_ERROR(h.AwaitInactive(started->saga_id).status());
  CDE_RETURN_IF_ERROR(h.Close());
  return started->saga_id;
}

class AdminTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    sagas_ = new Sagas;
    built_ = BuildStore(dir_->Sub("store"), sagas_);
  }
  static void TearDownTestSuite() {
    delete sagas_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(test::IsOk(built_)); }

  static std::string Store() { return dir_->Sub("store"); }
  // A private copy of the shared store, for tests that change it.
  std::string CopyOfStore(const std::string& name) {
    const std::string to = own_.Sub(name);
    fs::copy(Store(), to, fs::copy_options::recursive);
    return to;
  }
  static AdminRun Admin(std::vector<std::string> args,
                        const std::string& data_dir = Store(),
                        int timeout_ms = 60000) {
    args.push_back("--data-dir");
    args.push_back(data_dir);
    return test::RunProcess(kAdmin, args, timeout_ms);
  }
  static const Sagas& sagas() { return *sagas_; }

  test::TempDir own_;

 private:
  static test::TempDir* dir_;
  static Sagas* sagas_;
  static Status built_;
};

test::TempDir* AdminTest::dir_ = nullptr;
Sagas* AdminTest::sagas_ = nullptr;
Status AdminTest::built_;

// One line on stderr, nothing on stdout: what every refusal looks like.
void ExpectOneLineError(const AdminRun& r, const std::string& containing) {
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(containing), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("cde-admin: ", 0), 0u) << r.err;
}

std::vector<std::string> Ids(const json& sagas) {
  std::vector<std::string> ids;
  for (const json& s : sagas) ids.push_back(s["id"].get<std::string>());
  return ids;
}

TEST_F(AdminTest, WorkflowsListAndShow) {
  AdminRun r = Admin({"workflows", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = r.Json();
  ASSERT_EQ(j["workflows"].size(), Definitions().size());
  std::set<std::string> names;
  for (const json& w : j["workflows"]) {
    names.insert(w["name"].get<std::string>());
    EXPECT_TRUE(w["latest"].get<bool>());
    EXPECT_EQ(w["version"], 1);
    EXPECT_TRUE(w["registered_at"].is_string());
  }
  EXPECT_TRUE(names.contains("undo-flow"));

  r = Admin({"workflows", "show", "undo-flow", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["definition"], Definitions()[1]);
  r = Admin({"workflows", "show", "undo-flow@1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["version"], 1);
  r = Admin({"workflows", "show", "undo-flow"});  // human: the document
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"compensate\""), std::string::npos) << r.out;

  ExpectOneLineError(Admin({"workflows", "show", "undo-flow@2"}),
                     "workflow undo-flow has no version 2");
  EXPECT_EQ(Admin({"workflows", "show", "undo-flow@2"}).exit_code, 1);
  EXPECT_EQ(Admin({"workflows", "show", "nope"}).exit_code, 1);
  const AdminRun bad = Admin({"workflows", "show", "undo-flow@x"});
  EXPECT_EQ(bad.exit_code, 2);
  ExpectOneLineError(bad, "NAME@VERSION");
}

TEST_F(AdminTest, SagasListIsNewestFirstFilteredAndPaged) {
  AdminRun r = Admin({"sagas", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  const std::vector<std::string> all = {sagas().sleeping, sagas().parked,
                                        sagas().compensated, sagas().keyed,
                                        sagas().completed};
  EXPECT_EQ(Ids(j["sagas"]), all);
  EXPECT_TRUE(j["next_cursor"].is_null());
  const json& sleeping = j["sagas"][0];
  EXPECT_EQ(sleeping["state"], "running");
  EXPECT_EQ(sleeping["workflow"], "nap-flow");
  EXPECT_EQ(sleeping["current_step"]["path"], "nap");
  EXPECT_EQ(sleeping["current_step"]["attempts"], 1);
  EXPECT_EQ(sleeping["waits"][0]["kind"], "sleep");
  const json& parked = j["sagas"][1];
  EXPECT_EQ(parked["state"], "parked");
  EXPECT_EQ(parked["current_step"]["path"], "check");
  EXPECT_EQ(parked["current_step"]["attempts"], 2);
  EXPECT_EQ(parked["current_step"]["max_attempts"], 2);
  EXPECT_EQ(j["sagas"][4]["state"], "completed");
  EXPECT_TRUE(j["sagas"][4]["current_step"].is_null());
  EXPECT_EQ(j["sagas"][4]["total_attempts"], 2);

  r = Admin({"sagas", "list", "--state", "parked", "--json"});
  EXPECT_EQ(Ids(r.Json()["sagas"]), std::vector<std::string>{sagas().parked});
  r = Admin({"sagas", "list", "--workflow", "ok-flow", "--json"});
  EXPECT_EQ(Ids(r.Json()["sagas"]),
            (std::vector<std::string>{sagas().keyed, sagas().completed}));
  r = Admin({"sagas", "list", "--workflow", "ok-flow", "--state", "completed",
             "--json"});
  EXPECT_EQ(r.Json()["sagas"].size(), 2u);
  r = Admin({"sagas", "list", "--since", "1h", "--json"});
  EXPECT_EQ(r.Json()["sagas"].size(), 5u);
  r = Admin({"sagas", "list", "--since", "1h30m", "--json"});
  EXPECT_EQ(r.Json()["sagas"].size(), 5u);
  r = Admin({"sagas", "list", "--until", "1h", "--json"});
  EXPECT_EQ(r.Json()["sagas"].size(), 0u);
  r = Admin({"sagas", "list", "--since", "2000-01-01T00:00:00Z", "--until",
             "2999-01-01T00:00:00+02:00", "--json"});
  EXPECT_EQ(r.Json()["sagas"].size(), 5u);

  // Pages of two: every saga once, in order, then no cursor.
  std::vector<std::string> paged;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    std::vector<std::string> args = {"sagas", "list", "--limit", "2", "--json"};
    if (!cursor.empty()) args.insert(args.end(), {"--cursor", cursor});
    r = Admin(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    j = r.Json();
    for (const auto& id : Ids(j["sagas"])) paged.push_back(id);
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(paged, all);

  r = Admin({"sagas", "list"});  // human: a table with every id
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ID ", 0), 0u) << r.out;
  for (const auto& id : all) EXPECT_NE(r.out.find(id), std::string::npos);
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "colour without a TTY";
}

TEST_F(AdminTest, SagasShowGivesStepsAttemptsTimelineAndWait) {
  AdminRun r = Admin({"sagas", "show", sagas().compensated, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  EXPECT_EQ(j["saga"]["state"], "compensated");
  ASSERT_EQ(j["steps"].size(), 2u);
  EXPECT_EQ(j["steps"][0]["path"], "reserve");
  EXPECT_EQ(j["steps"][0]["status"], "succeeded");
  EXPECT_EQ(j["steps"][0]["compensation"], "succeeded");
  EXPECT_EQ(j["steps"][0]["compensation_attempts"], 1);
  EXPECT_EQ(j["steps"][1]["path"], "charge");
  EXPECT_EQ(j["steps"][1]["status"], "failed");
  EXPECT_EQ(j["steps"][1]["error"]["message"], "card declined");
  EXPECT_EQ(j["failed_step"], "charge");
  ASSERT_EQ(j["attempts"].size(), 3u);  // reserve, charge, undo reserve
  EXPECT_EQ(j["attempts"][1]["step"], "charge");
  EXPECT_EQ(j["attempts"][1]["outcome"], "failed");
  EXPECT_EQ(j["attempts"][2]["compensation"], true);
  EXPECT_EQ(j["attempts"][2]["outcome"], "succeeded");
  EXPECT_TRUE(j["attempts"][2]["duration_ms"].is_number());
  EXPECT_EQ(j["timeline"].front()["type"], "saga_started");
  EXPECT_EQ(j["timeline"].back()["type"], "saga_compensated");
  EXPECT_EQ(j["timeline"].size(), j["saga"]["last_seq"].get<size_t>());

  r = Admin({"sagas", "show", sagas().sleeping, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = r.Json();
  EXPECT_EQ(j["saga"]["waits"][0]["kind"], "sleep");
  EXPECT_EQ(j["saga"]["waits"][0]["path"], "nap");
  EXPECT_NE(j["waiting_for"].get<std::string>().find("sleep step nap"),
            std::string::npos)
      << j["waiting_for"];
  EXPECT_EQ(j["attempts"][0]["outcome"], "in_flight");

  r = Admin({"sagas", "show", sagas().parked, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = r.Json();
  EXPECT_EQ(j["dlq"]["reason"], "step_failed");
  EXPECT_EQ(j["attempts"][0]["outcome"], "retrying");
  EXPECT_EQ(j["attempts"][1]["outcome"], "failed");

  r = Admin({"sagas", "show", sagas().keyed});  // human
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("order-2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("confirm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("completed"), std::string::npos) << r.out;

  const std::string unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  r = Admin({"sagas", "show", unknown});
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "no saga " + unknown);
}

TEST_F(AdminTest, SagasShowListsAParallelStepsBranchesUnderIt) {
  test::TempDir dir;
  auto ran = RunOneSaga(dir.path(), json::parse(R"({
      "name": "fan", "version": 1,
      "steps": [
        {"name": "book", "parallel": {"branches": {
          "flight": [{"name": "flight", "action": "noop"}],
          "hotel": [{"name": "hotel", "action": "noop"}]}}},
        {"name": "notify", "action": "noop"}]})"));
  ASSERT_OK(ran.status());
  const std::string id = *ran;
  AdminRun r = Admin({"sagas", "show", id, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  ASSERT_EQ(j["steps"].size(), 4u);
  EXPECT_EQ(j["steps"][0]["path"], "book");
  EXPECT_EQ(j["steps"][0]["kind"], "parallel");
  EXPECT_EQ(j["steps"][0]["depth"], 0);
  EXPECT_TRUE(j["steps"][0]["action"].is_null());
  EXPECT_EQ(j["steps"][1]["path"], "book.flight.flight");
  EXPECT_EQ(j["steps"][1]["kind"], "action");
  EXPECT_EQ(j["steps"][1]["depth"], 1);
  EXPECT_EQ(j["steps"][3]["depth"], 0);

  r = Admin({"sagas", "show", id}, dir.path());  // human: indented by depth
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The column where a step's path starts on its row of the steps table.
  auto column = [&r](const std::string& path) -> size_t {
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const size_t at = line.find(" " + path + " ");
      if (at != std::string::npos) return at + 1;
    }
    return std::string::npos;
  };
  ASSERT_NE(column("notify"), std::string::npos) << r.out;
  EXPECT_EQ(column("book"), column("notify")) << r.out;
  EXPECT_EQ(column("book.flight.flight"), column("notify") + 2) << r.out;
  EXPECT_NE(r.out.find("parallel"), std::string::npos) << r.out;
}

// `sagas show` reads a map's rows a page at a time (1,024): the items that
// failed after the first page are found, and 20 of them are shown.
TEST_F(AdminTest, SagasShowFindsTheFailedItemsPastTheFirstPageOfAMap) {
  test::TempDir dir;
  json items = json::array();  // items 1030 to 1059 fail
  for (int i = 0; i < 1100; ++i) items.push_back(i >= 1030 && i < 1060 ? 1 : 0);
  json def = json::parse(R"({
      "name": "wide", "version": 1,
      "steps": [
        {"name": "each", "map": {"max_concurrency": 100,
          "tolerated_failures": 30,
          "steps": [{"name": "try", "action": "fail",
                     "params": {"fail_attempts": "${item}"},
                     "retry": {"max_attempts": 1}}]}}]})");
  def["steps"][0]["map"]["items"] = items;
  auto ran = RunOneSaga(dir.path(), def);
  ASSERT_OK(ran.status());
  const std::string id = *ran;
  AdminRun r = Admin({"sagas", "show", id, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = r.Json();
  EXPECT_EQ(j["saga"]["state"], "completed");
  EXPECT_EQ(j["steps"][0]["items"]["failed"], 30);
  const json& shown = j["steps"][0]["unfinished_items"];
  ASSERT_EQ(shown.size(), 20u) << shown.dump();
  EXPECT_EQ(shown[0]["path"], "each[1030]");
  EXPECT_EQ(shown[19]["path"], "each[1049]");
  EXPECT_EQ(shown[19]["status"], "failed");
}

TEST_F(AdminTest, SagasShowAndItemsGiveAMapStepsItemsAndTheOnesThatFailed) {
  test::TempDir dir;
  auto ran = RunOneSaga(dir.path(), json::parse(R"({
      "name": "fan", "version": 1,
      "steps": [
        {"name": "each", "map": {"items": [1, 0, 1, 0, 1],
          "max_concurrency": 2, "tolerated_failures": 3,
          "steps": [{"name": "try", "action": "fail",
                     "params": {"fail_attempts": "${item}"},
                     "retry": {"max_attempts": 1}}]}},
        {"name": "notify", "action": "noop"}]})"));
  ASSERT_OK(ran.status());
  const std::string id = *ran;
  AdminRun r = Admin({"sagas", "show", id, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  EXPECT_EQ(j["saga"]["state"], "completed");
  // The map step and notify: the step inside the map runs per item.
  ASSERT_EQ(j["steps"].size(), 2u) << j["steps"].dump();
  EXPECT_EQ(j["steps"][0]["kind"], "map");
  EXPECT_EQ(j["steps"][0]["items"]["total"], 5);
  EXPECT_EQ(j["steps"][0]["items"]["succeeded"], 2);
  EXPECT_EQ(j["steps"][0]["items"]["failed"], 3);  // items 0, 2 and 4
  ASSERT_EQ(j["steps"][0]["unfinished_items"].size(), 3u);
  EXPECT_EQ(j["steps"][0]["unfinished_items"][0]["path"], "each[0]");
  EXPECT_EQ(j["steps"][0]["unfinished_items"][0]["status"], "failed");

  r = Admin({"sagas", "show", id}, dir.path());  // human
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2/5 items"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" each[4] "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(" each[1] "), std::string::npos) << r.out;

  // sagas items: every item, its outcome and steps; by status; paged.
  r = Admin({"sagas", "items", id, "--json"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = r.Json();
  EXPECT_EQ(j["map_step"], "each");
  EXPECT_EQ(j["total"], 5);
  ASSERT_EQ(j["items"].size(), 5u) << j.dump();
  EXPECT_EQ(j["items"][1]["status"], "succeeded");
  EXPECT_EQ(j["items"][4]["path"], "each[4]");
  EXPECT_EQ(j["items"][4]["steps"][0]["path"], "each[4].try");
  EXPECT_EQ(j["items"][4]["steps"][0]["error"]["kind"], "failed");
  EXPECT_TRUE(j["next_index"].is_null());
  r = Admin(
      {"sagas", "items", id, "--status", "failed", "--limit", "2", "--json"},
      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = r.Json();
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_EQ(j["items"][0]["index"], 0);
  EXPECT_EQ(j["items"][1]["index"], 2);
  EXPECT_EQ(j["next_index"], 4);  // the next failed one
  r = Admin({"sagas", "items", id, "--status", "failed", "--from", "3"},
            dir.path());  // human
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("map step each: 5 items, 5 started"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("failed on purpose"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("more: --from"), std::string::npos) << r.out;
  r = Admin({"sagas", "items", id, "--map-step", "notify"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'notify' is not a map step"), std::string::npos)
      << r.err;
  r = Admin({"sagas", "items", id, "--status", "done"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--status: 'done'"), std::string::npos) << r.err;
}

TEST_F(AdminTest, SagasLogPrintsRawEvents) {
  AdminRun r = Admin({"sagas", "log", sagas().completed, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = r.JsonLines();
  ASSERT_GE(lines.size(), 4u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["seq"], i + 1);
    EXPECT_EQ(lines[i]["saga_id"], sagas().completed);
  }
  EXPECT_EQ(lines.front()["type"], "saga_started");
  EXPECT_EQ(lines.back()["type"], "saga_completed");

  r = Admin({"sagas", "log", sagas().completed, "--from", "3", "--json"});
  lines = r.JsonLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front()["seq"], 3);

  // --follow on a finished saga prints its log and ends.
  r = Admin({"sagas", "log", sagas().completed, "--follow"}, Store(), 10000);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("saga_completed"), std::string::npos);

  r = Admin({"sagas", "log", "01ARZ3NDEKTSV4RRFFQ69G5FAV"});
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "no saga 01ARZ3NDEKTSV4RRFFQ69G5FAV");
}

TEST_F(AdminTest, DlqListAndShow) {
  AdminRun r = Admin({"dlq", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  ASSERT_EQ(j["entries"].size(), 1u);
  EXPECT_EQ(j["entries"][0]["saga_id"], sagas().parked);
  EXPECT_EQ(j["entries"][0]["reason"], "step_failed");
  EXPECT_EQ(j["entries"][0]["step"], "check");
  EXPECT_EQ(j["entries"][0]["attempts"], 2);
  EXPECT_TRUE(j["next_cursor"].is_null());
  r = Admin({"dlq", "list", "--workflow", "ok-flow", "--json"});
  EXPECT_EQ(r.Json()["entries"].size(), 0u);

  r = Admin({"dlq", "show", sagas().parked, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = r.Json();
  EXPECT_EQ(j["entry"]["last_error"], "failed: still broken");
  EXPECT_EQ(j["saga"]["state"], "parked");

  r = Admin({"dlq", "show", sagas().completed});
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "is not in the dead-letter queue");
}

TEST_F(AdminTest, StatsCountByStateAndWorkflow) {
  AdminRun r = Admin({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = r.Json();
  EXPECT_EQ(j["access"], "read_only");
  EXPECT_TRUE(j["server_pid"].is_null());
  EXPECT_EQ(j["sagas"]["total"], 5);
  EXPECT_EQ(j["sagas"]["by_state"]["completed"], 2);
  EXPECT_EQ(j["sagas"]["by_state"]["compensated"], 1);
  EXPECT_EQ(j["sagas"]["by_state"]["parked"], 1);
  EXPECT_EQ(j["sagas"]["by_state"]["running"], 1);
  EXPECT_EQ(j["sagas"]["by_state"]["cancelled"], 0);
  EXPECT_EQ(j["workflows"]["ok-flow"]["total"], 2);
  EXPECT_EQ(j["workflows"]["nap-flow"]["by_state"]["running"], 1);
  EXPECT_EQ(j["workflows"]["short-nap"]["total"], 0);
  EXPECT_EQ(j["dlq_entries"], 1);
  EXPECT_EQ(j["timers"]["total"], 1);
  EXPECT_EQ(j["timers"]["overdue"], 0);
  EXPECT_TRUE(j["timers"]["next_due_at"].is_string());
  EXPECT_EQ(j["definitions"], Definitions().size());
  EXPECT_GT(j["store"]["disk_bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(j["store"]["rocksdb"].contains("sst_files"));
}

TEST_F(AdminTest, VerifyPassesOnAStoreTheEngineWrote) {
  const auto before = Listing(Store());
  AdminRun r = Admin({"verify", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = r.Json();
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["problems"], json::array());
  EXPECT_EQ(j["rows_checked"]["sagas"], 5);
  EXPECT_EQ(j["rows_checked"]["timers"], 1);
  // The indexes format 7 retired are said only when they hold rows.
  EXPECT_FALSE(j["rows_checked"].contains("idx_state")) << j.dump();
  EXPECT_FALSE(j["rows_checked"].contains("idx_workflow")) << j.dump();
  EXPECT_EQ(Listing(Store()), before) << "verify changed the store";
  r = Admin({"verify"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("no problems", 0), 0u) << r.out;
}

TEST_F(AdminTest, SagasListNamesASagaThatDoesNotReadAndListsTheOthers) {
  const std::string dir = CopyOfStore("rotten");
  {
    RawDb db(dir);
    db.Put(Cf::kSagas, sagas().keyed, std::string("\x01\xff\x00rot", 6));
  }
  AdminRun r = Admin({"sagas", "list", "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  EXPECT_EQ(Ids(j["sagas"]),
            (std::vector<std::string>{sagas().sleeping, sagas().parked,
                                      sagas().compensated, sagas().completed}));
  ASSERT_EQ(j["unreadable"].size(), 1u) << j.dump();
  EXPECT_EQ(j["unreadable"][0]["id"], sagas().keyed);
  EXPECT_NE(j["unreadable"][0]["error"].get<std::string>().find(
                "cf 'sagas' key '" + sagas().keyed + "'"),
            std::string::npos)
      << j.dump();
  r = Admin({"sagas", "list", "--workflow", "ok-flow"}, dir);  // human
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(sagas().completed), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("saga " + sagas().keyed + " does not read: "),
            std::string::npos)
      << r.err;
}

TEST_F(AdminTest, VerifyReportsExactlyTheDamageDone) {
  const std::string dir = CopyOfStore("damaged");
  {
    RawDb db(dir);
    // 1. an index row deleted
    const SagaRecord completed = db.Saga(sagas().completed);
    db.Delete(
        Cf::kIdxWorkflowState,
        IdxWorkflowStatePrefix(completed.workflow, SagaState::kCompleted) +
            completed.id);
    // 2. a snapshot's last_seq altered
    SagaRecord keyed = db.Saga(sagas().keyed);
    keyed.last_seq += 1;
    db.Put(Cf::kSagas, keyed.id, EncodeSaga(keyed));
    // 3. a snapshot's state altered (its index rows say compensated)
    SagaRecord comp = db.Saga(sagas().compensated);
    comp.state = SagaState::kCompleted;
    db.Put(Cf::kSagas, comp.id, EncodeSaga(comp));
    // 4. a DLQ record that does not decode
    db.Put(Cf::kDlq, sagas().parked, "\x01\xff garbage");
    // 5. a row in an index format 7 retired, naming no saga
    db.Put(Cf::kIdxState,
           IdxStatePrefix(SagaState::kRunning) + "01ZZZZZZZZZZZZZZZZZZZZZZZZ",
           "");
  }
  AdminRun r = Admin({"verify", "--json"}, dir);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const json j = r.Json();
  EXPECT_FALSE(j["ok"].get<bool>());
  std::multiset<std::pair<std::string, std::string>> found;
  for (const json& p : j["problems"]) {
    found.emplace(p["kind"].get<std::string>(),
                  p["saga_id"].get<std::string>());
  }
  const std::multiset<std::pair<std::string, std::string>> expected = {
      {"index_missing", sagas().completed},
      {"log_mismatch", sagas().keyed},
      {"index_mismatch", sagas().compensated},
      {"undecodable", sagas().parked},
      {"index_dangling", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"},
  };
  EXPECT_EQ(found, expected) << j["problems"].dump(2);
  for (const json& p : j["problems"]) {
    if (p["kind"] == "index_missing") {
      ASSERT_EQ(p["rows"]["missing"].size(), 1u);
      EXPECT_EQ(p["rows"]["missing"][0]["cf"], "idx_workflow_state");
    }
    if (p["kind"] == "log_mismatch") {
      EXPECT_NE(p["message"].get<std::string>().find("log ends at seq"),
                std::string::npos);
    }
    if (p["kind"] == "index_mismatch") {
      EXPECT_EQ(p["rows"]["missing"].size(), 1u);
      EXPECT_EQ(p["rows"]["unexpected"].size(), 1u);
    }
    if (p["kind"] == "undecodable") {
      EXPECT_EQ(p["cf"], "dlq");
    }
  }
  // The human form lists the same problems, one per row, and exits 1.
  r = Admin({"verify"}, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("5 problems"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 idx_state"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("index_missing"), std::string::npos);
}

// A log row written with a patch of the saga's snapshot instead of the
// snapshot (store format 8), as a step handed straight on writes it.
std::string PatchedLogRow(const std::string& id, uint64_t seq,
                          const json& patch) {
  std::string out;
  LogRowWriter row(&out, 1, /*with_patch=*/true);
  const json data = json::object();
  row.Add(
      id, seq, 1764200000000, "attempt_started",
      [](const void* d, CborWriter& w) {
        w.Json(*static_cast<const json*>(d));
      },
      &data);
  row.Patch([](const void* p,
               CborWriter& w) { w.Json(*static_cast<const json*>(p)); },
            &patch);
  return out;
}

TEST_F(AdminTest, VerifyChecksTheSagaAsItsLogPatchesIt) {
  const std::string dir = CopyOfStore("patched");
  {
    RawDb db(dir);
    // The sleeper, patched well: a field set, its time moved on (its
    // snapshot marked as one that patches may follow).
    SagaRecord sleeping = db.Saga(sagas().sleeping);
    sleeping.patchable = true;
    db.Put(Cf::kSagas, sleeping.id, EncodeSaga(sleeping));
    db.Put(Cf::kLog, LogKey(sleeping.id, sleeping.last_seq + 1),
           PatchedLogRow(sleeping.id, sleeping.last_seq + 1,
                         {{"set", {{"replayed_by", "ops"}}},
                          {"updated_ms", sleeping.updated_ms + 1}}));
    // A row after a snapshot that patches nothing.
    SagaRecord keyed = db.Saga(sagas().keyed);
    keyed.patchable = true;
    db.Put(Cf::kSagas, keyed.id, EncodeSaga(keyed));
    db.Put(
        Cf::kLog, LogKey(keyed.id, keyed.last_seq + 1),
        EncodeLog({keyed.id, keyed.last_seq + 1, 1, "note", json::object()}));
  }
  AdminRun r = Admin({"verify", "--json"}, dir);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const json j = r.Json();
  std::multiset<std::pair<std::string, std::string>> found;
  for (const json& p : j["problems"]) {
    found.emplace(p["kind"].get<std::string>(),
                  p["saga_id"].get<std::string>());
    if (p["kind"] == "bad_patch") {
      EXPECT_NE(p["message"].get<std::string>().find("holds no patch"),
                std::string::npos)
          << p.dump();
    }
  }
  // The sleeper's patch is no problem (its log ends where the patch put
  // it); the other's row is, and so is its log's end, which no snapshot
  // reaches.
  const std::multiset<std::pair<std::string, std::string>> expected = {
      {"bad_patch", sagas().keyed}, {"log_mismatch", sagas().keyed}};
  EXPECT_EQ(found, expected) << r.out;
  r = Admin({"sagas", "show", sagas().sleeping, "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["replayed_by"], "ops") << r.out;
}

TEST_F(AdminTest, BadInputIsOneClearLineAndChangesNothing) {
  AdminRun r = Admin({"sagas", "list", "--since", "yesterday"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--since: 'yesterday'");
  r = Admin({"sagas", "list", "--until", "2026-13-01T00:00:00Z"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--until");
  r = Admin({"sagas", "list", "--since", "99999999999999999999w"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--since");
  r = Admin({"sagas", "list", "--state", "sleeping"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--state: unknown state 'sleeping'");
  r = Admin({"sagas", "list", "--cursor", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--cursor");
  r = Admin({"sagas", "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // Not a store: a directory of other files, and a missing directory.
  const std::string other = own_.Sub("other");
  fs::create_directories(other);
  std::ofstream(other + "/notes.txt") << "hello";
  r = Admin({"sagas", "list"}, other);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "no store there");
  EXPECT_EQ(Listing(other).size(), 1u);
  const std::string missing = own_.Sub("missing");
  r = Admin({"stats"}, missing);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "no store there");
  EXPECT_FALSE(fs::exists(missing));

  // A store of a newer format.
  const std::string newer = CopyOfStore("newer");
  {
    auto store = OpenRocksStore({.path = newer});
    ASSERT_TRUE(test::IsOk(store.status()));
    Transition t;
    t.PutFormatVersion(kFormatVersion + 1);
    ASSERT_TRUE(test::IsOk(test::WriteOne(**store, t, true)));
    ASSERT_TRUE(test::IsOk((*store)->Close()));
  }
  const auto before = Listing(newer);
  for (std::vector<std::string> args : {std::vector<std::string>{"stats"},
                                        {"verify", "--json"},
                                        {"sagas", "list"},
                                        {"backup", own_.Sub("newer-backup")}}) {
    r = Admin(args, newer);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    ExpectOneLineError(r, "store format version " +
                              std::to_string(kFormatVersion + 1) +
                              " is newer than this build");
  }
  EXPECT_EQ(Listing(newer), before);
  EXPECT_FALSE(fs::exists(own_.Sub("newer-backup")));

  r = Admin({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sagas"), std::string::npos);
  r = Admin({"sagas", "list", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--since"), std::string::npos);
}

TEST_F(AdminTest, BackupIsAStoreTheServerOpens) {
  const std::string source = CopyOfStore("source");
  const std::string backup = own_.Sub("backup");
  AdminRun r = Admin({"backup", backup, "--json"}, source);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["sagas"], 5);
  EXPECT_EQ(Admin({"backup", backup}, source).exit_code, 2);  // exists

  r = Admin({"sagas", "list", "--json"}, backup);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["sagas"].size(), 5u);
  r = Admin({"verify"}, backup);
  EXPECT_EQ(r.exit_code, 0) << r.out;

  // The real server runs on the copy and finds the sagas there.
  const std::string workflows = own_.Sub("workflows");
  fs::create_directories(workflows);
  test::ServerProcess server(kServer, backup, workflows);
  ASSERT_TRUE(server.Initialize()) << server.Log();
  const json got = server.CallTool("get_saga", {{"saga_id", sagas().parked}});
  EXPECT_EQ(got["state"], "parked") << server.Log();
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

// The read commands while a real server holds the store: a secondary that
// catches up sees what the server does after the admin started.
TEST_F(AdminTest, ReadsFollowALiveServer) {
  const std::string dir = CopyOfStore("live");
  const std::string workflows = own_.Sub("workflows");
  fs::create_directories(workflows);
  for (const json& d : Definitions()) {
    std::ofstream(workflows + "/" + d["name"].get<std::string>() + ".json")
        << d.dump(2);
  }
  test::ServerProcess server(kServer, dir, workflows);
  ASSERT_TRUE(server.Initialize()) << server.Log();

  AdminRun r = Admin({"stats", "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["access"], "secondary");
  EXPECT_EQ(r.Json()["server_pid"], server.pid());
  EXPECT_EQ(r.Json()["sagas"]["total"], 5);

  // A saga the server makes now is seen by the next command.
  const json started = server.CallTool(
      "start_workflow", {{"workflow", "ok-flow"}, {"input", {{"order", 7}}}});
  ASSERT_TRUE(started.is_object()) << server.Log();
  const std::string made = started["saga_id"].get<std::string>();
  std::string state;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (state != "completed" && std::chrono::steady_clock::now() < deadline) {
    r = Admin({"sagas", "list", "--json"}, dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.Json()["sagas"].size(), 6u);
    EXPECT_EQ(r.Json()["sagas"][0]["id"], made);
    state = r.Json()["sagas"][0]["state"].get<std::string>();
    if (state != "completed") {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_EQ(state, "completed");

  // --follow streams a sleeping saga's events until it completes.
  const json napping =
      server.CallTool("start_workflow", {{"workflow", "short-nap"}});
  ASSERT_TRUE(napping.is_object()) << server.Log();
  const std::string nap = napping["saga_id"].get<std::string>();
  r = Admin({"sagas", "show", nap, "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["saga"]["state"], "running");
  const auto t0 = std::chrono::steady_clock::now();
  r = Admin({"sagas", "log", nap, "--follow", "--json"}, dir, 30000);
  const auto followed = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = r.JsonLines();
  ASSERT_GE(lines.size(), 3u) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["seq"], i + 1);
  EXPECT_EQ(lines.back()["type"], "saga_completed");
  EXPECT_GT(followed, std::chrono::milliseconds(300));

  // Everything else reads the live store too; verify sees a consistent view.
  r = Admin({"verify", "--json"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.Json()["access"], "secondary");
  EXPECT_EQ(Admin({"dlq", "list", "--json"}, dir).Json()["entries"].size(), 1u);
  r = Admin({"dlq", "show", sagas().parked, "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["saga"]["state"], "parked");
  EXPECT_EQ(Admin({"workflows", "list", "--json"}, dir).exit_code, 0);
  r = Admin({"workflows", "show", "ok-flow", "--json"}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Admin({"sagas", "log", made, "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.JsonLines().back()["type"], "saga_completed");
  EXPECT_EQ(
      Admin({"sagas", "show", made, "--json"}, dir).Json()["saga"]["state"],
      "completed");

  // A live store is backed up by the server itself (POST /admin/backup).
  const std::string live_backup = own_.Sub("live-backup");
  r = Admin({"backup", live_backup, "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err << server.Log();
  EXPECT_EQ(r.Json()["via"], "server");
  EXPECT_EQ(r.Json()["server_pid"], server.pid());
  EXPECT_EQ(r.Json()["sagas"], 7);
  EXPECT_EQ(Admin({"verify"}, live_backup).exit_code, 0);
  r = Admin({"backup", live_backup}, dir);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "already exists");

  EXPECT_EQ(server.Stop(), 0) << server.Log();
  r = Admin({"stats", "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["access"], "read_only");
  EXPECT_EQ(r.Json()["sagas"]["total"], 7);
  EXPECT_EQ(Admin({"verify"}, dir).exit_code, 0);
}

// --- the commands that change state ---

// A store for the state-changing commands: a saga sleeping after a step
// with a compensation, two parked park-flow sagas, a parked skip-flow saga
// (its step passes once the file `flag` exists) and a completed one.
struct ChangeSagas {
  std::string undo_nap;  // undo-nap, running, sleeping for an hour
  std::string parked_a;  // park-flow
  std::string parked_b;  // park-flow
  std::string skip;      // skip-flow, parked at "check" until `flag` exists
  std::string done;      // ok-flow, completed
};

Status BuildChangeStore(const std::string& dir, const std::string& flag,
                        ChangeSagas* out) {
  test::EngineHarness h;
  CDE_RETURN_IF_ERROR(h.Open(dir));
  std::vector<json> defs = Definitions();
  defs.push_back({{"name", "undo-nap"},
                  {"version", 1},
                  {"steps",
                   {{{"name", "reserve"},
                     {"action", "noop"},
                     {"compensate", {{"action", "noop"}}}},
                    {{"name", "nap"},
                     {"action", "sleep"},
                     {"params", {{"duration_ms", 3600000}}}},
                    {{"name", "after"}, {"action", "noop"}}}}});
  defs.push_back({{"name", "skip-flow"},
                  {"version", 1},
                  {"on_failure", "park"},
                  {"steps",
                   {{{"name", "check"},
                     {"action", "exec"},
                     {"params", {{"argv", {"test", "-f", "${input.flag}"}}}},
                     {"retry", {{"max_attempts", 1}}}},
                    {{"name", "after"}, {"action", "noop"}}}}});
  defs.push_back(
      {{"name", "greet"},
       {"version", 1},
       {"input_schema",
        {{"type", "object"},
         {"required", {"who"}},
         {"properties", {{"who", {{"type", "string"}}}}}}},
       {"examples", std::vector<json>{{{"who", "Ada"}}}},
       {"steps", std::vector<json>{{{"name", "hello"},
                                    {"action", "echo"},
                                    {"params", {{"to", "${input.who}"}}}}}}});
  for (const json& d : defs) CDE_RETURN_IF_ERROR(h.Register(d).status());
  auto start = [&](const std::string& wf, std::string* id) -> Status {
    auto r = h.Start({.workflow = wf, .input = {{"order", 1}, {"flag", flag}}});
    CDE_RETURN_IF_ERROR(r.status());
    *id = r->saga_id;
    return Status::OK();
  };
  CDE_RETURN_IF_ERROR(start("ok-flow", &out->done));
  CDE_RETURN_IF_ERROR(h.AwaitInactive(out->done).status());
  for (std::string* id : {&out->parked_a, &out->parked_b, &out->skip}) {
    CDE_RETURN_IF_ERROR(
        start(id == &out->skip ? "skip-flow" : "park-flow", id));
    CDE_RETURN_IF_ERROR(h.AwaitInactive(*id).status());
  }
  CDE_RETURN_IF_ERROR(start("undo-nap", &out->undo_nap));
  CDE_RETURN_IF_ERROR(
      h.AwaitStored(out->undo_nap, SagaState::kRunning).status());
  // Wait until it sleeps (its first step done): an hour's sleep leaves
  // memory (dormant) as soon as it starts.
  if (!h.RunUntil([&] {
        const Saga* s = h.engine().FindActive(out->undo_nap);
        return s == nullptr || test::OnlyWait(s).kind == Wait::Kind::kSleep;
      })) {
    return Status::Aborted("undo-nap never reached its sleep");
  }
  return h.Close();
}

class AdminChangeTest : public AdminTest {
 protected:
  void SetUp() override {
    AdminTest::SetUp();
    dir_ = own_.Sub("change");
    flag_ = own_.Sub("flag");
    ASSERT_TRUE(test::IsOk(BuildChangeStore(dir_, flag_, &s_)));
    workflows_ = own_.Sub("workflows");
    fs::create_directories(workflows_);
  }
  std::string State(const std::string& id) {
    AdminRun r = Admin({"sagas", "show", id, "--json"}, dir_);
    return r.exit_code == 0 ? r.Json()["saga"]["state"].get<std::string>()
                            : "(" + r.err + ")";
  }
  // id -> state and last seq of every saga.
  std::map<std::string, std::string> Snapshot() {
    std::map<std::string, std::string> out;
    AdminRun r = Admin({"sagas", "list", "--json"}, dir_);
    const json list = r.Json();
    for (const json& s : list["sagas"]) {
      out[s["id"].get<std::string>()] =
          s["state"].get<std::string>() + "/" + s["last_seq"].dump();
    }
    return out;
  }
  // Polls the server's get_saga until `id` is `state` (60 s at most).
  static std::string AwaitState(test::ServerProcess& server,
                                const std::string& id,
                                const std::string& state) {
    std::string now;
    for (int i = 0; i < 1200 && now != state; ++i) {
      const json got = server.CallTool("get_saga", {{"saga_id", id}});
      now = got.is_object() ? got.value("state", "") : "";
      if (now != state) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    return now;
  }
  std::vector<std::string> LogTypes(const std::string& id) {
    std::vector<std::string> types;
    for (const json& e :
         Admin({"sagas", "log", id, "--json"}, dir_).JsonLines())
      types.push_back(e["type"].get<std::string>());
    return types;
  }

  // Creates the file skip-flow's step checks for.
  void Fix() { std::ofstream(flag_) << "fixed\n"; }

  std::string dir_, workflows_, flag_;
  ChangeSagas s_;
};

const char* kUnknownId = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

// POSTs `body` with `headers`; the HTTP status (0 if unreachable).
long Post(const std::string& url, const std::string& body,
          const std::vector<std::string>& headers) {
  CURL* curl = curl_easy_init();
  curl_slist* list =
      curl_slist_append(nullptr, "Content-Type: application/json");
  for (const std::string& h : headers)
    list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Discard);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return status;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// No server: a maintenance engine commits the changes and runs nothing;
// the server started afterwards runs what they made due.
TEST_F(AdminChangeTest, OfflineCancelAndReplayRunWhenTheServerStarts) {
  const auto before = Snapshot();
  AdminRun r = Admin({"sagas", "cancel", kUnknownId}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, std::string("no saga ") + kUnknownId);
  r = Admin({"dlq", "replay", kUnknownId}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, std::string("no saga ") + kUnknownId);
  r = Admin({"sagas", "cancel", s_.done}, dir_);  // finished
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "already completed");
  r = Admin({"dlq", "replay", s_.undo_nap}, dir_);  // not parked
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "not parked");
  r = Admin({"dlq", "replay", s_.skip, "--from-step", "nope"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "has no step 'nope'");
  EXPECT_EQ(Admin({"dlq", "replay"}, dir_).exit_code, 2);
  EXPECT_EQ(Admin({"dlq", "replay", s_.skip, "--all"}, dir_).exit_code, 2);
  EXPECT_EQ(Snapshot(), before);  // nothing changed

  r = Admin({"sagas", "cancel", s_.undo_nap, "--json"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "offline");
  EXPECT_EQ(r.Json()["saga_id"], s_.undo_nap);
  EXPECT_EQ(r.Json()["state"], "cancelling");
  Fix();
  r = Admin({"dlq", "replay", s_.skip, "--from-step", "check"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("replayed saga " + s_.skip + " offline: now running"),
            std::string::npos)
      << r.out;
  // Committed, and nothing ran: the compensation and the step wait.
  EXPECT_EQ(State(s_.undo_nap), "cancelling");
  EXPECT_EQ(State(s_.skip), "running");
  EXPECT_FALSE(Has(LogTypes(s_.undo_nap), "compensation_succeeded"));
  EXPECT_TRUE(Has(LogTypes(s_.skip), "replayed"));
  EXPECT_FALSE(Has(LogTypes(s_.skip), "saga_completed"));
  // Offline changes are the operator's at this host: "local".
  r = Admin({"sagas", "show", s_.undo_nap, "--json"}, dir_);
  EXPECT_EQ(r.Json()["cancelled_by"], "local") << r.out;
  r = Admin({"sagas", "show", s_.skip, "--json"}, dir_);
  EXPECT_EQ(r.Json()["replayed_by"], "local") << r.out;
  EXPECT_EQ(r.Json()["cancelled_by"], nullptr);
  r = Admin({"sagas", "show", s_.skip}, dir_);
  EXPECT_NE(r.out.find("replayed by  local"), std::string::npos) << r.out;
  r = Admin({"dlq", "list", "--json"}, dir_);
  EXPECT_EQ(r.Json()["entries"].size(), 2u);
  EXPECT_EQ(Admin({"verify"}, dir_).exit_code, 0);

  // replay --all: both park-flow sagas, then (offline) nothing runs.
  r = Admin({"dlq", "replay", "--all", "--workflow", "park-flow", "--json"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["total"], 2);
  EXPECT_EQ(r.Json()["replayed"], 2);
  EXPECT_EQ(r.Json()["failed"], 0);
  ASSERT_EQ(r.Json()["results"].size(), 2u);
  EXPECT_EQ(r.Json()["results"][0]["saga_id"], s_.parked_a);
  EXPECT_EQ(r.Json()["results"][0]["state"], "running");
  EXPECT_EQ(State(s_.parked_b), "running");
  EXPECT_EQ(Admin({"dlq", "list", "--json"}, dir_).Json()["entries"].size(),
            0u);
  r = Admin({"dlq", "replay", "--all"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("replayed 0 of 0 parked sagas offline"),
            std::string::npos)
      << r.out;

  // A server on the store runs what the changes made due.
  test::ServerProcess server(kServer, dir_, workflows_);
  ASSERT_TRUE(server.Initialize()) << server.Log();
  EXPECT_EQ(AwaitState(server, s_.undo_nap, "cancelled"), "cancelled")
      << server.Log();
  EXPECT_EQ(AwaitState(server, s_.skip, "completed"), "completed");
  // park-flow fails on every attempt: replayed, it runs and parks again.
  EXPECT_EQ(AwaitState(server, s_.parked_a, "parked"), "parked");
  EXPECT_EQ(AwaitState(server, s_.parked_b, "parked"), "parked");
  EXPECT_EQ(server.Stop(), 0) << server.Log();
  EXPECT_TRUE(Has(LogTypes(s_.undo_nap), "compensation_succeeded"));
  const auto park_log = LogTypes(s_.parked_a);
  EXPECT_GT(std::count(park_log.begin(), park_log.end(), "attempt_started"), 2);
  r = Admin({"dlq", "show", s_.parked_a, "--json"}, dir_);
  EXPECT_EQ(r.Json()["entry"]["replay_count"], 1);
  EXPECT_EQ(Admin({"verify"}, dir_).exit_code, 0);
}

// sagas start: offline it is committed and runs when a server starts;
// through a server it runs at once, and --wait-ms waits for its end.
TEST_F(AdminChangeTest, StartCommitsOfflineOrRunsThroughTheServer) {
  const auto before = Snapshot();
  AdminRun r = Admin({"sagas", "start", "nope"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "no workflow nope");
  r = Admin({"sagas", "start", "greet", "--input", "{not json"}, dir_);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--input: not JSON");
  r = Admin({"sagas", "start", "greet", "--input", "{}", "--example"}, dir_);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "give one of --input, --input-file and --example");
  r = Admin({"sagas", "start", "greet", "--example", "--wait-ms", "10"}, dir_);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--wait-ms needs a running server");
  r = Admin({"sagas", "start", "ok-flow", "--example"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "workflow ok-flow@1 has no example input");
  r = Admin({"sagas", "start", "greet", "--input", R"({"who": 7})"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "input.who");
  EXPECT_EQ(Snapshot(), before);  // nothing changed

  r = Admin({"sagas", "start", "greet", "--example", "--idempotency-key", "k-1",
             "--json"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "offline");
  EXPECT_EQ(r.Json()["state"], "running");
  EXPECT_EQ(r.Json()["created"], true);
  const std::string offline = r.Json()["saga_id"].get<std::string>();
  r = Admin({"sagas", "start", "greet", "--input", R"({"who": "Bob"})",
             "--idempotency-key", "k-1"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("idempotency key already used by saga " + offline),
            std::string::npos)
      << r.out;
  r = Admin({"sagas", "show", offline, "--json"}, dir_);
  EXPECT_EQ(r.Json()["started_by"], "local");
  EXPECT_EQ(r.Json()["input"], (json{{"who", "Ada"}}));
  EXPECT_FALSE(Has(LogTypes(offline), "saga_completed"));  // nothing ran

  test::ServerProcess server(kServer, dir_, workflows_);
  ASSERT_TRUE(server.Initialize()) << server.Log();
  EXPECT_EQ(AwaitState(server, offline, "completed"), "completed");
  const std::string input_file = own_.Sub("input.json");
  std::ofstream(input_file) << R"({"who": "Cy"})";
  r = Admin({"sagas", "start", "greet", "--input-file", input_file, "--wait-ms",
             "30000", "--json"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err << server.Log();
  EXPECT_EQ(r.Json()["via"], "server");
  EXPECT_EQ(r.Json()["state"], "completed");
  const std::string online = r.Json()["saga_id"].get<std::string>();
  const json saga = server.CallTool("get_saga", {{"saga_id", online}});
  EXPECT_EQ(saga["steps"][0]["output"], (json{{"to", "Cy"}})) << saga.dump();
  r = Admin({"sagas", "start", "greet", "--input", R"({"who": 7})"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "input.who");
  EXPECT_EQ(server.Stop(), 0) << server.Log();
  EXPECT_EQ(Admin({"verify"}, dir_).exit_code, 0);
}

// A server runs: the changes go through its MCP endpoint.
TEST_F(AdminChangeTest, OnlineChangesGoThroughTheServer) {
  test::ServerProcess server(kServer, dir_, workflows_);
  ASSERT_TRUE(server.Initialize()) << server.Log();

  AdminRun r = Admin({"sagas", "cancel", s_.undo_nap, "--json"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err << server.Log();
  EXPECT_EQ(r.Json()["via"], "server");
  EXPECT_EQ(r.Json()["server_pid"], server.pid());
  EXPECT_EQ(AwaitState(server, s_.undo_nap, "cancelled"), "cancelled");

  Fix();
  r = Admin({"dlq", "replay", s_.skip}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(
      r.out.find("replayed saga " + s_.skip + " through the server (pid " +
                 std::to_string(server.pid()) + ")"),
      std::string::npos)
      << r.out;
  EXPECT_EQ(AwaitState(server, s_.skip, "completed"), "completed");

  // Errors of the tools: one line, exit 1, nothing changed.
  r = Admin({"sagas", "cancel", kUnknownId}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, std::string("no saga ") + kUnknownId);
  r = Admin({"dlq", "replay", s_.done}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "not parked");
  r = Admin({"sagas", "cancel", s_.done, "--server", "http://example.com/mcp"},
            dir_);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--server");

  // replay --all pages through list_dlq and replays each.
  r = Admin({"dlq", "replay", "--all", "--json"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "server");
  EXPECT_EQ(r.Json()["total"], 2);
  EXPECT_EQ(r.Json()["replayed"], 2);
  std::set<std::string> ids;
  const json all = r.Json();
  for (const json& x : all["results"]) {
    ids.insert(x["saga_id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{s_.parked_a, s_.parked_b}));
  EXPECT_EQ(AwaitState(server, s_.parked_a, "parked"), "parked");
  EXPECT_EQ(AwaitState(server, s_.parked_b, "parked"), "parked");
  r = Admin({"dlq", "show", s_.parked_a, "--json"}, dir_);
  EXPECT_EQ(r.Json()["entry"]["replay_count"], 1);

  // --server given explicitly (the base URL or its /mcp).
  std::ifstream in(dir_ + "/server.json");
  const json about = json::parse(in);
  r = Admin({"dlq", "replay", s_.parked_b, "--server",
             about["http"].get<std::string>(), "--json"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "server");
  EXPECT_EQ(r.Json()["state"], "running");

  EXPECT_EQ(server.Stop(), 0) << server.Log();
  EXPECT_EQ(Admin({"verify"}, dir_).exit_code, 0);
}

// A server run with --auth-tokens: the token comes from --token or from
// CDE_ADMIN_TOKEN; without it the change is refused and nothing changes.
TEST_F(AdminChangeTest, BearerTokenFromOptionOrEnvironment) {
  const std::string tokens = own_.Sub("tokens");
  std::ofstream(tokens) << "# admin\nsecret-1\n";
  test::ServerProcess server(kServer, dir_, workflows_, "127.0.0.1:0",
                             {"--auth-tokens", tokens});
  ASSERT_TRUE(server.Initialize()) << server.Log();
  AdminRun r = Admin({"sagas", "cancel", s_.undo_nap}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "needs a bearer token");
  r = Admin({"sagas", "cancel", s_.undo_nap, "--token", "wrong"}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "the one given was refused");
  EXPECT_EQ(AwaitState(server, s_.undo_nap, "running"), "running");
  setenv("CDE_ADMIN_TOKEN", "secret-1", 1);
  r = Admin({"dlq", "replay", "--all", "--json"}, dir_);
  unsetenv("CDE_ADMIN_TOKEN");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["replayed"], 3);
  r = Admin({"sagas", "cancel", s_.undo_nap, "--token", "secret-1"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(AwaitState(server, s_.undo_nap, "cancelled"), "cancelled");

  // The admin endpoint: the token is required, a browser (Origin) is not
  // served even with it.
  const std::string backup = own_.Sub("backup");
  r = Admin({"backup", backup}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "give --token or set CDE_ADMIN_TOKEN");
  std::ifstream in(dir_ + "/server.json");
  const std::string admin_url =
      json::parse(in)["http"].get<std::string>() + "/admin/backup";
  const std::string body = json{{"dir", backup}}.dump();
  EXPECT_EQ(
      Post(admin_url, body,
           {"Authorization: Bearer secret-1", "Origin: http://localhost:3000"}),
      403);
  EXPECT_EQ(Post(admin_url, body, {"Authorization: Bearer wrong"}), 401);
  EXPECT_FALSE(fs::exists(backup));
  r = Admin({"backup", backup, "--token", "secret-1"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(
      r.out.find("taken by the server, pid " + std::to_string(server.pid())),
      std::string::npos)
      << r.out;
  EXPECT_EQ(Admin({"verify"}, backup).exit_code, 0);
  EXPECT_EQ(server.Stop(), 0) << server.Log();
}

// dlq purge: offline through the maintenance engine, and through the
// server's admin endpoint; verify finds nothing left behind.
TEST_F(AdminChangeTest, PurgeDeletesParkedSagasOfflineAndThroughTheServer) {
  const auto before = Snapshot();
  AdminRun r = Admin({"dlq", "purge", kUnknownId}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, std::string("no saga ") + kUnknownId);
  r = Admin({"dlq", "purge", s_.undo_nap}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "not parked");
  EXPECT_EQ(Admin({"dlq", "purge"}, dir_).exit_code, 2);
  EXPECT_EQ(
      Admin({"dlq", "purge", s_.skip, "--older-than", "1h"}, dir_).exit_code,
      2);
  r = Admin({"dlq", "purge", "--older-than", "yesterday"}, dir_);
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "--older-than");
  EXPECT_EQ(Snapshot(), before);

  r = Admin({"dlq", "purge", s_.parked_a, "--json"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "offline");
  EXPECT_EQ(r.Json()["entry"]["step"], "check");
  EXPECT_EQ(r.Json()["entry"]["reason"], "step_failed");
  EXPECT_EQ(Admin({"sagas", "show", s_.parked_a}, dir_).exit_code, 1);
  EXPECT_EQ(Admin({"dlq", "list", "--json"}, dir_).Json()["entries"].size(),
            2u);
  r = Admin({"verify"}, dir_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // Nothing parked more than an hour ago.
  r = Admin({"dlq", "purge", "--older-than", "1h"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("purged 0 of 0 sagas parked before"), std::string::npos)
      << r.out;

  test::ServerProcess server(kServer, dir_, workflows_);
  ASSERT_TRUE(server.Initialize()) << server.Log();
  std::ifstream in(dir_ + "/server.json");
  const std::string purge_url =
      json::parse(in)["http"].get<std::string>() + "/admin/dlq/purge";
  EXPECT_EQ(Post(purge_url, json{{"saga_id", s_.skip}}.dump(),
                 {"Origin: http://localhost:3000"}),
            403);
  r = Admin({"dlq", "purge", "--older-than", "0s", "--workflow", "park-flow",
             "--json"},
            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = r.Json();
  EXPECT_EQ(j["via"], "server");
  EXPECT_EQ(j["total"], 1);
  EXPECT_EQ(j["purged"], 1);
  EXPECT_EQ(j["results"][0]["saga_id"], s_.parked_b);
  r = Admin({"dlq", "purge", s_.skip}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("purged saga " + s_.skip + " (skip-flow@1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("through the server (pid"), std::string::npos);
  r = Admin({"dlq", "purge", s_.skip}, dir_);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "no saga " + s_.skip);
  const json got = server.CallTool("get_saga", {{"saga_id", s_.parked_b}});
  EXPECT_TRUE(got.is_null());
  EXPECT_EQ(server.Stop(), 0) << server.Log();

  r = Admin({"sagas", "list", "--json"}, dir_);
  EXPECT_EQ(r.Json()["sagas"].size(), 2u);  // done, undo_nap
  EXPECT_EQ(Admin({"dlq", "list", "--json"}, dir_).Json()["entries"].size(),
            0u);
  r = Admin({"verify"}, dir_);
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// A server over stdio only holds the store and cannot be reached: refused
// with exit 3. A stale server.json (dead pid) is ignored.
TEST_F(AdminChangeTest, UnreachableServerIsRefusedAndStaleFileIgnored) {
  {
    test::ServerProcess server(kServer, dir_, workflows_, "none");
    ASSERT_TRUE(server.Initialize()) << server.Log();
    AdminRun r = Admin({"sagas", "cancel", s_.undo_nap}, dir_);
    EXPECT_EQ(r.exit_code, 3);
    ExpectOneLineError(r, "a server (pid " + std::to_string(server.pid()) +
                              ") holds the store but has no reachable HTTP "
                              "API; stop it or run it with --http");
    r = Admin({"dlq", "replay", "--all"}, dir_);
    EXPECT_EQ(r.exit_code, 3);
    r = Admin({"backup", own_.Sub("no-backup")}, dir_);
    EXPECT_EQ(r.exit_code, 3);
    ExpectOneLineError(r, "no reachable HTTP API");
    EXPECT_FALSE(fs::exists(own_.Sub("no-backup")));
    const json got = server.CallTool("get_saga", {{"saga_id", s_.undo_nap}});
    EXPECT_EQ(got["state"], "running");
    EXPECT_EQ(server.Stop(), 0) << server.Log();
  }
  // A server.json left by a process that is gone.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  std::ofstream(dir_ + "/server.json")
      << json{{"pid", child}, {"http", "http://127.0.0.1:9"}}.dump();
  AdminRun r = Admin({"sagas", "cancel", s_.undo_nap, "--json"}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["via"], "offline");
}

}  // namespace
}  // namespace cde
