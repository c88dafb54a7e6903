#include "lifecycle/testing/harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/context.h"
#include "lifecycle/outputs_internal.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/testing/matchers.h"
#include "lifecycle/testing/virtual_time.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {

using lifecycle::Service;
using lifecycle::Signal;

StartStopHarness::StartStopHarness(std::vector<Service*> services)
    : StartStopHarness(std::move(services), Options()) {}

StartStopHarness::StartStopHarness(std::vector<Service*> services,
                                   Options options)
    : services_(std::move(services)),
      options_(std::move(options)),
      scope_(
          std::make_unique<lifecycle::CancellableContext>(options_.context)) {
  // A stop that hangs is reported with the stacks of what holds it up.
  lifecycle::EnableThreadStacksInReports();
}

StartStopHarness::~StartStopHarness() {
  // A test that failed keeps the start-up trace of its services, for a look
  // at what its start did; a passing test writes nothing (unless asked).
  if (starter_ != nullptr && !trace_written_ && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "StartStopHarness: the test failed. %s\n",
                 WriteStartupTrace().c_str());
  }
  if (!stopped_) {
    ::testing::AssertionResult result = StopServices();
    // Reported at the test's StartAll(): the destructor has no line of its own
    // in the test.
    if (!result) {
      ADD_FAILURE_AT(start_file_, start_line_)
          << "StartStopHarness (stopping on destruction): "
          << wait_internal::ValidUtf8(std::move(result)).message();
    }
  }
  if (starter_ == nullptr) return;
  // A start that timed out may still be inside a Start() (a blocking
  // OnStart()); the stop above cancelled its context. Its thread uses the
  // services, so it must end before they are destroyed.
  if (!start_returned_.WaitFor(options_.stop_timeout)) {
    std::fprintf(
        stderr,
        "lifecycle: FATAL: StartStopHarness: a Start() has not "
        "returned %s after the harness stopped its services; they "
        "cannot be destroyed safely, so the process stops here.\n%s",
        lifecycle::strings_internal::DurationText(options_.stop_timeout)
            .c_str(),
        Report().c_str());
    std::fflush(stderr);
    std::abort();
  }
  starter_->Join();
}

std::string StartStopHarness::Report() const {
  return lifecycle::ToTable(lifecycle::SnapshotAll(services_));
}

namespace {

// The folder of this run's outputs outside Bazel: one per process, under
// $TMPDIR (or /tmp), made when the first file is written.
std::string PerRunOutputDirectory() {
  static const std::string* const dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    if (base.back() == '/') base.pop_back();
    std::string binary = "test";
    if (std::ifstream comm("/proc/self/comm"); comm) {
      std::getline(comm, binary);
    }
    return new std::string(absl::StrCat(base, "/lifecycle-outputs-", binary,
                                        "-", static_cast<long>(getpid())));
  }();
  return *dir;
}

using lifecycle::outputs_internal::NonEmptyEnv;

// LIFECYCLE_OUTPUTS=all: the timeline of every start, passing or not.
bool WritesEveryOutput() {
  const char* outputs = NonEmptyEnv("LIFECYCLE_OUTPUTS");
  return outputs != nullptr && absl::string_view(outputs) == "all";
}

}  // namespace

std::string TestOutputDirectory() {
  std::string dir;
  for (const char* name : {"LIFECYCLE_OUTPUT_DIR", "LIFECYCLE_SNAPSHOT_DIR",
                           "TEST_UNDECLARED_OUTPUTS_DIR"}) {
    if (const char* chosen = NonEmptyEnv(name)) {
      dir = chosen;
      break;
    }
  }
  if (dir.empty()) dir = PerRunOutputDirectory();
  // The whole path, as `mkdir -p` makes it (EEXIST after the first file).
  for (size_t slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1)) {
    mkdir(dir.substr(0, slash).c_str(), 0755);
  }
  mkdir(dir.c_str(), 0755);
  return dir;
}

std::string TestOutputPath(std::string_view file_name) {
  std::string dir = TestOutputDirectory();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  return absl::StrCat(
      dir, "/",
      absl::StrReplaceAll(absl::string_view(file_name.data(), file_name.size()),
                          {{"/", "_"}}));
}

