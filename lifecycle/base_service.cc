#include "lifecycle/base_service.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using strings_internal::AbslView;

namespace base_service_internal {

// Guards calls into a service made through its parent's tree: `Enter()` fails
// once the service has begun to be destroyed, and `End()` (the first thing
// the destructor does) waits for the calls in progress to return.
struct Lifeline {
  absl::Mutex mu;
  bool alive ABSL_GUARDED_BY(mu) = true;
  int calls ABSL_GUARDED_BY(mu) = 0;

  bool Enter() {
    absl::MutexLock lock(&mu);
    if (!alive) return false;
    ++calls;
    return true;
  }
  void Exit() {
    absl::MutexLock lock(&mu);
    --calls;
  }
  void End() {
    absl::MutexLock lock(&mu);
    alive = false;
    mu.Await(absl::Condition(
        +[](int* calls) { return *calls == 0; }, &calls));
  }
};

// The dependencies among a composite's children, by child: what each depends
// on and what depends on it. Kept as the dependencies are added, so that adding
// one costs what its cycle check visits, not a rebuild of the graph.
struct DependencyGraph {
  struct Node {
    std::vector<const Service*> on;     // its dependencies
    std::vector<const Service*> by;     // its dependents
    std::vector<std::string> on_names;  // of `on`, in order (for snapshots)
  };
  absl::flat_hash_set<const Service*> children;  // of the composite
  absl::flat_hash_map<const Service*, Node> nodes;
  absl::flat_hash_set<std::pair<const Service*, const Service*>> edges;

