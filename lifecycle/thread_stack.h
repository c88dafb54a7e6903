// -----------------------------------------------------------------------------
// thread_stack.h
// -----------------------------------------------------------------------------
//
// Shows *where* a stuck service is stuck: the symbolized stack of one of this
// process's threads, captured on demand. Timeout reports use it for every
// pending service's worker thread (`BaseService::WorkerThreadId()`), next to
// its state, so a hang seen once on CI can be read instead of reproduced.
//
//   std::string stack = lifecycle::ThreadStack(service.WorkerThreadId());
//   //   thread 4242 'notifier':
//   //     #0 examples::Notifier::Run(...)
//   //     #1 lifecycle::BaseService::WorkerMain(...)
//   //     ...
//
// Mechanism: a real-time signal is sent to the thread (tgkill); its handler
// records the stack with the DWARF unwinder (`_Unwind_Backtrace`, initialised
// before the first capture; frame-pointer unwinders, abseil's and the
// sanitizers' `backtrace()` included, lost their way past the signal frame in
// sanitizer builds) and the program counter the signal interrupted, and posts
// a semaphore; the caller waits for that at most `timeout` (twice, if the
// handler was still writing), then symbolizes with `absl::Symbolize` from the
// interrupted frame on. Captures are serialized process-wide by a mutex that
// is only tried, for at most `timeout`: a capture never blocks on a lock for
// longer, which the hang watchdog's report relies on
// (testing/hang_watchdog.h).
//
// Cost: nothing until a capture is asked for (no sampling, no background
// thread); the handler is installed at the first capture. A capture costs a
// signal delivery and one symbolization per frame (about a millisecond).
//
// Side effect on the target thread: the handler is installed with SA_RESTART,
// but Linux never restarts some blocking calls after any signal handler ran:
// `poll`, `ppoll`, `select`, `epoll_wait`, `nanosleep`/`sleep`, `usleep`,
// `sem_timedwait`, `io_getevents` and socket calls with a timeout return
// EINTR in the thread whose stack was captured (signal(7), "Interruption of
// system calls"). Code that retries on EINTR, as robust code must anyway, is
// unaffected; code that treats EINTR as an error sees one spurious error per
// capture. Captures only happen when a wait has already failed (a timeout
// report, a `StopFor()` that expired), and LIFECYCLE_STACKS=0 turns them off.
//
// Limits: a thread that blocks the signal, or never returns to user space
// within `timeout`, gives "stack unavailable: ..." instead of a stack (the
// caller never hangs). A thread that has exited says so. Under
// ThreadSanitizer, which defers signal delivery, stacks are not captured and
// the line says so. Setting LIFECYCLE_STACKS=0 turns capture off.
//
// Thread safety: thread-safe. Do not call from a signal handler.

#ifndef LIFECYCLE_THREAD_STACK_H_
#define LIFECYCLE_THREAD_STACK_H_

#include <sys/types.h>

#include <string>

#include "absl/time/time.h"
#include "lifecycle/health.h"
#include "lifecycle/service.h"

namespace lifecycle {

// "thread TID 'NAME':\n" followed by one "  #N function" line per frame, or by
// one "  stack unavailable: REASON" line. `tid` is an OS thread id of this
// process.
std::string ThreadStack(pid_t tid,
                        absl::Duration timeout = absl::Milliseconds(200));

// The stacks of the worker threads of every service in `snapshot` (and its
// descendants) that is starting or stopping, each headed by its path; empty if
// none has a worker thread.
std::string PendingThreadStacks(const ServiceSnapshot& snapshot);

// Makes the library's own reports — a bounded stop that expired
// (`NotStoppedError`, service.h), `StopForDestruction()`'s abort — show the
// stacks of the threads that hold a stop up. Off until called, so a service
// that never asks links no unwinder or symbolizer; the test harness and the
// demo call it. Idempotent; thread-safe.
void EnableThreadStacksInReports();

}  // namespace lifecycle

#endif  // LIFECYCLE_THREAD_STACK_H_
