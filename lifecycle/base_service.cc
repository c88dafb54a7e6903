#include "lifecycle/base_service.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/dependency_graph.h"
#include "lifecycle/service_tree.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using base_service_internal::ChildHandle;
using base_service_internal::CloseIfWatched;
using base_service_internal::Die;
using base_service_internal::Lifeline;
using base_service_internal::ValidateName;
using strings_internal::AbslView;

namespace {

// Runs `body`, turning an exception into an InternalError with its message;
// `where()` names the place, and is called only then.
template <typename Where, typename Body>
absl::Status CatchExceptions(Where&& where, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("uncaught exception in ", where(), ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat("uncaught exception in ", where(),
                                            " (not a std::exception)"));
  }
}

// At most `max_bytes` of `name`, cut at a UTF-8 character boundary.
std::string TruncateUtf8(absl::string_view name, size_t max_bytes) {
  if (name.size() <= max_bytes) return std::string(name);
  size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string(name.substr(0, end));
}

// What the current thread is doing for which service: running its worker, or
// its OnStart() inside Start(). Stops that would wait for it are refused.
struct CurrentRun {
  const BaseService* service = nullptr;
  bool in_on_start = false;
};
thread_local CurrentRun current_run;

class ScopedCurrentRun {
 public:
  ScopedCurrentRun(const BaseService* service, bool in_on_start)
      : saved_(current_run) {
    current_run = CurrentRun{service, in_on_start};
  }
  ~ScopedCurrentRun() { current_run = saved_; }

 private:
  CurrentRun saved_;
};

}  // namespace

namespace base_service_internal {
struct History {
  int64_t error_count = 0;
  absl::Status last_error;
  absl::Time last_error_at = absl::InfinitePast();
  int64_t failure_count = 0;
  absl::Status last_failure;
  absl::Time last_failure_at = absl::InfinitePast();
  int64_t unasked_end_count = 0;
  absl::Time last_unasked_end_at = absl::InfinitePast();
  int64_t restart_count = 0;  // by its parent
  std::vector<std::pair<std::string, std::string>> details;
};
}  // namespace base_service_internal

using base_service_internal::History;

History& BaseService::HistoryLocked() {
  if (history_ == nullptr) history_ = std::make_unique<History>();
  return *history_;
}

absl::Duration DestructionStopTimeout() {
  absl::Duration timeout;
  const char* value = std::getenv("LIFECYCLE_DESTROY_TIMEOUT");
  if (value != nullptr && absl::ParseDuration(value, &timeout) &&
      timeout >= absl::ZeroDuration()) {
    return timeout;
  }
  return absl::Seconds(30);
}

bool WaitSnapshotUntil(const BaseService& service,
                       absl::FunctionRef<bool(const ServiceSnapshot&)> done,
                       absl::Time deadline) {
  while (true) {
    Signal next = service.NextChange();  // before the look: no change is lost
    if (done(service.Snapshot())) return true;
    if (!next.WaitUntil(deadline)) return done(service.Snapshot());
  }
}

BaseService::BaseService(std::string name)
    : name_(std::move(name)),
      name_error_(ValidateName(name_)),
      lifeline_(std::make_shared<Lifeline>()) {
  {
    absl::MutexLock lock(&mu_);
    since_ = absl::Now();
  }
  base_service_internal::Access::JoinLiveList(*this);
}

BaseService::~BaseService() {
  // Leave the list of live services first: SnapshotLiveServices() reads a
  // service only while it is in the list, under the list's mutex.
  base_service_internal::Access::LeaveLiveList(*this);
  // Then, no call through a parent's tree reaches this object any more.
  lifeline_->End();
  {
    absl::MutexLock lock(&mu_);
    if (running_) {
      // Not Path(): the parent may be gone already.
      Die(absl::StrCat("service '", name_,
                       "' destroyed while running. The most derived class must "
                       "stop it in its destructor (StopForDestruction())."));
    }
  }
  LeaveTree();
  JoinFinishedWorker();
  absl::MutexLock join_lock(&join_mu_);
  // Destroyed from its own Stopped() callback: the ended worker cannot join
  // itself; it no longer touches this object, so it may finish on its own.
  for (std::thread& t : ended_workers_) t.detach();
  if (worker_.joinable()) worker_.detach();
}

void BaseService::StopForDestruction() {
  absl::Status status = StopFor(DestructionStopTimeout());
  if (!status.ok()) {
    Die(absl::StrCat(
        StatusText(status),
        "\nIt is being destroyed; freeing it while its worker runs would "
        "corrupt memory, so the process stops here."));
  }
}

std::optional<Signal> BaseService::SetStateLocked(ServiceState state) {
  state_ = state;
  since_ = NowLocked();
  return TakeChangeLocked();
}

