#include "lifecycle/service.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lifecycle/clock.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using strings_internal::AbslView;

namespace {

constexpr char kPathPayloadUrl[] = "lifecycle/failed-service-path";

}  // namespace

absl::Status service_internal::CheckList(absl::Span<Service* const> services) {
  absl::flat_hash_set<Service*> seen;
  for (size_t i = 0; i < services.size(); ++i) {
    if (services[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("service #", i, " in the list is null"));
    }
    if (!seen.insert(services[i]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("service '", AbslView(services[i]->Name()),
                       "' is listed more than once"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status AnnotateWithPath(absl::Status status, std::string_view path,
                              absl::string_view what) {
  if (status.ok() || status.GetPayload(kPathPayloadUrl).has_value()) {
    return status;
  }
  absl::Status annotated(
      status.code(), absl::StrCat("service '", AbslView(path), "' ", what, ": ",
                                  status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    annotated.SetPayload(url, payload);
  });
  annotated.SetPayload(kPathPayloadUrl, absl::Cord(AbslView(path)));
  return annotated;
}

}  // namespace

absl::Status AnnotateStartError(absl::Status status, std::string_view path) {
  return AnnotateWithPath(std::move(status), path, "failed to start");
}

absl::Status AnnotateRunError(absl::Status status, std::string_view path) {
  return AnnotateWithPath(std::move(status), path, "failed while running");
}

std::optional<std::string> FailedServicePath(const absl::Status& status) {
  auto payload = status.GetPayload(kPathPayloadUrl);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

absl::Status StartAll(absl::Span<Service* const> services, const Context& ctx) {
  if (absl::Status s = service_internal::CheckList(services); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < services.size(); ++i) {
    absl::Status status = services[i]->Start(ctx);
    if (!status.ok()) {
      StopAllParallel(services.subspan(0, i));
      return AnnotateStartError(std::move(status), services[i]->Path());
    }
  }
  return absl::OkStatus();
}

void StopAllParallel(absl::Span<Service* const> services) {
  for (Service* service : services) {
    if (service != nullptr) service->RequestStop();
  }
  for (Service* service : services) {
    if (service != nullptr) service->Stop();
  }
}

namespace service_internal {

absl::Status WithSuffix(const absl::Status& status, std::string_view suffix) {
  absl::Status out(status.code(),
                   absl::StrCat(status.message(), AbslView(suffix)));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

}  // namespace service_internal

namespace {

// NotStoppedServices() travels in a payload: entries separated by \x1e, an
// entry's fields (path, state, stacks...) by \x1f. Paths cannot hold control
// characters (names are checked); stacks do not.
constexpr char kNotStoppedUrl[] = "lifecycle/not-stopped";

void AddNotStoppedPayload(absl::Status& status,
                          const std::vector<NotStopped>& entries) {
  std::vector<std::string> encoded;
  for (const NotStopped& e : entries) {
    std::vector<std::string> fields = {e.path, e.state};
    fields.insert(fields.end(), e.stacks.begin(), e.stacks.end());
    encoded.push_back(absl::StrJoin(fields, "\x1f"));
  }
  if (!encoded.empty()) {
    status.SetPayload(kNotStoppedUrl,
                      absl::Cord(absl::StrJoin(encoded, "\x1e")));
  }
}

}  // namespace

std::vector<NotStopped> NotStoppedServices(const absl::Status& status) {
  std::vector<NotStopped> out;
  auto payload = status.GetPayload(kNotStoppedUrl);  // absl::optional
  if (!payload) return out;
  for (absl::string_view entry :
       absl::StrSplit(std::string(*payload), '\x1e')) {
    std::vector<std::string> fields = absl::StrSplit(entry, '\x1f');
    if (fields.size() < 2) continue;
    NotStopped n;
    n.path = fields[0];
    n.state = fields[1];
    n.stacks.assign(fields.begin() + 2, fields.end());
    out.push_back(std::move(n));
  }
  return out;
}

absl::Status StopAllParallelFor(absl::Span<Service* const> services,
                                absl::Duration timeout) {
  absl::Time deadline =
      lifecycle::Now() + std::max(timeout, absl::ZeroDuration());
  // Request every stop, then wait for the running ones together. No status
  // is made for a service that stops in time.
  size_t count = 0;
  for (Service* service : services) {
    if (service == nullptr) continue;
    ++count;
    service->RequestStop();
  }
  std::vector<Signal> stopped;
  stopped.reserve(count);
  for (Service* service : services) {
    if (service == nullptr) continue;
    ServiceState state = service->State();
    if (state != ServiceState::kStopped && state != ServiceState::kFailed) {
      stopped.push_back(service->Stopped());
    }
  }
  WaitAllUntil(stopped, deadline);
  std::vector<std::string> stuck;
  std::vector<NotStopped> entries;
  for (Service* service : services) {
    if (service == nullptr) continue;
    // Stopped by now (this joins its worker), or reported with its stacks. A
    // run that had just ended when its state was read closes its signal at
    // once: it is waited for until the deadline.
    if (service->StopFor(absl::ZeroDuration()).ok()) continue;
    if (service->Stopped().WaitUntil(deadline) &&
        service->StopFor(absl::ZeroDuration()).ok()) {
      continue;
    }
    absl::Status not_stopped = NotStoppedError(*service, timeout);
    stuck.push_back(std::string(not_stopped.message()));
    for (NotStopped& e : NotStoppedServices(not_stopped)) {
      entries.push_back(std::move(e));
    }
  }
  if (stuck.empty()) return absl::OkStatus();
  absl::Status status = absl::DeadlineExceededError(absl::StrCat(
      stuck.size(), " of ", count, " services did not stop within ",
      absl::FormatDuration(timeout), ":\n", absl::StrJoin(stuck, "\n")));
  AddNotStoppedPayload(status, entries);
  return status;
}

namespace {

// The services of `root`'s tree that hold up its stop (or start): those in
// `state` none of whose children is in `state`.
std::vector<const ServiceSnapshot*> Blockers(const ServiceSnapshot& root,
                                             ServiceState state) {
  std::vector<const ServiceSnapshot*> out;
  for (const ServiceSnapshot* node : root.Flatten()) {
    if (node->state != state) continue;
    bool child_in_state = false;
    for (const ServiceSnapshot& child : node->children) {
      child_in_state |= child.state == state;
    }
    if (!child_in_state) out.push_back(node);
  }
  return out;
}

}  // namespace

namespace service_internal {
std::atomic<ThreadDescriber> thread_describer{nullptr};
void SetThreadDescriber(ThreadDescriber describe) {
  thread_describer.store(describe, std::memory_order_release);
}
}  // namespace service_internal

absl::Status NotStoppedError(const Service& service, absl::Duration timeout) {
  ServiceSnapshot s = service.Snapshot();
  std::string message = absl::StrCat(
      "service '", s.path, "' did not stop within ",
      absl::FormatDuration(absl::Trunc(timeout, absl::Milliseconds(1))));
  std::vector<const ServiceSnapshot*> blockers =
      Blockers(s, ServiceState::kStopping);
  std::vector<std::string> names;
  std::string stacks;
  std::vector<NotStopped> entries;
  service_internal::ThreadDescriber describe =
      service_internal::thread_describer.load(std::memory_order_acquire);
  for (const ServiceSnapshot* node : blockers) {
    NotStopped& entry = entries.emplace_back();
    entry.path = node->path;
    entry.state = node->StateText();
    if (node != &s) {
      names.push_back(absl::StrCat(node->path, " (", node->StateText(), ")"));
    }
    if (describe == nullptr) continue;
    for (pid_t tid : node->threads) {
      std::string stack = describe(tid);
      absl::StrAppend(&stacks, "\nStack of ", node->path, " (",
                      AbslView(node->StateLabel()), "), ", stack);
      entry.stacks.push_back(std::move(stack));
    }
  }
  if (!names.empty()) {
    absl::StrAppend(&message, "; still stopping: ", absl::StrJoin(names, ", "));
  }
  if (!stacks.empty() && stacks.back() == '\n') stacks.pop_back();
  absl::StrAppend(&message, stacks);
  absl::Status status = absl::DeadlineExceededError(message);
  AddNotStoppedPayload(status, entries);
  return status;
}

std::vector<std::string> PendingServices(absl::Span<Service* const> services) {
  std::vector<std::string> pending;
  for (Service* service : services) {
    if (service != nullptr && !service->Started().IsClosed()) {
      pending.push_back(service->Path());
    }
  }
  return pending;
}

namespace {

absl::Status FailuresAmong(absl::Span<Service* const> services) {
  std::vector<std::string> failed;
  std::optional<std::string> first_path;
  absl::Status only_failure;
  for (Service* service : services) {
    ServiceSnapshot s = service->Snapshot();
    if (s.state == ServiceState::kStarted ||
        s.state == ServiceState::kStarting) {
      continue;
    }
    only_failure = s.status;
    std::optional<std::string> path = FailedServicePath(s.status);
    if (!path) path = s.path;
    if (!first_path) first_path = path;
    failed.push_back(
        s.state == ServiceState::kFailed
            ? StatusText(s.status)
            : absl::StrCat(s.path, " (", AbslView(s.StateLabel()), ")"));
  }
  if (failed.empty()) return absl::OkStatus();
  // One failed service: its own error already names it.
  if (failed.size() == 1 && !only_failure.ok()) return only_failure;
  absl::Status status = absl::FailedPreconditionError(
      absl::StrCat(failed.size(), " of ", services.size(),
                   " services did not start: ", absl::StrJoin(failed, "; ")));
  status.SetPayload(kPathPayloadUrl, absl::Cord(*first_path));
  return status;
}

}  // namespace

namespace {

// Waits until every started signal is closed, or `deadline`; false then.
// Records when it began in `*began`.
bool WaitForStarts(absl::Span<Service* const> services, absl::Time deadline,
                   absl::Time* began) {
  *began = lifecycle::Now();
  std::vector<Signal> signals;
  signals.reserve(services.size());
  for (Service* service : services) signals.push_back(service->Started());
  return WaitAllUntil(signals, deadline);
}

}  // namespace

absl::Status WaitAllStarted(absl::Span<Service* const> services) {
  return WaitAllStartedUntil(services, absl::InfiniteFuture());
}

absl::Status WaitAllStartedUntil(absl::Span<Service* const> services,
                                 absl::Time deadline) {
  // The path where every service has started does no reporting work: no list
  // of signals, no snapshot, no name; a service listed twice is only looked
  // at twice.
  bool all_started = true;
  for (Service* service : services) {
    if (service == nullptr) return service_internal::CheckList(services);
    if (all_started && !service->Started().IsClosed()) all_started = false;
  }
  absl::Time began;
  if (!all_started && !WaitForStarts(services, deadline, &began)) {
    std::vector<std::string> pending;
    for (Service* service : services) {
      if (service->Started().IsClosed()) continue;
      ServiceSnapshot s = service->Snapshot();
      std::string entry = absl::StrCat(s.path, " (", s.StateText(), ")");
      std::vector<std::string> blockers;
      for (const ServiceSnapshot* node : Blockers(s, ServiceState::kStarting)) {
        if (node == &s) continue;
        blockers.push_back(
            absl::StrCat(node->path, " (", node->StateText(), ")"));
      }
      if (!blockers.empty()) {
        absl::StrAppend(&entry, " waiting on ", absl::StrJoin(blockers, ", "));
      }
      pending.push_back(std::move(entry));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        pending.size(), " of ", services.size(), " services not started after ",
        absl::FormatDuration(
            absl::Trunc(lifecycle::Now() - began, absl::Milliseconds(1))),
        ": ", absl::StrJoin(pending, ", ")));
  }
  // Only a service that did not start (its run ended: a start that failed)
  // needs a closer look.
  for (Service* service : services) {
    ServiceState state = service->State();
    if (state != ServiceState::kStarted && state != ServiceState::kStarting) {
      return FailuresAmong(services);
    }
  }
  return absl::OkStatus();
}

std::ostream& operator<<(std::ostream& os, const Service& service) {
  // Text, as test failures print it: a path or an error with bytes that are
  // not UTF-8 has them replaced.
  ServiceSnapshot s = service.Snapshot();
  std::string text =
      absl::StrCat("service '", s.path, "' (", AbslView(s.StateLabel()));
  if (s.state == ServiceState::kFailed) {
    absl::StrAppend(&text, ": ", StatusText(s.status));
  } else if (s.degraded) {
    absl::StrAppend(&text, ": ", StatusText(s.last_error));
  }
  return os << strings_internal::ValidUtf8(text) << ")";
}

std::vector<ServiceSnapshot> SnapshotAll(absl::Span<Service* const> services) {
  std::vector<ServiceSnapshot> snapshots;
  for (Service* service : services) {
    if (service != nullptr) snapshots.push_back(service->Snapshot());
  }
  return snapshots;
}

}  // namespace lifecycle