  bool Has(const Service* dependent, const Service* dependency) const {
    return edges.contains({dependent, dependency});
  }
  void Add(const Service* dependent, const Service* dependency,
           std::string dependency_name) {
    edges.insert({dependent, dependency});
    Node& node = nodes[dependent];
    node.on.push_back(dependency);
    node.on_names.push_back(std::move(dependency_name));
    nodes[dependency].by.push_back(dependent);
  }
  // The names of what `child` depends on, in the order given.
  std::vector<std::string> NamesOn(const Service* child) const {
    auto it = nodes.find(child);
    return it == nodes.end() ? std::vector<std::string>() : it->second.on_names;
  }
  // A child that left the tree leaves the graph.
  void Remove(const Service* child) {
    children.erase(child);
    auto it = nodes.find(child);
    if (it == nodes.end()) return;
    Node node = std::move(it->second);
    nodes.erase(it);
    for (const Service* dependency : node.on) {
      edges.erase({child, dependency});
      auto& by = nodes[dependency].by;
      by.erase(std::remove(by.begin(), by.end(), child), by.end());
    }
    for (const Service* dependent : node.by) {
      edges.erase({dependent, child});
      Node& d = nodes[dependent];
      for (size_t i = d.on.size(); i-- > 0;) {
        if (d.on[i] == child) {
          d.on.erase(d.on.begin() + static_cast<std::ptrdiff_t>(i));
          d.on_names.erase(d.on_names.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
  }

  // The chain of dependencies from `from` to `to` (both included), if `from`
  // depends on `to` directly or not. Searches from both ends at once, one
  // service at a time from each, so the cost is about twice the smaller of
  // "what `from` depends on" and "what depends on `to`": a chain or a fan-out
  // declared one link at a time stays linear in all.
  std::optional<std::vector<const Service*>> Chain(const Service* from,
                                                   const Service* to) const {
    if (from == to) return std::vector<const Service*>{from};
    // Each side: the service it reached each service from.
    absl::flat_hash_map<const Service*, const Service*> ahead = {
        {from, nullptr}};
    absl::flat_hash_map<const Service*, const Service*> back = {{to, nullptr}};
    std::deque<const Service*> ahead_todo = {from}, back_todo = {to};
    const Service* meet = nullptr;
    auto step = [&](std::deque<const Service*>& todo, auto& seen,
                    const auto& other,
                    std::vector<const Service*> Node::*next) {
      const Service* s = todo.front();
      todo.pop_front();
      auto it = nodes.find(s);
      if (it == nodes.end()) return;
      for (const Service* n : it->second.*next) {
        if (!seen.emplace(n, s).second) continue;
        if (other.contains(n)) {
          meet = n;
          return;
        }
        todo.push_back(n);
      }
    };
    while (!ahead_todo.empty() && !back_todo.empty() && meet == nullptr) {
      step(ahead_todo, ahead, back, &Node::on);
      if (meet == nullptr && !back_todo.empty()) {
        step(back_todo, back, ahead, &Node::by);
      }
    }
    if (meet == nullptr) return std::nullopt;
    std::vector<const Service*> chain;
    for (const Service* s = meet; s != nullptr; s = ahead.at(s)) {
      chain.push_back(s);
    }
    std::reverse(chain.begin(), chain.end());  // from ... meet
    for (const Service* s = back.at(meet); s != nullptr; s = back.at(s)) {
      chain.push_back(s);  // ... to
    }
    return chain;
  }
};

// What a composite reads and writes of a child's run through its handle.
struct Access {
  static bool StopRequested(const BaseService& service) {
    absl::MutexLock lock(&service.mu_);
    return service.stop_requested_;
  }
  static ServiceSnapshot SnapshotAt(const BaseService& service,
                                    std::string path) {
    return service.SnapshotAt(std::move(path));
  }
  static absl::Status Restart(BaseService& service, const Context& ctx,
                              bool& refused) {
    return service.StartRun(ctx, /*refuse_if_stopped=*/true, &refused);
  }
  static void RequestStop(BaseService& service) {
    service.RequestStop(/*will_wait=*/false);
  }
  static void TakeEndedWorkers(BaseService& service,
                               std::vector<std::thread>& out) {
    service.TakeEndedWorkers(out);
  }
};

}  // namespace base_service_internal

using base_service_internal::Access;
using base_service_internal::Child;
using base_service_internal::Lifeline;
using service_internal::WithSuffix;

namespace {

absl::Status ValidateName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("a service name must not be empty");
  }
  if (name.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service name '", name, "' contains '/', which separates paths"));
  }
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service name '", absl::CHexEscape(name),
          "' contains a control character, which would break reports"));
    }
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
absl::Status CatchExceptions(absl::string_view where, Body&& body) {
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

// Every structural change of any tree (AddChild, a service leaving), so that
// two concurrent AddChild() calls cannot build a cycle between them.
absl::Mutex& TreeMutex() {
  static absl::Mutex* mu = new absl::Mutex();
  return *mu;
}

// The process-wide list of live services (SnapshotLiveServices()): an
// intrusive doubly-linked list, so joining and leaving it allocate nothing.
absl::Mutex g_live_mu(absl::kConstInit);
BaseService* g_live_head ABSL_GUARDED_BY(g_live_mu) = nullptr;
BaseService* g_live_tail ABSL_GUARDED_BY(g_live_mu) = nullptr;

// Locks `mu` if it can before `deadline`, never blocking on it: a hung thread
// may hold it. The report paths that use it have no waiter to wake them, so
// they look again every 100us.
bool TryLockUntil(absl::Mutex& mu, absl::Time deadline)
    ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, mu) {
  while (!mu.TryLock()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Microseconds(100));
  }
  return true;
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

// A child's name without a virtual call: a BaseService child may be in its
// destructor (its name, a BaseService member, is still there).
std::string_view NameOf(const Child& child) {
  return child.base != nullptr ? child.base->Name() : child.service->Name();
}

// Gives `s` the path `path`, and its descendants theirs below it.
void SetPaths(ServiceSnapshot& s, std::string path) {
  s.path = std::move(path);
  for (ServiceSnapshot& child : s.children) {
    SetPaths(child, absl::StrCat(s.path, "/", child.name));
  }
}

// A child as the parent's tree sees it: forwards while the child lives, then
// acts as a departed, stopped service.
class ChildHandle final : public Service {
 public:
  ChildHandle(Child child, const BaseService* parent)
      : child_(std::move(child)), name_(NameOf(child_)), parent_(parent) {}

  absl::Status Start(const Context& ctx) override {
    absl::Status status = Departed();
    Use([&](auto& service) { status = service.Start(ctx); });
    return status;
  }
  Signal Started() const override {
    Signal signal = Signal::Closed();
    Use([&](auto& service) { signal = service.Started(); });
    return signal;
  }
  void Stop() override {
    Use([](auto& service) { service.Stop(); });
  }
  absl::Status StopFor(absl::Duration timeout) override {
    absl::Status status;
    Use([&](auto& service) { status = service.StopFor(timeout); });
    return status;
  }
  Signal Stopped() const override {
    Signal signal = Signal::Closed();
    Use([&](auto& service) { signal = service.Stopped(); });
    return signal;
  }
  std::string_view Name() const override { return name_; }
  std::string Path() const override {
    std::string path;
    if (child_.base == nullptr) {
      // It knows nothing of its parent (alive: only the parent uses handles).
      path = absl::StrCat(parent_->Path(), "/", AbslView(name_));
    } else if (!Use([&](auto& service) { path = service.Path(); })) {
      path = name_;  // departed
    }
    return path;
  }
  ServiceSnapshot Snapshot() const override {
    ServiceSnapshot snapshot;
    if (!Use([&](auto& service) { snapshot = service.Snapshot(); })) {
      snapshot.name = name_;
      snapshot.path = name_;
      snapshot.taken_at = absl::Now();
      snapshot.since = snapshot.taken_at;
      snapshot.status = Departed();
    }
    return snapshot;
  }

