#include "lifecycle/thread_stack.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "absl/debugging/symbolize.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lifecycle/sanitizers.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using strings_internal::AbslView;
namespace {

constexpr int kMaxFrames = 48;

// One capture at a time. The handler only touches these lock-free objects.
enum State : int { kIdle, kRequested, kWriting, kDone, kAbandoned };
std::atomic<int> g_state{kIdle};
std::atomic<pid_t> g_target{0};
void* g_frames[kMaxFrames];
int g_depth = 0;
uintptr_t g_interrupted_pc = 0;  // where the thread was when the signal came
sem_t g_done;

// The DWARF unwinder, called directly (why: thread_stack.h, "Mechanism").
struct UnwindState {
  void** frames;
  int max;
  int depth;
};

_Unwind_Reason_Code UnwindStep(_Unwind_Context* context, void* arg) {
  auto* state = static_cast<UnwindState*>(arg);
  if (state->depth >= state->max) return _URC_END_OF_STACK;
  state->frames[state->depth++] =
      reinterpret_cast<void*>(_Unwind_GetIP(context));
  return _URC_NO_REASON;
}

int Unwind(void** frames, int max) {
  UnwindState state{frames, max, 0};
  _Unwind_Backtrace(&UnwindStep, &state);
  return state.depth;
}

// The program counter the signal interrupted, from the handler's context.
uintptr_t InterruptedPc(void* context) {
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;  // unknown: the stack is shown from its first frame
#endif
}

void CaptureHandler(int, siginfo_t*, void* context) {
  int saved_errno = errno;
  // A late signal from an abandoned request, or meant for another thread,
  // leaves everything alone.
  if (static_cast<pid_t>(syscall(SYS_gettid)) == g_target.load()) {
    int expected = kRequested;
    if (g_state.compare_exchange_strong(expected, kWriting)) {
      g_interrupted_pc = InterruptedPc(context);
      g_depth = Unwind(g_frames, kMaxFrames);
      g_state.store(kDone);
      sem_post(&g_done);
    }
  }
  errno = saved_errno;
}

int CaptureSignal() { return SIGRTMIN + 4; }

// Installs the handler once; returns an error text if it cannot.
const char* InstallHandler() {
  static const char* error = []() -> const char* {
    sem_init(&g_done, 0, 0);
    struct sigaction old;
    if (sigaction(CaptureSignal(), nullptr, &old) != 0)
      return "sigaction failed";
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
      return "the capture signal is used by another handler";
    }
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = &CaptureHandler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(CaptureSignal(), &sa, nullptr) != 0)
      return "sigaction failed";
    absl::InitializeSymbolizer("/proc/self/exe");
    void* warm_up[4];
    Unwind(warm_up, 4);  // initialises the unwinder outside any handler
    return nullptr;
  }();
  return error;
}

std::string ThreadName(pid_t tid) {
  std::ifstream comm(absl::StrCat("/proc/self/task/", tid, "/comm"));
  std::string name;
  std::getline(comm, name);
  return name;
}

bool CaptureDisabled() {
  const char* env = std::getenv("LIFECYCLE_STACKS");
  return env != nullptr && std::string(env) == "0";
}

absl::Mutex g_capture_mu(absl::kConstInit);

std::string CaptureLocked(pid_t tid, absl::Duration timeout, std::string out)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_capture_mu);

}  // namespace

std::string ThreadStack(pid_t tid, absl::Duration timeout) {
  std::string out = absl::StrCat("thread ", tid);
  std::string name = ThreadName(tid);
  if (!name.empty()) absl::StrAppend(&out, " '", name, "'");
  absl::StrAppend(&out, ":\n");
  auto unavailable = [&](absl::string_view why) {
    return absl::StrCat(out, "  stack unavailable: ", why, "\n");
  };
#if LIFECYCLE_TSAN
  return unavailable("not captured in ThreadSanitizer builds");
#endif
  if (CaptureDisabled()) return unavailable("LIFECYCLE_STACKS=0");
  if (tid == static_cast<pid_t>(syscall(SYS_gettid))) {
    return unavailable("it is the calling thread");
  }
  if (const char* error = InstallHandler()) return unavailable(error);

  // Captures are serialized. Another one holds the mutex for a bounded time
  // (its own timeout, twice at most): wait for it at most `timeout`, trying
  // rather than blocking, so that a report never waits on a lock for long.
  const absl::Time lock_deadline = absl::Now() + timeout;
  while (!g_capture_mu.TryLock()) {
    if (absl::Now() >= lock_deadline) {
      return unavailable("another capture was still in progress");
    }
    absl::SleepFor(absl::Microseconds(100));
  }
  std::string stack = CaptureLocked(tid, timeout, out);
  g_capture_mu.Unlock();
  return stack;
}