std::string TestOutputFileName(std::string_view kind) {
  const ::testing::TestInfo* test =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string base = test == nullptr ? std::string("lifecycle")
                                     : absl::StrCat(test->test_suite_name(),
                                                    ".", test->name());
  std::string kind_text(kind);
  // How many files of this kind this test has written in this process: a
  // second harness in the test, or a run of --gtest_repeat.
  static absl::Mutex mu(absl::kConstInit);
  static auto* written = new absl::flat_hash_map<std::string, int>();
  int n;
  {
    absl::MutexLock lock(&mu);
    n = ++(*written)[absl::StrCat(base, ".", kind_text)];
  }
  return n == 1 ? absl::StrCat(base, ".", kind_text)
                : absl::StrCat(base, ".", n, ".", kind_text);
}

std::string DescribeTestOutput(std::string_view path) {
  return lifecycle::outputs_internal::DescribeTestOutput(path);
}

std::string StartStopHarness::WriteSnapshotOutput() const {
  std::string path = TestOutputPath(TestOutputFileName("snapshot.json"));
  std::ofstream out(path);
  out << lifecycle::ToJson(lifecycle::SnapshotAll(services_), 2) << "\n";
  out.close();
  if (!out) return absl::StrCat("(could not write the snapshot to ", path, ")");
  return absl::StrCat("Snapshot (JSON): ", DescribeTestOutput(path));
}

std::string StartStopHarness::WriteStartupTrace() {
  trace_written_ = true;
  std::string path = TestOutputPath(TestOutputFileName("startup.json"));
  std::vector<lifecycle::ServiceSnapshot> snapshots =
      lifecycle::SnapshotAll(services_);
  std::ofstream json(path), svg(path + ".svg");
  json << lifecycle::ToTraceEventJson(snapshots);
  svg << lifecycle::ToStartupSvg(snapshots);
  json.close();
  svg.close();
  if (!json || !svg) {
    return absl::StrCat("(could not write the start-up trace to ", path, ")");
  }
  return absl::StrCat("Start-up trace: ", DescribeTestOutput(path), " (and ",
                      path.substr(path.rfind('/') + 1), ".svg)");
}

struct HarnessResult::State {
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  const char* what;
  const char* file;
  int line;
  bool examined;
};

HarnessResult::HarnessResult(::testing::AssertionResult result,
                             const char* what, const char* file, int line,
                             bool examined)
    : state_(std::make_shared<State>(
          State{wait_internal::ValidUtf8(std::move(result)), what, file, line,
                examined})) {}

HarnessResult::~HarnessResult() { ReportIfUnexamined(); }

HarnessResult& HarnessResult::operator=(const HarnessResult& other) {
  if (state_ != other.state_) {
    ReportIfUnexamined();
    state_ = other.state_;
  }
  return *this;
}

void HarnessResult::ReportIfUnexamined() const {
  if (state_ == nullptr || state_.use_count() > 1) return;
  if (state_->result || state_->examined) return;
  ADD_FAILURE_AT(state_->file, state_->line)
      << "StartStopHarness: " << state_->what
      << " failed and nobody checked its result (check it: "
         "ASSERT_TRUE(harness."
      << state_->what << ")):\n"
      << state_->result.message();
}

HarnessResult::operator ::testing::AssertionResult() const {
  state_->examined = true;
  return state_->result;
}

HarnessResult::operator bool() const {
  state_->examined = true;
  return static_cast<bool>(state_->result);
}

const char* HarnessResult::message() const {
  state_->examined = true;
  return state_->result.message();
}

HarnessResult StartStopHarness::StartAll(const char* file, int line) {
  start_file_ = file;
  start_line_ = line;
  start_status_ = absl::OkStatus();
  ::testing::AssertionResult result = Start();
  return HarnessResult(std::move(result), "StartAll()", file, line,
                       /*examined=*/Expected(start_status_));
}