  // The child's snapshot as part of its parent's, whose path is
  // `parent_path`; false if the child has been destroyed.
  bool SnapshotIfAlive(ServiceSnapshot& out,
                       std::string_view parent_path) const {
    std::string path =
        absl::StrCat(AbslView(parent_path), "/", AbslView(name_));
    if (child_.base == nullptr) {
      out = child_.service->Snapshot();  // knows nothing of its parent
      SetPaths(out, path);
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    out = Access::SnapshotAt(*child_.base, std::move(path));
    return true;
  }

  // Whether the child's last run was asked to stop (by `Stop()` or
  // `StopFor()`), or the child has been destroyed. A child that is not a
  // BaseService cannot tell: false.
  bool StopWasRequested() const {
    if (child_.base == nullptr) return false;
    if (!child_.lifeline->Enter()) return true;  // destroyed
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    return Access::StopRequested(*child_.base);
  }

  // A supervisor's restart: false (and nothing started) if the child was
  // stopped on purpose, or destroyed, since its run ended.
  bool Restart(const Context& ctx, absl::Status& status) {
    if (child_.base == nullptr) {
      status = child_.service->Start(ctx);
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    bool refused = false;
    status = Access::Restart(*child_.base, ctx, refused);
    return !refused;
  }

  // Requests the child's stop; joins nothing.
  void RequestStop() {
    if (child_.base == nullptr) {
      child_.service->StopFor(absl::ZeroDuration()).IgnoreError();
    } else if (child_.lifeline->Enter()) {
      absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
      Access::RequestStop(*child_.base);
    }
  }

  void TakeEndedWorkers(std::vector<std::thread>& out) {
    Use([&](auto& service) {
      if constexpr (std::is_same_v<std::decay_t<decltype(service)>,
                                   BaseService>) {
        Access::TakeEndedWorkers(service, out);
      }
    });
  }

  const Service* service() const { return child_.service; }
  int64_t restarts() const { return child_.restarts; }
  const std::vector<std::string>& depends_on() const {
    return child_.depends_on;  // filled by ChildHandles()
  }

 private:
  absl::Status Departed() const {
    return absl::FailedPreconditionError(
        absl::StrCat("child service '", name_, "' was destroyed"));
  }

  // Calls `f` with the child while it lives; returns whether it did. A
  // BaseService child is called as a BaseService (its methods are final, so
  // no virtual dispatch on an object that may be in destruction).
  template <typename F>
  bool Use(F&& f) const {
    if (child_.base == nullptr) {
      f(*child_.service);  // must outlive the parent (AddChild)
      return true;
    }
    if (!child_.lifeline->Enter()) return false;
    absl::Cleanup exit = [&] { child_.lifeline->Exit(); };
    f(*child_.base);
    return true;
  }

  const Child child_;
  const std::string name_;
  const BaseService* const parent_;
};

// How a composite asks a child (a handle) to stop: without joining its worker.
void RequestChildStop(Service& child) {
  static_cast<ChildHandle&>(child).RequestStop();
}

}  // namespace

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
  absl::MutexLock live(&g_live_mu);
  live_prev_ = g_live_tail;
  (g_live_tail != nullptr ? g_live_tail->live_next_ : g_live_head) = this;
  g_live_tail = this;
}

BaseService::~BaseService() {
  {
    // Leave the list of live services first: SnapshotLiveServices() reads a
    // service only while it is in the list, under the list's mutex.
    absl::MutexLock live(&g_live_mu);
    (live_prev_ != nullptr ? live_prev_->live_next_ : g_live_head) = live_next_;
    (live_next_ != nullptr ? live_next_->live_prev_ : g_live_tail) = live_prev_;
  }
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
  {
    // Leave the tree: the parent forgets this service, the children their
    // parent.
    absl::MutexLock tree(&TreeMutex());
    BaseService* parent;
    std::vector<Child> children;
    {
      absl::MutexLock lock(&mu_);
      parent = parent_;
      children.swap(children_);
      parent_ = nullptr;
      parent_lifeline_.reset();
    }
    if (parent != nullptr) {
      absl::MutexLock lock(&parent->mu_);
      auto& siblings = parent->children_;
      auto self =
          std::find_if(siblings.begin(), siblings.end(),
                       [this](const Child& c) { return c.base == this; });
      if (self != siblings.end()) {
        if (parent->dependencies_ != nullptr) {
          parent->dependencies_->Remove(self->service);
        }
        siblings.erase(self);
      }
    }
    for (const Child& child : children) {
      if (child.base == nullptr) continue;
      absl::MutexLock lock(&child.base->mu_);
      if (child.base->parent_ == this) {
        child.base->parent_ = nullptr;
        child.base->parent_lifeline_.reset();
      }
    }
  }
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

BaseService* BaseService::Parent() const {
  absl::MutexLock lock(&mu_);
  return parent_;
}

std::string BaseService::Path() const {
  absl::MutexLock tree(&TreeMutex());
  return PathLocked();
}

std::string BaseService::PathLocked() const {
  // Under TreeMutex every parent_ is valid: a service leaving the tree (its
  // destructor) clears its children's parent_ under TreeMutex first.
  absl::InlinedVector<std::string_view, 8> names;  // no allocation
  for (const BaseService* node = this; node != nullptr; node = node->Parent()) {
    names.push_back(node->name_);
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!path.empty()) path += '/';
    path.append(it->data(), it->size());
  }
  return path;
}

std::optional<Signal> BaseService::SetStateLocked(ServiceState state) {
  state_ = state;
  since_ = NowLocked();
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
  Signal started, stopped;
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::OkStatus();
    if (refuse_if_stopped) {  // a restart by the parent
      if (stop_requested_) {
        *refused = true;
        return absl::OkStatus();
      }
      ++restart_count_;
    }
    running_ = true;
    // Fresh signals for every run but the first, whose signals may have been
    // handed out before it. (Not "if closed": the last run's worker may not
    // have closed its signals yet.)
    if (signals_used_) {
      started_ = Signal();
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
    status =
        CatchExceptions(absl::StrCat("OnStart() of service '", Path(), "'"),
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
    status = CatchExceptions(absl::StrCat("service '", Path(), "'"), [&] {
      return Run(ctx, [&] { MarkStarted(started); });
    });
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
  std::string path = Path();
  std::optional<Signal> changed;
  {
    absl::MutexLock lock(&mu_);
    if (clean) {
      if (!stop_requested_ && !ctx.IsCancelled()) {
        ++unasked_end_count_;
        last_unasked_end_at_ = NowLocked();
      }
      changed = SetStateLocked(ServiceState::kStopped);
    } else {
      status_ = started.IsClosed() ? AnnotateRunError(status, path)
                                   : AnnotateStartError(status, path);
      ++failure_count_;
      last_failure_ = status_;
      last_failure_at_ = NowLocked();
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
  std::vector<std::thread> ended;
  TakeEndedWorkers(ended);
  // Outside join_mu_ and every lifeline: the worker being joined may still be
  // running a Stopped() callback that calls Start() or Stop() on this service,
  // or destroys a child.
  for (std::thread& t : ended) t.join();
}

void BaseService::TakeEndedWorkers(std::vector<std::thread>& out) {
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
        (t.get_id() == std::this_thread::get_id() ? keep : out)
            .push_back(std::move(t));
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

Signal BaseService::RequestStop(bool will_wait) {
  std::optional<Signal> changed;
  std::shared_ptr<CancellableContext> run_context;
  Signal stopped;
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
  RequestStop(/*will_wait=*/true).Wait();
  JoinFinishedWorker();
}

absl::Status BaseService::StopFor(absl::Duration timeout) {
  bool wait = timeout > absl::ZeroDuration();
  Signal stopped = RequestStop(/*will_wait=*/wait);
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
    last_error_at_ = NowLocked();
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
  if (absl::Status s = ValidateName(AbslView(child.Name())); !s.ok()) return s;
  auto* base = dynamic_cast<BaseService*>(&child);
  absl::MutexLock tree(&TreeMutex());
  if (base != nullptr) {
    if (BaseService* other = base->Parent(); other != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service '", AbslView(child.Name()), "' already has a parent, '",
          other->PathLocked(), "': a service belongs to one tree"));
    }
    for (const BaseService* node = this; node != nullptr;
         node = node->Parent()) {
      if (node == base) {
        return absl::InvalidArgumentError(absl::StrCat(
            "adding '", AbslView(child.Name()), "' as a child of '",
            PathLocked(), "' would make a cycle: '", AbslView(child.Name()),
            "' is already an ancestor of it"));
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const Child& existing : children_) {
      if (NameOf(existing) == child.Name()) {
        return absl::AlreadyExistsError(
            absl::StrCat("service '", name_, "' already has a child named '",
                         AbslView(child.Name()), "'"));
      }
    }
    Child entry;
    entry.service = &child;
    entry.base = base;
    if (base != nullptr) entry.lifeline = base->lifeline_;
    children_.push_back(std::move(entry));
    if (dependencies_ != nullptr) dependencies_->children.insert(&child);
  }
  if (base != nullptr) {
    absl::MutexLock lock(&base->mu_);
    base->parent_ = this;
    base->parent_lifeline_ = lifeline_;
  }
  return absl::OkStatus();
}

std::vector<Service*> BaseService::Children() const {
  absl::MutexLock lock(&mu_);
  std::vector<Service*> children;
  for (const Child& child : children_) children.push_back(child.service);
  return children;
}

std::vector<std::unique_ptr<Service>> BaseService::ChildHandles() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::unique_ptr<Service>> handles;
  handles.reserve(children_.size());
  for (const Child& child : children_) {
    if (dependencies_ == nullptr) {
      handles.push_back(std::make_unique<ChildHandle>(child, this));
    } else {
      Child copy = child;
      copy.depends_on = dependencies_->NamesOn(child.service);
      handles.push_back(std::make_unique<ChildHandle>(std::move(copy), this));
    }
  }
  return handles;
}

ServiceSnapshot BaseService::Snapshot() const { return SnapshotAt(Path()); }

ServiceSnapshot BaseService::SnapshotAt(std::string path) const {
  ServiceSnapshot s;
  s.name = name_;
  s.path = std::move(path);
  std::vector<std::unique_ptr<Service>> children = ChildHandles();
  {
    absl::MutexLock lock(&mu_);
    FillSnapshotLocked(s);
  }
  for (const auto& child : children) {
    ServiceSnapshot c;
    // A child destroyed since the list was taken has left the tree.
    const auto& handle = static_cast<const ChildHandle&>(*child);
    if (!handle.SnapshotIfAlive(c, s.path)) continue;
    c.restart_count = std::max(c.restart_count, handle.restarts());
    c.depends_on = handle.depends_on();
    s.children.push_back(std::move(c));
  }
  return s;
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
  s.error_count = error_count_;
  s.last_error = last_error_;
  s.last_error_at = last_error_at_;
  s.start_count = start_count_;
  s.failure_count = failure_count_;
  s.last_failure = last_failure_;
  s.last_failure_at = last_failure_at_;
  s.unasked_end_count = unasked_end_count_;
  s.last_unasked_end_at = last_unasked_end_at_;
  s.restart_count = restart_count_;
  s.startup_duration = startup_duration_;
  s.startup_completed = startup_completed_;
  if (start_count_ > 0) s.start_began = start_began_;
  if (worker_tid_ != 0) s.threads.push_back(worker_tid_);
}

LiveServices SnapshotLiveServices(absl::Duration patience) {
  const absl::Time deadline = absl::Now() + patience;
  LiveServices live;
  struct Row {
    const BaseService* parent;
    ServiceSnapshot snapshot;
  };
  std::vector<Row> rows;  // in the order the services were made
  absl::flat_hash_map<const BaseService*, size_t> index;
  if (!TryLockUntil(g_live_mu, deadline)) {
    live.complete = false;
    return live;
  }
  for (const BaseService* s = g_live_head; s != nullptr; s = s->live_next_) {
    // Past the deadline each mutex is still tried once.
    if (!TryLockUntil(s->mu_, std::max(deadline, absl::Now()))) {
      live.unreadable.push_back(s->name_);
      live.unreadable_workers.push_back(
          s->worker_tid_.load(std::memory_order_relaxed));
      continue;
    }
    Row row{s->parent_, {}};
    s->FillSnapshotLocked(row.snapshot);
    s->mu_.Unlock();
    row.snapshot.name = s->name_;
    index[s] = rows.size();
    rows.push_back(std::move(row));
  }
  g_live_mu.Unlock();

  // Children of each row, then the trees top-down from the roots (a parent
  // that is gone or unreadable makes its child a root).
  std::vector<std::vector<size_t>> children(rows.size());
  std::vector<size_t> roots;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto parent = index.find(rows[i].parent);
    if (rows[i].parent != nullptr && parent != index.end()) {
      children[parent->second].push_back(i);
    } else {
      roots.push_back(i);
    }
  }
  // Builds row `i` at `path` (children are moved out of `rows`; each row is
  // built once: the parent links form trees).
  auto build = [&](auto& self, size_t i, std::string path) -> ServiceSnapshot {
    ServiceSnapshot s = std::move(rows[i].snapshot);
    s.path = std::move(path);
    for (size_t c : children[i]) {
      s.children.push_back(
          self(self, c, absl::StrCat(s.path, "/", rows[c].snapshot.name)));
    }
    return s;
  };
  for (size_t r : roots) {
    std::string name = rows[r].snapshot.name;
    live.roots.push_back(build(build, r, std::move(name)));
  }
  return live;
}

FuncService::FuncService(std::string name, RunFunction run)
    : BaseService(std::move(name)), run_(std::move(run)) {}

absl::Status FuncService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  return run_(ctx, started);
}

CompositeService::CompositeService(std::string name)
    : BaseService(std::move(name)) {
  stops_children_ = true;
}

CompositeService::~CompositeService() { StopForDestruction(); }

absl::Status CompositeService::Add(Service& child, const After& after,
                                   std::optional<Supervision> supervision) {
  const std::vector<Service*>& earlier = after.services();
  const std::vector<Service*> children = Children();
  for (size_t i = 0; i < earlier.size(); ++i) {
    if (std::find(earlier.begin(), earlier.begin() + i, earlier[i]) !=
        earlier.begin() + i) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adding '", AbslView(child.Name()), "' to '", Path(), "': '",
          AbslView(earlier[i]->Name()), "' is in its After() twice"));
    }
    if (std::find(children.begin(), children.end(), earlier[i]) ==
        children.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adding '", AbslView(child.Name()), "' to '", Path(),
          "': it is to start after '", AbslView(earlier[i]->Name()),
          "', which is not a child of '", Path(), "' (add it first)"));
    }
  }
  if (absl::Status s = AddChild(child); !s.ok()) return s;
  if (supervision) {
    absl::MutexLock lock(&mu_);
    for (Child& c : children_) {
      if (c.service == &child) c.supervision = supervision;
    }
  }
  // A new child has no dependents yet: these cannot close a cycle.
  for (Service* e : earlier) {
    if (absl::Status s = AddDependency(child, *e); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void CompositeService::AddOrDie(Service& child, const After& after,
                                std::optional<Supervision> supervision) {
  if (absl::Status s = Add(child, after, supervision); !s.ok()) {
    Die(absl::StrCat("adding child '", AbslView(child.Name()), "' to service '",
                     Path(), "': ", s.ToString()));
  }
}

void CompositeService::AddChildOrDie(Service& child) {
  if (absl::Status s = AddChild(child); !s.ok()) {
    Die(absl::StrCat("adding child '", AbslView(child.Name()), "' to service '",
                     AbslView(Name()), "': ", s.ToString()));
  }
}

void CompositeService::AddChildOrDie(Service& child, Supervision supervision) {
  AddChildOrDie(child);
  absl::MutexLock lock(&mu_);
  for (Child& c : children_) {
    if (c.service == &child) c.supervision = supervision;
  }
}

absl::Status CompositeService::AddDependency(Service& dependent,
                                             Service& dependency) {
  // Checked and added in one step under the tree mutex and `mu_`: two
  // concurrent calls cannot close a cycle between them. This composite's path
  // is taken first (it locks the services on the way up).
  absl::MutexLock tree(&TreeMutex());
  const std::string path = PathLocked();
  absl::MutexLock lock(&mu_);
  if (dependencies_ == nullptr) {
    dependencies_ = std::make_unique<base_service_internal::DependencyGraph>();
    for (const Child& c : children_) dependencies_->children.insert(c.service);
  }
  for (auto [end, found] :
       {std::pair{&dependent, dependencies_->children.contains(&dependent)},
        {&dependency, dependencies_->children.contains(&dependency)}}) {
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the dependency of '", AbslView(dependent.Name()), "' on '",
          AbslView(dependency.Name()), "': '", AbslView(end->Name()),
          "' is not a child of '", path, "'"));
    }
  }
  auto child_path = [&](const Service* child) {
    return absl::StrCat(path, "/", AbslView(child->Name()));
  };
  if (dependencies_->Has(&dependent, &dependency)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dependency of '", child_path(&dependent), "' on '",
                     child_path(&dependency), "' is given twice"));
  }
  // A cycle: `dependency` already depends on `dependent`, directly or not.
  if (auto chain = dependencies_->Chain(&dependency, &dependent)) {
    std::vector<std::string> names;
    for (const Service* s : *chain) names.push_back(child_path(s));
    names.push_back(child_path(&dependency));
    return absl::InvalidArgumentError(
        absl::StrCat("a cycle of dependencies: ", absl::StrJoin(names, " -> "),
                     "; each starts after the next"));
  }
  dependencies_->Add(&dependent, &dependency, std::string(dependency.Name()));
  return absl::OkStatus();
}