namespace {

std::string CaptureLocked(pid_t tid, absl::Duration timeout, std::string out)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_capture_mu) {
  auto unavailable = [&](absl::string_view why) {
    return absl::StrCat(out, "  stack unavailable: ", why, "\n");
  };
  while (sem_trywait(&g_done) == 0) {
  }  // a late post from an abandoned request
  if (g_state.load() == kWriting) {
    return unavailable("an earlier capture's handler has not finished");
  }
  g_target.store(tid);
  g_state.store(kRequested);
  if (syscall(SYS_tgkill, getpid(), tid, CaptureSignal()) != 0) {
    g_state.store(kIdle);
    return unavailable(errno == ESRCH ? "the thread has exited"
                                      : "the signal could not be sent");
  }
  // Waits for the handler's post until `deadline`; false if none came.
  auto await_handler = [](absl::Time deadline) {
    while (true) {
      if (absl::Now() >= deadline) return false;
      timespec ts = absl::ToTimespec(deadline);
      if (sem_timedwait(&g_done, &ts) == 0) return true;
      if (errno != EINTR && errno != ETIMEDOUT) return false;
    }
  };
  if (!await_handler(absl::Now() + timeout)) {
    int expected = kRequested;
    if (g_state.compare_exchange_strong(expected, kAbandoned)) {
      g_target.store(0);
      // A thread that was exiting as the signal was sent (a joined thread
      // can linger in the kernel for a moment) takes it but never runs the
      // handler: by now it is gone, and that is the answer.
      if (syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH) {
        return unavailable("the thread has exited");
      }
      return unavailable(absl::StrCat("the thread did not answer within ",
                                      absl::FormatDuration(timeout),
                                      " (it may block signals)"));
    }
    // The handler was writing as time ran out: it posts once done, which
    // takes microseconds; a handler that never does is reported, not waited
    // for (the next capture sees it still writing and says so).
    if (!await_handler(absl::Now() + timeout)) {
      return unavailable("the signal handler did not finish writing");
    }
  }
  int depth = g_depth;
  uintptr_t interrupted_pc = g_interrupted_pc;
  void* frames[kMaxFrames];
  std::memcpy(frames, g_frames, sizeof(void*) * depth);
  g_target.store(0);
  g_state.store(kIdle);

  // The first frames are the capture's own (the unwinder, the handler, the
  // kernel's signal trampoline): show the thread from the frame the signal
  // interrupted, found by its program counter.
  int first = 0;
  for (int i = 0; i < depth; ++i) {
    if (reinterpret_cast<uintptr_t>(frames[i]) == interrupted_pc) {
      first = i;
      break;
    }
  }
  for (int i = first; i < depth && frames[i] != nullptr; ++i) {
    char symbol[1024];
    // Return addresses point after the call; look up the call itself. The
    // interrupted frame's address is exact.
    uintptr_t pc = reinterpret_cast<uintptr_t>(frames[i]) - (i > first ? 1 : 0);
    std::string line =
        absl::Symbolize(reinterpret_cast<void*>(pc), symbol, sizeof(symbol))
            ? std::string(symbol)
            : absl::StrFormat("%p", frames[i]);
    absl::StrAppend(&out, "  #", i - first, " ", line, "\n");
  }
  return out;
}

}  // namespace

void EnableThreadStacksInReports() {
  service_internal::SetThreadDescriber(
      +[](pid_t tid) { return ThreadStack(tid); });
}

std::string PendingThreadStacks(const ServiceSnapshot& snapshot) {
  std::string out;
  for (const ServiceSnapshot* s : snapshot.Flatten()) {
    if (s->state != ServiceState::kStarting &&
        s->state != ServiceState::kStopping) {
      continue;
    }
    for (pid_t tid : s->threads) {
      absl::StrAppend(&out, "Stack of ", s->path, " (",
                      AbslView(s->StateLabel()), "), ", ThreadStack(tid));
    }
  }
  return out;
}

}  // namespace lifecycle