::testing::AssertionResult StartStopHarness::Start() {
  if (starter_ != nullptr) {
    if (!start_returned_.IsClosed()) {
      return ::testing::AssertionFailure()
             << "StartStopHarness: an earlier start has not returned yet\n"
             << DescribeServices(services_);
    }
    starter_->Join();
    starter_.reset();
  }
  stopped_ = false;
  if (scope_->context().IsCancelled()) {
    scope_ = std::make_unique<lifecycle::CancellableContext>(options_.context);
  }
  absl::Time deadline = lifecycle::Now() + options_.start_timeout;
  // Start() runs on a helper thread, so that a Start() that blocks (in
  // OnStart()) is bounded by the start timeout like everything else.
  auto status_holder = std::make_shared<absl::Status>();
  start_returned_ = Signal();
  try {
    // In the services' time: under virtual time, it counts as running until
    // the starts have returned, so time does not move past them meanwhile.
    starter_ = std::make_unique<lifecycle::Thread>(
        scope_->context(), "StartStopHarness::StartAll",
        [services = services_, ctx = scope_->context(), status_holder,
         done = start_returned_] {
          *status_holder = lifecycle::StartAll(services, ctx);
          done.Close();
        });
  } catch (const std::system_error&) {
    // Out of threads: start on this thread, unbounded.
    *status_holder = lifecycle::StartAll(services_, scope_->context());
    start_returned_.Close();
  }
  absl::Status status;
  if (start_returned_.WaitUntil(deadline)) {
    status = *status_holder;  // the helper wrote it before closing the signal
  } else {
    // Say what the services' own states say: one still in its Start(), and
    // those the helper thread had not reached yet (a zero timeout can pass
    // before the first Start() is called).
    std::vector<std::string> starting, not_yet;
    for (const lifecycle::ServiceSnapshot& s :
         lifecycle::SnapshotAll(services_)) {
      if (s.state == lifecycle::ServiceState::kStarting) {
        starting.push_back(s.path);
      } else if (s.state == lifecycle::ServiceState::kStopped) {
        not_yet.push_back(s.path);
      }
    }
    std::string text = absl::StrCat(
        "Start() did not return within ",
        lifecycle::strings_internal::DurationText(options_.start_timeout));
    if (!starting.empty()) {
      absl::StrAppend(&text, " (a blocking OnStart()?); still in Start(): ",
                      absl::StrJoin(starting, ", "));
    }
    if (!not_yet.empty()) {
      absl::StrAppend(&text, starting.empty() ? "; " : "; and ",
                      "not started yet (the start timeout passed before "
                      "their Start() was called): ",
                      absl::StrJoin(not_yet, ", "));
    }
    status = absl::DeadlineExceededError(text);
  }
  if (status.ok()) {
    status = lifecycle::WaitAllStartedUntil(
        services_, lifecycle::Now() + options_.start_timeout);
  }
  if (status.ok()) {
    // What counts as a death from now on (see UnexpectedDeaths()).
    started_ = true;
    started_at_ = lifecycle::clock_internal::NowIn(
        lifecycle::context_internal::TimeSourceOf(scope_->context()));
    examined_generation_ = matchers_internal::ExaminedGeneration();
    deaths_at_start_.clear();
    for (const lifecycle::ServiceSnapshot& root :
         lifecycle::SnapshotAll(services_)) {
      auto& deaths = deaths_at_start_.emplace_back();
      for (const lifecycle::ServiceSnapshot* s : root.Flatten()) {
        deaths[s->path] = matchers_internal::Deaths(*s);
      }
    }
    if (WritesEveryOutput()) WriteStartupTrace();
    return ::testing::AssertionSuccess();
  }
  start_status_ = status;
  std::string written =
      absl::StrCat(WriteSnapshotOutput(), "\n", WriteStartupTrace());
  // The status names the service: the innermost one that failed (its own
  // error, with its path), or every one still pending and for how long.
  std::string headline = lifecycle::StatusText(status);
  if (absl::IsDeadlineExceeded(status)) {
    absl::StrAppend(
        &headline, " (start timeout ",
        lifecycle::strings_internal::DurationText(options_.start_timeout), ")");
  }
  return ::testing::AssertionFailure()
         << "StartStopHarness: " << headline << "\n"
         << DescribeServices(services_) << written << "\n";
}

::testing::AssertionResult StartStopHarness::StopServices() {
  stopped_ = true;
  // Every stop is requested at once and all are waited for together, bounded
  // as a whole: a service that does not stop is reported, never waited for
  // forever, and no thread is left behind holding a service.
  // In the services' time: under a VirtualTime, outside its Run() (this
  // harness's destructor after a failed ASSERT), the time moves for the stop.
  // A start that timed out may still be inside a Start() (a blocking
  // OnStart()). Its context is cancelled first and its thread given the stop
  // timeout to return: otherwise the services after the blocked one would be
  // started by it after their stop, and left running.
  const bool start_pending = starter_ != nullptr && !start_returned_.IsClosed();
  if (start_pending) scope_->Cancel(lifecycle::StoppedError());
  absl::Status stop;
  ::testing::AssertionResult in_time = virtual_time_internal::RunInTimeOf(
      options_.context, "StartStopHarness::StopAll", "stopping the services",
      [&] {
        if (start_pending) start_returned_.WaitFor(options_.stop_timeout);
        stop = lifecycle::StopAllParallelFor(services_, options_.stop_timeout);
      });
  scope_->Cancel(lifecycle::StoppedError());
  std::string deaths = UnexpectedDeaths();
  started_ = false;
  if (stop.ok() && deaths.empty() && in_time) {
    return ::testing::AssertionSuccess();
  }
  std::string written = WriteSnapshotOutput();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  if (!in_time) failure << in_time.message() << "\n";
  if (!stop.ok()) failure << lifecycle::StatusText(stop) << "\n";
  return failure << deaths << Report() << written << "\n";
}

