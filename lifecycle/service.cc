#include "lifecycle/service.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using strings_internal::AbslView;
namespace {

constexpr char kPathPayloadUrl[] = "lifecycle/failed-service-path";

absl::Status CheckList(absl::Span<Service* const> services) {
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

std::string PathOf(const Service& service) { return service.Snapshot().path; }

}  // namespace

absl::Status AnnotateStartError(absl::Status status, std::string_view path) {
  if (status.ok() || status.GetPayload(kPathPayloadUrl).has_value()) {
    return status;
  }
  absl::Status annotated(status.code(),
                         absl::StrCat("service '", AbslView(path),
                                      "' failed to start: ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    annotated.SetPayload(url, payload);
  });
  annotated.SetPayload(kPathPayloadUrl, absl::Cord(AbslView(path)));
  return annotated;
}

std::optional<std::string> FailedServicePath(const absl::Status& status) {
  auto payload = status.GetPayload(kPathPayloadUrl);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

absl::Status StartAll(absl::Span<Service* const> services, const Context& ctx) {
  if (absl::Status s = CheckList(services); !s.ok()) return s;
  for (size_t i = 0; i < services.size(); ++i) {
    absl::Status status = services[i]->Start(ctx);
    if (!status.ok()) {
      StopAllParallel(services.subspan(0, i));
      return AnnotateStartError(std::move(status), PathOf(*services[i]));
    }
  }
  return absl::OkStatus();
}

void StopAllParallel(absl::Span<Service* const> services) {
  std::atomic<size_t> next{0};
  auto stop_some = [&] {
    for (size_t i; (i = next.fetch_add(1)) < services.size();) {
      if (services[i] != nullptr) services[i]->Stop();
    }
  };
  size_t helpers = std::min<size_t>(services.size(), kMaxStopThreads) -
                   (services.empty() ? 0 : 1);
  std::vector<std::thread> threads;
  threads.reserve(helpers);
  for (size_t i = 0; i < helpers; ++i) {
    try {
      threads.emplace_back(stop_some);
    } catch (const std::system_error&) {
      break;  // out of threads: fewer helpers, down to the calling thread alone
    }
  }
  stop_some();  // the calling thread helps too
  for (std::thread& t : threads) t.join();
}

std::vector<std::string> PendingServices(absl::Span<Service* const> services) {
  std::vector<std::string> pending;
  for (Service* service : services) {
    if (service != nullptr && !service->Started().IsClosed()) {
      pending.push_back(PathOf(*service));
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

// The descendants of `root` that hold its start up: starting services none of
// whose children is starting.
std::vector<const ServiceSnapshot*> BlockingDescendants(
    const ServiceSnapshot& root) {
  std::vector<const ServiceSnapshot*> out;
  for (const ServiceSnapshot* node : root.Flatten()) {
    if (node == &root || node->state != ServiceState::kStarting) continue;
    bool child_starting = false;
    for (const ServiceSnapshot& child : node->children) {
      child_starting |= child.state == ServiceState::kStarting;
    }
    if (!child_starting) out.push_back(node);
  }
  return out;
}

}  // namespace

absl::Status WaitAllStarted(absl::Span<Service* const> services) {
  return WaitAllStartedUntil(services, absl::InfiniteFuture());
}

absl::Status WaitAllStartedUntil(absl::Span<Service* const> services,
                                 absl::Time deadline) {
  if (absl::Status s = CheckList(services); !s.ok()) return s;
  absl::Time began = absl::Now();
  std::vector<Signal> signals;
  signals.reserve(services.size());
  for (Service* service : services) signals.push_back(service->Started());
  if (!WaitForAll(signals, deadline)) {
    std::vector<std::string> pending;
    for (Service* service : services) {
      if (service->Started().IsClosed()) continue;
      ServiceSnapshot s = service->Snapshot();
      std::string entry = absl::StrCat(s.path, " (", s.StateText(), ")");
      std::vector<std::string> blockers;
      for (const ServiceSnapshot* node : BlockingDescendants(s)) {
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
            absl::Trunc(absl::Now() - began, absl::Milliseconds(1))),
        ": ", absl::StrJoin(pending, ", ")));
  }
  return FailuresAmong(services);
}

std::vector<ServiceSnapshot> SnapshotAll(absl::Span<Service* const> services) {
  std::vector<ServiceSnapshot> snapshots;
  for (Service* service : services) {
    if (service != nullptr) snapshots.push_back(service->Snapshot());
  }
  return snapshots;
}

}  // namespace lifecycle
