#include "lifecycle/health.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lifecycle/strings_internal.h"
#include "nlohmann/json.hpp"

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

// Short, fixed-width-friendly durations: "850us", "3.1ms", "1.204s", "12m03s".
std::string ShortDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  if (d < absl::Milliseconds(1)) {
    return absl::StrCat(absl::ToInt64Microseconds(d), "us");
  }
  if (d < absl::Seconds(1)) {
    return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  }
  if (d < absl::Minutes(10)) {
    return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
  }
  int64_t seconds = absl::ToInt64Seconds(d);
  return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
}

// Display width of UTF-8 text, counted in code points (continuation bytes
// 10xxxxxx do not start a character).
size_t TextWidth(std::string_view text) {
  size_t width = 0;
  for (char c : text) width += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return width;
}

std::string TableOf(const std::vector<const ServiceSnapshot*>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"PATH", "STATE", "SINCE", "STARTUP", "STARTS", "RESTARTS",
                   "ERRORS", "LAST ERROR"});
  for (const ServiceSnapshot* s : rows) {
    std::string last_error;
    if (s->state == ServiceState::kFailed) {
      last_error = StatusText(s->status);
    } else if (!s->last_error.ok()) {
      last_error = StatusText(s->last_error);
    }
    cells.push_back(
        {s->path, std::string(s->StateLabel()), ShortDuration(s->InState()),
         s->startup_duration == absl::ZeroDuration()
             ? "-"
             : ShortDuration(s->startup_duration),
         absl::StrCat(s->start_count), absl::StrCat(s->restart_count),
         absl::StrCat(s->error_count), last_error});
  }
  std::vector<size_t> widths(cells[0].size(), 0);
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], TextWidth(row[i]));
    }
  }
  std::string out;
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppend(&line, row[i],
                        std::string(widths[i] - TextWidth(row[i]) + 2, ' '));
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

nlohmann::json TimeJson(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return nullptr;
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

nlohmann::json StatusJson(const absl::Status& status) {
  if (status.ok()) return nullptr;
  return {{"code", absl::StatusCodeToString(status.code())},
          {"message", std::string(status.message())}};
}

nlohmann::json ToJsonValue(const ServiceSnapshot& s) {
  nlohmann::json children = nlohmann::json::array();
  for (const ServiceSnapshot& child : s.children) {
    children.push_back(ToJsonValue(child));
  }
  return {
      {"name", s.name},
      {"path", s.path},
      {"state", ServiceStateName(s.state)},
      {"since", TimeJson(s.since)},
      {"taken_at", TimeJson(s.taken_at)},
      {"in_state_seconds", absl::ToDoubleSeconds(s.InState())},
      {"status", StatusJson(s.status)},
      {"degraded", s.degraded},
      {"errors", s.error_count},
      {"last_error", StatusJson(s.last_error)},
      {"last_error_at", TimeJson(s.last_error_at)},
      {"starts", s.start_count},
      {"failures", s.failure_count},
      {"last_failure", StatusJson(s.last_failure)},
      {"last_failure_at", TimeJson(s.last_failure_at)},
      {"restarts", s.restart_count},
      {"startup_seconds", absl::ToDoubleSeconds(s.startup_duration)},
      {"threads", s.threads},
      {"children", std::move(children)},
  };
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
         a.restart_count == b.restart_count &&
         a.startup_duration == b.startup_duration && a.threads == b.threads &&
         a.children == b.children;
}

std::string ToTable(const ServiceSnapshot& snapshot) {
  return TableOf(snapshot.Flatten());
}

std::string ToTable(const std::vector<ServiceSnapshot>& snapshots) {
  std::vector<const ServiceSnapshot*> rows;
  for (const ServiceSnapshot& s : snapshots) FlattenInto(s, rows);
  return TableOf(rows);
}

namespace {

std::string Dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false,
                nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string ToJson(const ServiceSnapshot& snapshot, int indent) {
  return Dump(ToJsonValue(snapshot), indent);
}

std::string ToJson(const std::vector<ServiceSnapshot>& snapshots, int indent) {
  nlohmann::json all = nlohmann::json::array();
  for (const ServiceSnapshot& s : snapshots) all.push_back(ToJsonValue(s));
  return Dump(all, indent);
}

std::ostream& operator<<(std::ostream& os, const ServiceSnapshot& snapshot) {
  return os << ToTable(snapshot);
}

}  // namespace lifecycle
