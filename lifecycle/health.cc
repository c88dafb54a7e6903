#include "lifecycle/health.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {

using strings_internal::AbslView;

std::string_view ServiceStateName(ServiceState state) {
  switch (state) {
    case ServiceState::kStopped:
      return "stopped";
    case ServiceState::kStarting:
      return "starting";
    case ServiceState::kStarted:
      return "started";
    case ServiceState::kStopping:
      return "stopping";
    case ServiceState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, ServiceState state) {
  return os << ServiceStateName(state);
}

std::string_view ServiceSnapshot::StateLabel() const {
  if (state == ServiceState::kStarted && degraded) return "degraded";
  return ServiceStateName(state);
}

namespace {

void FlattenInto(const ServiceSnapshot& s,
                 std::vector<const ServiceSnapshot*>& out) {
  out.push_back(&s);
  for (const ServiceSnapshot& child : s.children) FlattenInto(child, out);
}

}  // namespace

std::string StatusText(const absl::Status& status) {
  if (status.ok()) return "";
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

std::string ServiceSnapshot::StateText() const {
  if (state != ServiceState::kStarting && state != ServiceState::kStopping) {
    return std::string(StateLabel());
  }
  return absl::StrCat(
      AbslView(StateLabel()), " for ",
      absl::FormatDuration(absl::Trunc(InState(), absl::Milliseconds(1))));
}

std::vector<const ServiceSnapshot*> ServiceSnapshot::Flatten() const& {
  std::vector<const ServiceSnapshot*> out;
  FlattenInto(*this, out);
  return out;
}

const ServiceSnapshot* ServiceSnapshot::Find(std::string_view p) const& {
  for (const ServiceSnapshot* s : Flatten()) {
    if (s->path == p) return s;
  }
  return nullptr;
}

bool operator==(const ServiceSnapshot& a, const ServiceSnapshot& b) {
  return a.name == b.name && a.path == b.path && a.state == b.state &&
         a.since == b.since && a.taken_at == b.taken_at &&
         a.status == b.status && a.degraded == b.degraded &&
         a.error_count == b.error_count && a.last_error == b.last_error &&
         a.last_error_at == b.last_error_at && a.start_count == b.start_count &&
         a.failure_count == b.failure_count &&
         a.last_failure == b.last_failure &&
         a.last_failure_at == b.last_failure_at &&
         a.unasked_end_count == b.unasked_end_count &&
         a.last_unasked_end_at == b.last_unasked_end_at &&
         a.restart_count == b.restart_count &&
         a.startup_duration == b.startup_duration &&
         a.startup_completed == b.startup_completed &&
         a.start_began == b.start_began && a.depends_on == b.depends_on &&
         a.threads == b.threads && a.children == b.children;
}

}  // namespace lifecycle