void CompositeService::AddDependencyOrDie(Service& dependent,
                                          Service& dependency) {
  if (absl::Status s = AddDependency(dependent, dependency); !s.ok()) {
    Die(absl::StrCat("adding a dependency to service '", Path(),
                     "': ", s.ToString()));
  }
}

void CompositeService::SetSupervision(Supervision supervision) {
  absl::MutexLock lock(&mu_);
  supervision_ = supervision;
}

Supervision CompositeService::SupervisionOf(const Service* child) const {
  absl::MutexLock lock(&mu_);
  for (const Child& c : children_) {
    if (c.service == child && c.supervision) return *c.supervision;
  }
  return supervision_;
}

void CompositeService::CountRestart(const Service* child, int delta) {
  absl::MutexLock lock(&mu_);
  for (Child& c : children_) {
    if (c.service == child) c.restarts += delta;
  }
}

absl::Status CompositeService::Run(const Context& ctx,
                                   absl::FunctionRef<void()> started) {
  // Handles, not the children themselves: a child destroyed during the run
  // is never touched again.
  std::vector<std::unique_ptr<Service>> handles = ChildHandles();
  std::vector<Service*> children;
  std::vector<Dependency> dependencies;
  {
    // The graph's edges as edges between the handles.
    absl::flat_hash_map<const Service*, Service*> handle_of;
    for (const auto& handle : handles) {
      children.push_back(handle.get());
      handle_of[static_cast<const ChildHandle&>(*handle).service()] =
          handle.get();
    }
    absl::MutexLock lock(&mu_);
    if (dependencies_ != nullptr) {
      for (const Service* child : children) {
        const Service* service =
            static_cast<const ChildHandle*>(child)->service();
        auto node = dependencies_->nodes.find(service);
        if (node == dependencies_->nodes.end()) continue;
        for (const Service* on : node->second.on) {
          if (auto h = handle_of.find(on); h != handle_of.end()) {
            dependencies.push_back({const_cast<Service*>(child), h->second});
          }
        }
      }
    }
  }
  // The children live in a context of their own, not a child of `ctx`: when
  // this composite is stopped, they are stopped one by one, dependents first
  // and each only once its dependents have ended, instead of all being
  // cancelled at once with `ctx`.
  std::unique_ptr<CancellableContext> children_scope =
      context_internal::NewContextInTimeOf(ctx);
  const Context& children_ctx = children_scope->context();
  // Waits for every child's start, but gives up if this service is stopped
  // meanwhile: a child that never starts must not make Stop() hang. On any
  // error it has stopped what it started. No stop here joins a child's
  // worker: a child's Stopped() callback may be waiting for this very
  // composite's stop (JoinFinishedWorker() joins them afterwards).
  if (absl::Status s = service_internal::StartInDependencyOrder(
          children, dependencies, children_ctx, ctx, &RequestChildStop);
      !s.ok()) {
    return s;
  }
  started();
  absl::Status failure = Supervise(ctx, children_ctx, handles);
  if (!failure.ok()) {
    // Fail fast: stopping the other children is part of failing.
    std::optional<Signal> changed;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == ServiceState::kStarted) {
        changed = SetStateLocked(ServiceState::kStopping);
      }
    }
    CloseIfWatched(changed);
  }
  service_internal::StopInReverseDependencyOrder(children, dependencies,
                                                 &RequestChildStop);
  return failure.ok() ? ctx.Cause() : failure;
}

