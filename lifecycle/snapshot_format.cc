#include "lifecycle/snapshot_format.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "lifecycle/strings_internal.h"
#include "nlohmann/json.hpp"

namespace lifecycle {

using strings_internal::AbslView;

namespace {

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

// "key=value key=value": a row's DETAILS.
std::string DetailsText(const ServiceSnapshot& s) {
  std::string out;
  for (const auto& [key, value] : s.details) {
    absl::StrAppend(&out, out.empty() ? "" : " ", key, "=", value);
  }
  return out;
}

std::string TableOf(const std::vector<const ServiceSnapshot*>& rows) {
  bool with_details = false;
  for (const ServiceSnapshot* s : rows) with_details |= !s->details.empty();
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"PATH", "STATE", "SINCE", "STARTUP", "STARTS", "RESTARTS",
                   "ERRORS", "LAST ERROR"});
  if (with_details) cells.back().push_back("DETAILS");
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
    if (with_details) cells.back().push_back(DetailsText(*s));
  }
  // Paths and errors are bytes; the table is text (failure messages carry it).
  for (auto& row : cells) {
    for (std::string& cell : row) cell = strings_internal::ValidUtf8(cell);
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
  nlohmann::json out = {
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
      {"unasked_ends", s.unasked_end_count},
      {"last_unasked_end_at", TimeJson(s.last_unasked_end_at)},
      {"restarts", s.restart_count},
      {"startup_seconds", absl::ToDoubleSeconds(s.startup_duration)},
      {"threads", s.threads},
      {"children", std::move(children)},
  };
  if (!s.details.empty()) {
    nlohmann::json details = nlohmann::json::object();
    for (const auto& [key, value] : s.details) details[key] = value;
    out["details"] = std::move(details);
  }
  return out;
}

std::string Dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false,
                nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string ToTable(const ServiceSnapshot& snapshot) {
  return TableOf(snapshot.Flatten());
}

std::string ToTable(const std::vector<ServiceSnapshot>& snapshots) {
  std::vector<const ServiceSnapshot*> rows;
  for (const ServiceSnapshot& s : snapshots) {
    for (const ServiceSnapshot* node : s.Flatten()) rows.push_back(node);
  }
  return TableOf(rows);
}

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