void StartStopHarness::ExpectFailure(std::string path) {
  expected_failures_.push_back(std::move(path));
}

namespace {

bool AtOrUnder(absl::string_view path, absl::string_view root) {
  return path == root ||
         (absl::StartsWith(path, root) && path.size() > root.size() &&
          path[root.size()] == '/');
}

std::string Rfc3339Millis(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace

bool StartStopHarness::Expected(const absl::Status& status) const {
  std::optional<std::string> path = lifecycle::FailedServicePath(status);
  if (!path) return false;
  for (const std::string& e : expected_failures_) {
    if (AtOrUnder(*path, e)) return true;
  }
  return false;
}

std::string StartStopHarness::UnexpectedDeaths() const {
  if (!started_) return "";
  std::vector<lifecycle::ServiceSnapshot> roots =
      lifecycle::SnapshotAll(services_);
  // Every service that died since the start (failed, or returned while
  // nobody had asked it to stop), by path, with how often.
  absl::flat_hash_map<std::string, const lifecycle::ServiceSnapshot*> died;
  std::vector<std::pair<const lifecycle::ServiceSnapshot*, int64_t>> order;
  for (size_t r = 0; r < roots.size(); ++r) {
    for (const lifecycle::ServiceSnapshot* s : roots[r].Flatten()) {
      int64_t baseline = 0;
      if (r < deaths_at_start_.size()) {
        auto before = deaths_at_start_[r].find(s->path);
        if (before != deaths_at_start_[r].end()) baseline = before->second;
      }
      if (int64_t times = matchers_internal::Deaths(*s) - baseline; times > 0) {
        died[s->path] = s;
        order.push_back({s, times});
      }
    }
  }
  std::vector<std::string> lines;
  for (const auto& [s, times] : order) {
    // A composite that failed because a descendant died: the descendant's
    // line says it.
    std::optional<std::string> origin =
        lifecycle::FailedServicePath(s->last_failure);
    if (origin && *origin != s->path && died.contains(*origin)) continue;
    bool expected = false;
    for (const std::string& e : expected_failures_) {
      expected |= AtOrUnder(s->path, e) || (origin && AtOrUnder(*origin, e));
    }
    if (expected ||
        matchers_internal::FailureExamined(
            s->path, matchers_internal::Deaths(*s), examined_generation_)) {
      continue;
    }
    // The last death: a failure, or a clean return nobody asked for.
    bool unasked = s->last_unasked_end_at > s->last_failure_at;
    absl::Time at = unasked ? s->last_unasked_end_at : s->last_failure_at;
    std::string line = absl::StrCat(
        "  ", s->path, " died ",
        lifecycle::strings_internal::DurationText(
            absl::Trunc(at - started_at_, absl::Microseconds(1))),
        " after the start (", Rfc3339Millis(at), "): ",
        unasked ? "its run returned while nobody had asked it to stop"
                : lifecycle::StatusText(s->last_failure));
    if (times > 1) absl::StrAppend(&line, " [died ", times, " times]");
    if (s->restart_count > 0) {
      absl::StrAppend(&line, " [restarted ", s->restart_count, " times]");
    }
    lines.push_back(std::move(line));
  }
  std::string out;
  if (!lines.empty()) {
    absl::StrAppend(&out, lines.size(),
                    " service(s) died during the test (expect it with "
                    "ExpectFailure(path), or check it with HasFailed()):\n",
                    absl::StrJoin(lines, "\n"), "\n");
  }
  for (const std::string& e : expected_failures_) {
    bool happened = false;
    for (const auto& [path, s] : died) happened |= AtOrUnder(path, e);
    if (!happened) {
      absl::StrAppend(&out, "Expected a failure of ", e,
                      " during the test (ExpectFailure), but none happened\n");
    }
  }
  return out;
}

HarnessResult StartStopHarness::StopAll(const char* file, int line) {
  ::testing::AssertionResult result = StopServices();
  if (!result) {
    result = ::testing::AssertionFailure()
             << "StartStopHarness: " << result.message();
  }
  return HarnessResult(std::move(result), "StopAll()", file, line);
}

}  // namespace lifecycle_testing
