#include "lifecycle/base_service.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/thread_stack.h"

namespace lifecycle {
namespace {

absl::Status ValidateName(std::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("a service name must not be empty");
  }
  if (name.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service name '", name, "' contains '/', which separates paths"));
  }
  return absl::OkStatus();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "lifecycle: FATAL: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs `body`, turning an exception into an InternalError with its message.
template <typename Body>
absl::Status CatchExceptions(std::string_view where, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("uncaught exception in ", where, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat("uncaught exception in ", where,
                                            " (not a std::exception)"));
  }
}

}  // namespace

BaseService::BaseService(std::string name)
    : name_(std::move(name)), name_error_(ValidateName(name_)) {
  absl::MutexLock lock(&mu_);
  since_ = absl::Now();
}

BaseService::~BaseService() {
  BaseService* parent;
  std::vector<Child> children;
  {
    absl::MutexLock lock(&mu_);
    if (running_) {
      // Not Path(): the parent may be gone already.
      Die(absl::StrCat("service '", name_,
                       "' destroyed while running. The most derived class must "
                       "call Stop() in its destructor."));
    }
    parent = parent_;
    children = children_;
  }
  // Children are usually members of the parent, so they go first and take
  // themselves off the parent's list; the parent forgets the survivors.
  if (parent != nullptr) {
    absl::MutexLock lock(&parent->mu_);
    auto& siblings = parent->children_;
    siblings.erase(
        std::remove_if(siblings.begin(), siblings.end(),
                       [this](const Child& c) { return c.base == this; }),
        siblings.end());
  }
  for (const Child& child : children) {
    if (child.base == nullptr) continue;
    absl::MutexLock lock(&child.base->mu_);
    if (child.base->parent_ == this) child.base->parent_ = nullptr;
  }
  JoinFinishedWorker();
}

std::string BaseService::Path() const {
  const BaseService* parent;
  {
    absl::MutexLock lock(&mu_);
    parent = parent_;
  }
  if (parent == nullptr) return name_;
  return absl::StrCat(parent->Path(), "/", name_);
}

std::optional<Signal> BaseService::SetStateLocked(ServiceState state) {
  state_ = state;
  since_ = absl::Now();
  return TakeChangeLocked();
}

std::optional<Signal> BaseService::TakeChangeLocked() {
  std::optional<Signal> changed = std::move(change_);
  change_.reset();
  return changed;
}

namespace {
void CloseIfWatched(const std::optional<Signal>& changed) {
  if (changed) changed->Close();
}
}  // namespace

absl::Status BaseService::OnStart(const Context&) { return absl::OkStatus(); }

absl::Status BaseService::Start(const Context& ctx) {
  if (!name_error_.ok()) return name_error_;
  JoinFinishedWorker();  // the previous run's worker, if it ended by itself

  Context run_ctx = Context::Background();
  Signal started, stopped;
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::OkStatus();
    running_ = true;
    if (started_.IsClosed()) started_ = Signal();
    if (stopped_.IsClosed()) stopped_ = Signal();
    started = started_;
    stopped = stopped_;
    run_context_ = std::make_unique<CancellableContext>(ctx);
    run_ctx = run_context_->context();
    status_ = absl::OkStatus();
    degraded_ = false;
    ++start_count_;
    start_began_ = absl::Now();
    changed = SetStateLocked(ServiceState::kStarting);
  }
  CloseIfWatched(changed);

  absl::Status status =
      CatchExceptions(absl::StrCat("OnStart() of service '", Path(), "'"),
                      [&] { return OnStart(run_ctx); });
  if (!status.ok()) {
    status = AnnotateStartError(std::move(status), Path());
    FinishRun(status, run_ctx, started, stopped);
    return status;
  }
  absl::MutexLock join_lock(&join_mu_);
  // The worker's FinishRun takes mu_, so it cannot end the run before this
  // thread has stored it in worker_.
  // A run started by a concurrent Start() may have ended already: reap it.
  if (worker_.joinable()) worker_.join();
  try {
    worker_ =
        std::thread(&BaseService::WorkerMain, this, run_ctx, started, stopped);
  } catch (const std::system_error& e) {
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
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  {
    absl::MutexLock lock(&mu_);
    worker_id_ = std::this_thread::get_id();
    worker_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
  }
  absl::Status status =
      CatchExceptions(absl::StrCat("service '", Path(), "'"),
                      [&] { return Run(ctx, [&] { MarkStarted(started); }); });
  FinishRun(std::move(status), ctx, started, stopped);
}

void BaseService::MarkStarted(const Signal& started) {
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (started.IsClosed() || started != started_) return;
    if (state_ == ServiceState::kStarting) {
      startup_duration_ = absl::Now() - start_began_;
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
  std::string path = Path();
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (clean) {
      changed = SetStateLocked(ServiceState::kStopped);
    } else {
      status_ = started.IsClosed()
                    ? absl::Status(status.code(),
                                   absl::StrCat("service '", path,
                                                "' failed: ", status.message()))
                    : AnnotateStartError(status, path);
      ++failure_count_;
      changed = SetStateLocked(ServiceState::kFailed);
    }
    running_ = false;
    worker_id_ = std::thread::id();
    worker_tid_ = 0;
    degraded_ = false;
  }
  started.Close();
  stopped.Close();
  CloseIfWatched(changed);
}

void BaseService::JoinFinishedWorker() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    // A run in progress is not ours to join; its Stop() or the next Start()
    // reaps it.
    if (running_) return;
  }
  if (worker_.joinable()) worker_.join();
}