std::optional<Signal> BaseService::TakeChangeLocked() {
  if (signal_internal::IsUnmade(change_)) return std::nullopt;
  return std::exchange(change_, signal_internal::Unmade());
}

absl::Status BaseService::OnStart(const Context&) { return absl::OkStatus(); }

absl::Status BaseService::Start(const Context& ctx) {
  return StartRun(ctx, /*refuse_if_stopped=*/false, nullptr);
}

absl::Status BaseService::StartRun(const Context& ctx, bool refuse_if_stopped,
                                   bool* refused) {
  JoinFinishedWorker();  // the previous run's worker, if it ended by itself

  // Made and replaced outside `mu_`: making one may cancel it at once (a
  // cancelled `ctx`), destroying the previous one cancels it, and either runs
  // callbacks.
  auto run_context = std::make_shared<CancellableContext>(ctx);
  std::shared_ptr<CancellableContext> previous_context;
  Context run_ctx = run_context->context();
  Signal started = signal_internal::Unmade();
  Signal stopped = signal_internal::Unmade();
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::OkStatus();
    if (refuse_if_stopped) {  // a restart by the parent
      if (stop_requested_) {
        *refused = true;
        return absl::OkStatus();
      }
      ++HistoryLocked().restart_count;
    }
    running_ = true;
    // Fresh signals for every run but the first, whose signals may have been
    // handed out before it. (Not "if closed": the last run's worker may not
    // have closed its signals yet.)
    if (signals_used_ || signal_internal::IsUnmade(started_)) {
      started_ = Signal();
    }
    if (signals_used_ || signal_internal::IsUnmade(stopped_)) {
      stopped_ = Signal();
    }
    signals_used_ = true;
    started = started_;
    stopped = stopped_;
    previous_context = std::exchange(run_context_, run_context);
    status_ = absl::OkStatus();
    degraded_ = false;
    ++start_count_;
    stop_requested_ = false;
    run_is_restart_ = refuse_if_stopped;
    if (!run_is_restart_) {
      start_began_ = NowLocked();
      startup_completed_ = false;
      startup_duration_ = absl::ZeroDuration();
    }
    changed = SetStateLocked(ServiceState::kStarting);
  }
  previous_context.reset();
  CloseIfWatched(changed);

  // A bad name fails every start the way a failing OnStart() does: both
  // signals close, so no waiter hangs on it.
  absl::Status status = name_error_;
  if (status.ok()) {
    ScopedCurrentRun in_on_start(this, /*in_on_start=*/true);
    status = CatchExceptions(
        [&] { return absl::StrCat("OnStart() of service '", Path(), "'"); },
        [&] { return OnStart(run_ctx); });
  }
  if (!status.ok()) {
    status = AnnotateStartError(std::move(status), Path());
    FinishRun(status, run_ctx, started, stopped);
    return status;
  }
  // join_mu_ is held until the new worker is stored in worker_: the worker
  // may end its run at once, but JoinFinishedWorker() (which takes join_mu_)
  // only looks for it once it is there.
  absl::MutexLock join_lock(&join_mu_);
  // A run started by a concurrent Start() may have ended already: hand its
  // worker over for joining (by this thread, unless it is that worker).
  if (worker_.joinable()) ended_workers_.push_back(std::move(worker_));
  // Under virtual time the new worker counts as running from now on, so the
  // test never sees every thread blocked while it is on its way.
  clock_internal::TimeSource* time = context_internal::TimeSourceOf(run_ctx);
  if (time != nullptr) time->ThreadCreating();
  try {
    worker_ =
        std::thread(&BaseService::WorkerMain, this, run_ctx, started, stopped);
  } catch (const std::system_error& e) {
    if (time != nullptr) time->ThreadNotCreated();
    // Out of threads (EAGAIN): a failed start, not a run nobody can end.
    status =
        AnnotateStartError(absl::ResourceExhaustedError(absl::StrCat(
                               "cannot create the worker thread: ", e.what())),
                           Path());
    FinishRun(status, run_ctx, started, stopped);
    return status;
  }
  return absl::OkStatus();
}

void BaseService::WorkerMain(Context ctx, Signal started, Signal stopped) {
  pthread_setname_np(pthread_self(), TruncateUtf8(name_, 15).c_str());
  // The thread lives in its context's time until it ends, after FinishRun()
  // (`ctx` keeps that time alive).
  clock_internal::ScopedThreadTime in_time(context_internal::TimeSourceOf(ctx),
                                           Path());
  {
    absl::MutexLock lock(&mu_);
    worker_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
  }
  absl::Status status;
  {
    ScopedCurrentRun in_worker(this, /*in_on_start=*/false);
    status = CatchExceptions(
        [&] { return absl::StrCat("service '", Path(), "'"); },
        [&] { return Run(ctx, [&] { MarkStarted(started); }); });
  }
  // The run is over: from here, callbacks of the signals may re-enter.
  FinishRun(std::move(status), ctx, started, stopped);
}

