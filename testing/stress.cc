#include "lifecycle/testing/stress.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/strings_internal.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle_testing {
namespace {

// The first failure any stress thread saw.
class FirstFailure {
 public:
  void Set(std::string what) {
    absl::MutexLock lock(&mu_);
    if (what_.empty()) what_ = std::move(what);
    failed_ = true;
  }
  bool failed() const { return failed_; }
  std::string what() {
    absl::MutexLock lock(&mu_);
    return what_;
  }

 private:
  absl::Mutex mu_;
  std::string what_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
};

}  // namespace

::testing::AssertionResult StressStartStop(lifecycle::Service& service,
                                           StressOptions options) {
  if (options.threads <= 0 || options.cycles <= 0) {
    return ::testing::AssertionFailure()
           << "StressStartStop: threads and cycles must be positive, got "
           << options.threads << " and " << options.cycles;
  }
  lifecycle::EnableThreadStacksInReports();  // for a stop that hangs
  uint64_t seed = options.seed != 0 ? options.seed : std::random_device()();
  std::string context =
      absl::StrCat("stress (seed ", seed, ", ", options.threads, " threads x ",
                   options.cycles, " cycles): ");

  FirstFailure failure;
  auto fail = [&](int thread, int cycle, const std::string& what) {
    failure.Set(absl::StrCat("thread ", thread, " cycle ", cycle, ": ", what));
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(seed + t);
      int64_t max_delay_ns = absl::ToInt64Nanoseconds(options.max_delay);
      auto delay = [&] {
        if (max_delay_ns > 0) {
          absl::SleepFor(absl::Nanoseconds(random() % max_delay_ns));
        }
      };
      for (int c = 0; c < options.cycles && !failure.failed(); ++c) {
        delay();
        absl::Status started = service.Start(lifecycle::Context::Background());
        if (!started.ok() && !(options.allowed_start_error &&
                               options.allowed_start_error(started))) {
          fail(t, c,
               absl::StrCat("unexpected start error: ", started.ToString()));
          return;
        }
        // Another thread may stop the run at any moment; the started signal
        // must close either way.
        if (!service.Started().WaitFor(options.wait_timeout)) {
          fail(t, c,
               absl::StrCat("started signal not closed within ",
                            lifecycle::strings_internal::DurationText(
                                options.wait_timeout)));
          return;
        }
        delay();
        absl::Status stopped = service.StopFor(options.wait_timeout);
        if (!stopped.ok()) {
          fail(t, c, std::string(stopped.message()));
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (!failure.failed()) {
    absl::Status final_stop = service.StopFor(options.wait_timeout);
    if (final_stop.ok()) return ::testing::AssertionSuccess();
    failure.Set(absl::StrCat("final stop: ", final_stop.message()));
  }
  return ::testing::AssertionFailure() << context << failure.what() << "\n"
                                       << service.Snapshot();
}

}  // namespace lifecycle_testing