Signal BaseService::RequestStop() {
  std::optional<Signal> changed;
  Signal stopped;
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return Signal::Closed();
    if (worker_id_ == std::this_thread::get_id()) {
      Die(absl::StrCat("Stop() called from the worker thread of service '",
                       name_,
                       "' would wait for itself forever. Return from Run() "
                       "to end the run from inside."));
    }
    run_context_->Cancel(StoppedError());
    if (state_ == ServiceState::kStarting || state_ == ServiceState::kStarted) {
      changed = SetStateLocked(ServiceState::kStopping);
    }
    stopped = stopped_;
  }
  CloseIfWatched(changed);
  return stopped;
}

void BaseService::Stop() {
  RequestStop().Wait();
  JoinFinishedWorker();
}

absl::Status BaseService::StopFor(absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "StopFor() of service '", Path(),
        "' given a negative timeout: ", absl::FormatDuration(timeout)));
  }
  if (!RequestStop().WaitFor(timeout)) {
    std::string stack;
    if (pid_t tid = WorkerThreadId(); tid != 0) {
      stack = absl::StrCat("\n", ThreadStack(tid));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "service '", Path(), "' did not stop within ",
        absl::FormatDuration(timeout),
        ": its worker has not returned since its context was cancelled",
        stack));
  }
  JoinFinishedWorker();
  return absl::OkStatus();
}

Signal BaseService::Started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

Signal BaseService::Stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

Signal BaseService::NextChange() const {
  absl::MutexLock lock(&mu_);
  if (!change_) change_ = Signal();
  return *change_;
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
    ++error_count_;
    last_error_ = std::move(error);
    last_error_at_ = absl::Now();
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

absl::Status BaseService::AddChild(Service& child) {
  if (&child == this) {
    return absl::InvalidArgumentError(
        absl::StrCat("service '", name_, "' cannot be its own child"));
  }
  if (absl::Status s = ValidateName(child.Name()); !s.ok()) return s;
  auto* base = dynamic_cast<BaseService*>(&child);
  {
    absl::MutexLock lock(&mu_);
    for (const Child& existing : children_) {
      if (existing.service->Name() == child.Name()) {
        return absl::AlreadyExistsError(
            absl::StrCat("service '", name_, "' already has a child named '",
                         child.Name(), "'"));
      }
    }
    children_.push_back(Child{&child, base});
  }
  if (base != nullptr) {
    absl::MutexLock lock(&base->mu_);
    base->parent_ = this;
  }
  return absl::OkStatus();
}

std::vector<Service*> BaseService::Children() const {
  absl::MutexLock lock(&mu_);
  std::vector<Service*> children;
  for (const Child& child : children_) children.push_back(child.service);
  return children;
}

namespace {

void PrefixPaths(ServiceSnapshot& s, std::string_view parent_path) {
  s.path = absl::StrCat(parent_path, "/", s.name);
  for (ServiceSnapshot& child : s.children) PrefixPaths(child, s.path);
}

}  // namespace

ServiceSnapshot BaseService::Snapshot() const {
  ServiceSnapshot s;
  s.name = name_;
  s.path = Path();
  std::vector<Service*> children = Children();
  {
    absl::MutexLock lock(&mu_);
    s.taken_at = absl::Now();
    s.state = state_;
    s.since = since_;
    s.status = status_;
    s.degraded = degraded_;
    s.error_count = error_count_;
    s.last_error = last_error_;
    s.last_error_at = last_error_at_;
    s.start_count = start_count_;
    s.failure_count = failure_count_;
    s.startup_duration = startup_duration_;
    if (worker_tid_ != 0) s.threads.push_back(worker_tid_);
  }
  for (Service* child : children) {
    s.children.push_back(child->Snapshot());
    PrefixPaths(s.children.back(), s.path);
  }
  return s;
}

FuncService::FuncService(std::string name, RunFunction run)
    : BaseService(std::move(name)), run_(std::move(run)) {}

absl::Status FuncService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  return run_(ctx, started);
}

CompositeService::CompositeService(std::string name)
    : BaseService(std::move(name)) {}

void CompositeService::AddChildOrDie(Service& child) {
  if (absl::Status s = AddChild(child); !s.ok()) {
    Die(absl::StrCat("adding child '", child.Name(), "' to service '", Name(),
                     "': ", s.ToString()));
  }
}

absl::Status CompositeService::Run(const Context& ctx,
                                   absl::FunctionRef<void()> started) {
  std::vector<Service*> children = Children();
  if (absl::Status s = StartAll(children, ctx); !s.ok()) return s;
  // Wait for every child's start, but give up if this service is stopped
  // meanwhile: a child that never starts must not make Stop() hang.
  for (Service* child : children) {
    Signal waits[] = {child->Started(), ctx.Done()};
    WaitForAny(waits, absl::InfiniteFuture());
    if (ctx.IsCancelled()) break;
  }
  if (!ctx.IsCancelled()) {
    if (absl::Status s = WaitAllStarted(children); !s.ok()) {
      StopAllParallel(children);
      // Fail with the failed child's own error: it names the child's path.
      for (Service* child : children) {
        ServiceSnapshot c = child->Snapshot();
        if (c.state == ServiceState::kFailed) return c.status;
      }
      return s;
    }
    started();
    ctx.Done().Wait();
  }
  StopAllParallel(children);
  return ctx.Cause();
}

}  // namespace lifecycle