void BaseService::MarkStarted(const Signal& started) {
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (started.IsClosed() || started != started_) return;
    if (state_ == ServiceState::kStarting) {
      if (!run_is_restart_) {
        startup_duration_ = NowLocked() - start_began_;
        startup_completed_ = true;
      }
      changed = SetStateLocked(ServiceState::kStarted);
    }
  }
  started.Close();
  CloseIfWatched(changed);
}

void BaseService::FinishRun(absl::Status status, const Context& ctx,
                            const Signal& started, const Signal& stopped) {
  // A run that returns its context's cause after the context was cancelled
  // (by Stop() or by the caller's context) ended as asked: a clean stop.
  bool clean = status.ok() || IsStopped(status) ||
               (ctx.IsCancelled() && status == ctx.Cause());
  std::string path = clean ? std::string() : Path();
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (clean) {
      if (!stop_requested_ && !ctx.IsCancelled()) {
        History& history = HistoryLocked();
        ++history.unasked_end_count;
        history.last_unasked_end_at = NowLocked();
      }
      changed = SetStateLocked(ServiceState::kStopped);
    } else {
      status_ = started.IsClosed() ? AnnotateRunError(status, path)
                                   : AnnotateStartError(status, path);
      History& history = HistoryLocked();
      ++history.failure_count;
      history.last_failure = status_;
      history.last_failure_at = NowLocked();
      changed = SetStateLocked(ServiceState::kFailed);
    }
    running_ = false;
    ending_thread_ = std::this_thread::get_id();
    worker_tid_ = 0;
    degraded_ = false;
  }
  // Nothing below touches this object: a callback of these signals may
  // restart, stop or even destroy the service.
  started.Close();
  stopped.Close();
  CloseIfWatched(changed);
}

void BaseService::JoinFinishedWorker() {
  base_service_internal::Workers ended;
  TakeEndedWorkers(ended);
  // Outside join_mu_ and every lifeline: the worker being joined may still be
  // running a Stopped() callback that calls Start() or Stop() on this service,
  // or destroys a child.
  for (std::thread& t : ended) t.join();
}

void BaseService::TakeEndedWorkers(base_service_internal::Workers& out) {
  {
    absl::MutexLock join_lock(&join_mu_);
    bool running;
    {
      absl::MutexLock lock(&mu_);
      running = running_;
    }
    // A run in progress is not ours to join; its Stop() or the next Start()
    // hands it over. An ended worker that is this very thread (a Stopped()
    // callback re-entering) stays for another thread to join.
    if (!running && worker_.joinable() &&
        worker_.get_id() != std::this_thread::get_id()) {
      out.push_back(std::move(worker_));
    }
    if (!ended_workers_.empty()) {
      std::vector<std::thread> keep;
      for (std::thread& t : ended_workers_) {
        if (t.get_id() == std::this_thread::get_id()) {
          keep.push_back(std::move(t));
        } else {
          out.push_back(std::move(t));
        }
      }
      ended_workers_.swap(keep);
    }
  }
  if (!stops_children_) return;
  // A composite's run waits for its children's stops but leaves their ended
  // workers to be joined here (see CompositeService::Run).
  for (const auto& child : ChildHandles()) {
    static_cast<ChildHandle&>(*child).TakeEndedWorkers(out);
  }
}

void BaseService::DieIfStopWouldWaitForItself() const {
  const CurrentRun run = current_run;
  // Walk up from the service the calling thread works for: a stop of that
  // service, or of an ancestor that waits for its children all the way up,
  // would wait for this very thread.
  const BaseService* node = run.service;
  while (node != nullptr && node != this) {
    BaseService* parent = node->Parent();
    if (parent == nullptr || !parent->stops_children_) return;
    node = parent;
  }
  if (node == nullptr) return;
  std::string where =
      absl::StrCat(run.in_on_start ? "OnStart() of service '"
                                   : "the worker thread of service '",
                   run.service->Path(), "'");
  std::string what =
      run.service == this
          ? absl::StrCat("Stop() called from ", where)
          : absl::StrCat("Stop() of service '", Path(), "' called from ", where,
                         ", which that stop waits for,");
  Die(absl::StrCat(what, " would wait for itself forever. ",
                   run.in_on_start
                       ? "Return an error from OnStart() to fail the start."
                       : "Return from Run() to end the run from inside."));
}

void BaseService::RequestStop() { BeginStop(/*will_wait=*/false); }

