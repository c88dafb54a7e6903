#include "testing/stress.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace lifecycle_testing {

::testing::AssertionResult StressStartStop(lifecycle::BaseService& service,
                                           StressOptions options) {
  if (options.threads <= 0 || options.cycles <= 0) {
    return ::testing::AssertionFailure()
           << "StressStartStop: threads and cycles must be positive, got "
           << options.threads << " and " << options.cycles;
  }
  uint64_t seed = options.seed != 0 ? options.seed : std::random_device()();
  std::string context =
      absl::StrCat("stress (seed ", seed, ", ", options.threads,
                   " threads x ", options.cycles, " cycles): ");

  absl::Mutex mu;
  std::string first_error ABSL_GUARDED_BY(mu);
  std::atomic<bool> failed{false};
  auto fail = [&](int thread, int cycle, const std::string& what) {
    absl::MutexLock lock(&mu);
    if (first_error.empty()) {
      first_error = absl::StrCat("thread ", thread, " cycle ", cycle, ": ", what);
    }
    failed = true;
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
      for (int c = 0; c < options.cycles && !failed; ++c) {
        delay();
        absl::Status started = service.Start(lifecycle::Context::Background());
        if (!started.ok() && !(options.allowed_start_error &&
                               options.allowed_start_error(started))) {
          fail(t, c, absl::StrCat("unexpected start error: ", started.ToString()));
          return;
        }
        // Another thread may stop the run at any moment; the started signal
        // must close either way.
        if (!service.Started().WaitFor(options.wait_timeout)) {
          fail(t, c, absl::StrCat("started signal not closed within ",
                                  absl::FormatDuration(options.wait_timeout)));
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
  if (!failed) {
    absl::Status final_stop = service.StopFor(options.wait_timeout);
    if (final_stop.ok()) return ::testing::AssertionSuccess();
    fail(-1, -1, std::string(final_stop.message()));
  }
  absl::MutexLock lock(&mu);
  return ::testing::AssertionFailure()
         << context << first_error << "\n" << service.Snapshot();
}

}  // namespace lifecycle_testing