namespace {

// A started child, as the supervision loop watches it.
struct Watch {
  ChildHandle* child = nullptr;
  Signal stopped;      // of the run being watched
  bool active = true;  // false once it left, was stopped, or degraded us
  // A restart is due then (`InfiniteFuture()` for an infinite backoff: it
  // never comes).
  std::optional<absl::Time> restart_at;
  std::deque<absl::Time> restarts;  // within the period
};

}  // namespace

absl::Status CompositeService::Supervise(
    const Context& ctx, const Context& children_ctx,
    std::vector<std::unique_ptr<Service>>& children) {
  std::vector<Watch> watches;
  for (auto& child : children) {
    auto* handle = static_cast<ChildHandle*>(child.get());
    Watch w;
    w.child = handle;
    w.stopped = handle->Stopped();
    watches.push_back(std::move(w));
  }
  // What a death means for this composite: OK to go on, or its failure.
  auto on_death = [&](Watch& w, const absl::Status& error) -> absl::Status {
    Supervision policy = SupervisionOf(w.child->service());
    switch (policy.policy) {
      case Supervision::Policy::kFailFast:
        return error;
      case Supervision::Policy::kDegrade:
        ReportError(error);
        w.active = false;
        return absl::OkStatus();
      case Supervision::Policy::kRestart:
        break;
    }
    absl::Time now = lifecycle::Now();
    while (!w.restarts.empty() && w.restarts.front() <= now - policy.period) {
      w.restarts.pop_front();
    }
    if (policy.max_restarts < 1 || policy.period <= absl::ZeroDuration()) {
      return WithSuffix(
          error, absl::StrCat(" (not restarted: the restart policy allows "
                              "none, max_restarts ",
                              policy.max_restarts, " within ",
                              absl::FormatDuration(policy.period), ")"));
    }
    if (static_cast<int>(w.restarts.size()) >= policy.max_restarts) {
      return WithSuffix(
          error,
          absl::StrCat(" (restarted ", w.restarts.size(), " times within ",
                       absl::FormatDuration(policy.period), "; the limit is ",
                       policy.max_restarts, ")"));
    }
    absl::Duration backoff = std::max(policy.backoff, absl::ZeroDuration());
    for (size_t i = 0; i < w.restarts.size() && backoff < policy.max_backoff;
         ++i) {
      backoff *= 2;
    }
    backoff =
        std::min(backoff, std::max(policy.max_backoff, absl::ZeroDuration()));
    w.restarts.push_back(now);
    w.restart_at = now + backoff;
    return absl::OkStatus();
  };

  while (true) {
    std::vector<Signal> waits = {ctx.Done()};
    absl::Time next_restart = absl::InfiniteFuture();
    for (const Watch& w : watches) {
      if (w.restart_at) {
        next_restart = std::min(next_restart, *w.restart_at);
      } else if (w.active) {
        waits.push_back(w.stopped);
      }
    }
    WaitAnyUntil(waits, next_restart);
    if (ctx.IsCancelled()) return absl::OkStatus();
    for (Watch& w : watches) {
      if (w.restart_at) {
        if (*w.restart_at == absl::InfiniteFuture() ||
            lifecycle::Now() < *w.restart_at) {
          continue;
        }
        if (ctx.IsCancelled()) return absl::OkStatus();
        w.restart_at.reset();
        absl::Status started;
        CountRestart(w.child->service(), 1);
        // Not restarted if it was stopped on purpose (or destroyed) while
        // it awaited the restart: a stopped child stays stopped.
        if (!w.child->Restart(children_ctx, started)) {
          CountRestart(w.child->service(), -1);
          w.active = false;
          continue;
        }
        w.stopped = w.child->Stopped();
        if (!started.ok()) {
          if (absl::Status s = on_death(w, started); !s.ok()) return s;
        }
        continue;
      }
      if (!w.active || !w.stopped.IsClosed()) continue;
      // A child ends when this composite is stopped, too: its context is a
      // child of `ctx`, which is cancelled first. Checked after seeing the
      // child stopped, so such an end is never taken for a death.
      if (ctx.IsCancelled()) return absl::OkStatus();
      Signal current = w.child->Stopped();
      if (current != w.stopped) {
        w.stopped = current;  // someone else started it again: watch that run
        continue;
      }
      if (w.child->StopWasRequested()) {
        w.active = false;  // stopped on purpose, or destroyed: not a death
        continue;
      }
      ServiceSnapshot c = w.child->Snapshot();
      std::string path = w.child->Path();
      absl::Status error =
          c.state == ServiceState::kFailed
              ? AnnotateRunError(c.status, path)
              : AnnotateRunError(
                    absl::FailedPreconditionError(
                        "its run returned while nobody had asked it to stop"),
                    path);
      if (absl::Status s = on_death(w, error); !s.ok()) return s;
    }
  }
}

}  // namespace lifecycle