Signal BaseService::BeginStop(bool will_wait) {
  std::optional<Signal> changed;
  std::shared_ptr<CancellableContext> run_context;
  Signal stopped = signal_internal::Unmade();
  {
    absl::MutexLock lock(&mu_);
    if (!running_) {
      // Nothing to cancel, but the request is remembered: a supervisor does
      // not restart a child stopped while it awaited its restart.
      if (start_count_ > 0) stop_requested_ = true;
      // The last run's stopped signal may still be about to close (its
      // worker is finishing): wait for that, unless this is that worker, in a
      // callback of the run's end.
      if (start_count_ == 0 || ending_thread_ == std::this_thread::get_id()) {
        return Signal::Closed();
      }
      return stopped_;
    }
    run_context = run_context_;
    stop_requested_ = true;
    if (state_ == ServiceState::kStarting || state_ == ServiceState::kStarted) {
      changed = SetStateLocked(ServiceState::kStopping);
    }
    stopped = stopped_;
  }
  if (will_wait) DieIfStopWouldWaitForItself();
  // Outside the lock: cancelling runs the context's callbacks, which may ask
  // this service (or its tree) for its path or snapshot.
  run_context->Cancel(StoppedError());
  CloseIfWatched(changed);
  return stopped;
}

void BaseService::Stop() {
  BeginStop(/*will_wait=*/true).Wait();
  JoinFinishedWorker();
}

absl::Status BaseService::StopFor(absl::Duration timeout) {
  bool wait = timeout > absl::ZeroDuration();
  Signal stopped = BeginStop(/*will_wait=*/wait);
  if (!wait && !stopped.IsClosed()) {
    // Check only: cheap, so a group stop can request every stop first.
    return absl::DeadlineExceededError(
        absl::StrCat("service '", Path(), "' has not stopped yet"));
  }
  if (wait && !stopped.WaitFor(timeout)) {
    return NotStoppedError(*this, timeout);
  }
  JoinFinishedWorker();
  return absl::OkStatus();
}

Signal BaseService::Started() const {
  absl::MutexLock lock(&mu_);
  if (signal_internal::IsUnmade(started_)) started_ = Signal();
  return started_;
}

Signal BaseService::Stopped() const {
  absl::MutexLock lock(&mu_);
  if (signal_internal::IsUnmade(stopped_)) stopped_ = Signal();
  return stopped_;
}

Signal BaseService::NextChange() const {
  absl::MutexLock lock(&mu_);
  if (signal_internal::IsUnmade(change_)) change_ = Signal();
  return change_;
}

ServiceState BaseService::State() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

pid_t BaseService::WorkerThreadId() const {
  absl::MutexLock lock(&mu_);
  return worker_tid_;
}

void BaseService::ReportError(absl::Status error) {
  if (error.ok()) return;
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    degraded_ = true;
    History& history = HistoryLocked();
    ++history.error_count;
    history.last_error = std::move(error);
    history.last_error_at = NowLocked();
    changed = TakeChangeLocked();
  }
  CloseIfWatched(changed);
}

void BaseService::ReportHealthy() {
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (!degraded_) return;
    degraded_ = false;
    changed = TakeChangeLocked();
  }
  CloseIfWatched(changed);
}

void BaseService::SetDetail(std::string_view key, std::string value) {
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (history_ == nullptr && value.empty()) return;
    auto& details = HistoryLocked().details;
    auto it = std::find_if(details.begin(), details.end(),
                           [&](const auto& d) { return d.first == key; });
    if (value.empty()) {
      if (it == details.end()) return;
      details.erase(it);
    } else if (it != details.end()) {
      if (it->second == value) return;
      it->second = std::move(value);
    } else {
      details.emplace_back(std::string(key), std::move(value));
    }
    changed = TakeChangeLocked();
  }
  CloseIfWatched(changed);
}

absl::Time BaseService::NowLocked() const {
  return run_context_ == nullptr
             ? absl::Now()
             : clock_internal::NowIn(
                   context_internal::TimeSourceOf(run_context_->context()));
}

void BaseService::FillSnapshotLocked(ServiceSnapshot& s) const {
  s.taken_at = NowLocked();
  s.state = state_;
  s.since = since_;
  s.status = status_;
  s.degraded = degraded_;
  s.start_count = start_count_;
  if (history_ != nullptr) {
    const History& h = *history_;
    s.error_count = h.error_count;
    s.last_error = h.last_error;
    s.last_error_at = h.last_error_at;
    s.failure_count = h.failure_count;
    s.last_failure = h.last_failure;
    s.last_failure_at = h.last_failure_at;
    s.unasked_end_count = h.unasked_end_count;
    s.last_unasked_end_at = h.last_unasked_end_at;
    s.restart_count = h.restart_count;
    s.details = h.details;
  }
  s.startup_duration = startup_duration_;
  s.startup_completed = startup_completed_;
  if (start_count_ > 0) s.start_began = start_began_;
  if (worker_tid_ != 0) s.threads.push_back(worker_tid_);
}

}  // namespace lifecycle
