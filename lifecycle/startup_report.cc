#include "lifecycle/startup_report.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lifecycle/strings_internal.h"

namespace lifecycle {
namespace {

using strings_internal::ValidUtf8;

bool HasSpan(const ServiceSnapshot& s) {
  return s.start_began != absl::InfinitePast() && s.startup_completed;
}

absl::Time EndOf(const ServiceSnapshot& s) {
  return s.start_began + s.startup_duration;
}

std::string Ms(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Microseconds(100)));
}

// The child with a span that signalled started last, among `candidates`.
const ServiceSnapshot* LastToStart(
    const std::vector<const ServiceSnapshot*>& candidates) {
  const ServiceSnapshot* last = nullptr;
  for (const ServiceSnapshot* c : candidates) {
    if (HasSpan(*c) && (last == nullptr || EndOf(*c) > EndOf(*last))) last = c;
  }
  return last;
}

void Explain(const ServiceSnapshot& node, absl::Time origin,
             std::vector<StartupHop>& hops) {
  hops.push_back({node.path, node.start_began - origin, node.startup_duration});
  std::vector<const ServiceSnapshot*> children;
  for (const ServiceSnapshot& c : node.children) children.push_back(&c);
  const ServiceSnapshot* last = LastToStart(children);
  if (last == nullptr) return;
  // Back from the last child through the dependencies each one waited for.
  std::vector<const ServiceSnapshot*> chain = {last};
  absl::flat_hash_set<const ServiceSnapshot*> seen = {last};
  while (true) {
    std::vector<const ServiceSnapshot*> dependencies;
    for (const std::string& name : chain.back()->depends_on) {
      for (const ServiceSnapshot* c : children) {
        if (c->name == name && !seen.contains(c)) dependencies.push_back(c);
      }
    }
    const ServiceSnapshot* waited_for = LastToStart(dependencies);
    if (waited_for == nullptr) break;
    seen.insert(waited_for);
    chain.push_back(waited_for);
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    Explain(**it, origin, hops);
  }
}

// The first cycle among the dependencies of the children of a composite in
// `root`'s tree (a hand-made snapshot, or one read back from JSON: the library
// refuses cycles), as paths, its first service again at the end; empty if none.
std::vector<std::string> DependencyCycle(const ServiceSnapshot& root) {
  for (const ServiceSnapshot* node : root.Flatten()) {
    const std::vector<ServiceSnapshot>& children = node->children;
    auto by_name = [&](const std::string& name) -> const ServiceSnapshot* {
      for (const ServiceSnapshot& c : children) {
        if (c.name == name) return &c;
      }
      return nullptr;
    };
    // Depth first from each child; `on_path` is the chain being followed.
    absl::flat_hash_set<const ServiceSnapshot*> done;
    std::vector<const ServiceSnapshot*> on_path;
    std::vector<std::string> cycle;
    std::function<bool(const ServiceSnapshot*)> visit =
        [&](const ServiceSnapshot* s) {
          auto again = std::find(on_path.begin(), on_path.end(), s);
          if (again != on_path.end()) {
            for (auto it = again; it != on_path.end(); ++it) {
              cycle.push_back((*it)->path);
            }
            cycle.push_back(s->path);
            return true;
          }
          if (!done.insert(s).second) return false;
          on_path.push_back(s);
          for (const std::string& name : s->depends_on) {
            const ServiceSnapshot* dependency = by_name(name);
            if (dependency != nullptr && visit(dependency)) return true;
          }
          on_path.pop_back();
          return false;
        };
    for (const ServiceSnapshot& c : children) {
      if (visit(&c)) return cycle;
    }
  }
  return {};
}

void Collect(const ServiceSnapshot& s,
             std::vector<const ServiceSnapshot*>& out) {
  for (const ServiceSnapshot* node : s.Flatten()) {
    if (HasSpan(*node)) out.push_back(node);
  }
}

std::string JsonString(std::string_view raw) {
  const std::string text = ValidUtf8(raw);
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string XmlText(std::string_view raw) {
  const std::string text = ValidUtf8(raw);
  std::string out;
  for (char c : text) {
    // XML 1.0 has no place for control characters but tab and newlines.
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' &&
        c != '\r') {
      out += "\xEF\xBF\xBD";
      continue;
    }
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<StartupHop> CriticalPath(const ServiceSnapshot& root) {
  std::vector<StartupHop> hops;
  if (HasSpan(root)) Explain(root, root.start_began, hops);
  return hops;
}

std::string CriticalPathText(const ServiceSnapshot& root) {
  std::vector<StartupHop> hops = CriticalPath(root);
  if (hops.empty()) return absl::StrCat(root.path, ": no completed start-up");
  std::vector<std::string> parts;
  for (const StartupHop& hop : hops) {
    parts.push_back(absl::StrCat(
        hop.path, " @", hop.at == absl::ZeroDuration() ? "0" : Ms(hop.at), " +",
        Ms(hop.took)));
  }
  std::string text = absl::StrCat(root.path, " ", Ms(root.startup_duration),
                                  ": ", absl::StrJoin(parts, " → "));
  if (std::vector<std::string> cycle = DependencyCycle(root); !cycle.empty()) {
    absl::StrAppend(&text, " (the dependencies form a cycle: ",
                    absl::StrJoin(cycle, " -> "),
                    "; the path past it is a guess)");
  }
  return text;
}

std::string SlowestStarts(const ServiceSnapshot& root, int count) {
  std::vector<const ServiceSnapshot*> leaves;
  for (const ServiceSnapshot* node : root.Flatten()) {
    if (node->children.empty() && HasSpan(*node)) leaves.push_back(node);
  }
  if (leaves.empty()) return "";
  std::stable_sort(leaves.begin(), leaves.end(),
                   [](const ServiceSnapshot* a, const ServiceSnapshot* b) {
                     return a->startup_duration > b->startup_duration;
                   });
  if (count >= 0 && leaves.size() > static_cast<size_t>(count)) {
    leaves.resize(count);
  }
  std::vector<std::string> parts;
  for (const ServiceSnapshot* s : leaves) {
    parts.push_back(absl::StrCat(s->path, " ", Ms(s->startup_duration)));
  }
  return absl::StrCat("Slowest starts: ", absl::StrJoin(parts, ", "));
}

std::string ToTraceEventJson(const std::vector<ServiceSnapshot>& roots) {
  std::vector<const ServiceSnapshot*> spans;
  for (const ServiceSnapshot& root : roots) Collect(root, spans);
  absl::Time origin = absl::InfiniteFuture();
  for (const ServiceSnapshot* s : spans)
    origin = std::min(origin, s->start_began);
  std::vector<std::string> events = {
      R"({"name":"process_name","ph":"M","pid":1,"tid":0,)"
      R"("args":{"name":"lifecycle start-up"}})"};
  for (size_t i = 0; i < spans.size(); ++i) {
    const ServiceSnapshot& s = *spans[i];
    const size_t track = i + 1;
    events.push_back(absl::StrFormat(
        R"({"name":"thread_name","ph":"M","pid":1,"tid":%d,"args":{"name":%s}})",
        track, JsonString(s.path)));
    events.push_back(absl::StrFormat(
        R"({"name":"thread_sort_index","ph":"M","pid":1,"tid":%d,)"
        R"("args":{"sort_index":%d}})",
        track, track));
    std::vector<std::string> depends_on;
    for (const std::string& d : s.depends_on)
      depends_on.push_back(JsonString(d));
    events.push_back(absl::StrFormat(
        R"({"name":%s,"cat":"start","ph":"X","pid":1,"tid":%d,"ts":%.3f,)"
        R"("dur":%.3f,"args":{"state":%s,"depends_on":[%s]}})",
        JsonString(s.path), track,
        absl::ToDoubleMicroseconds(s.start_began - origin),
        absl::ToDoubleMicroseconds(s.startup_duration),
        JsonString(s.StateLabel()), absl::StrJoin(depends_on, ",")));
  }
  return absl::StrCat("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n",
                      absl::StrJoin(events, ",\n"), "\n]}\n");
}

namespace {

// A start that failed before it signalled started: drawn in the waterfall
// (grey) to when it failed, since that is what a failed test wants to see.
bool FailedStart(const ServiceSnapshot& s) {
  return s.state == ServiceState::kFailed && !s.startup_completed &&
         s.start_began != absl::InfinitePast() &&
         s.last_failure_at >= s.start_began;
}

}  // namespace

std::string ToStartupSvg(const std::vector<ServiceSnapshot>& roots) {
  std::vector<const ServiceSnapshot*> spans;
  absl::flat_hash_set<std::string> critical;
  for (const ServiceSnapshot& root : roots) {
    for (const ServiceSnapshot* node : root.Flatten()) {
      if (HasSpan(*node) || FailedStart(*node)) spans.push_back(node);
    }
    for (const StartupHop& hop : CriticalPath(root)) critical.insert(hop.path);
  }
  auto end_of = [](const ServiceSnapshot& s) {
    return FailedStart(s) ? s.last_failure_at : EndOf(s);
  };
  bool completed = false, any_failed = false;
  absl::Time origin = absl::InfiniteFuture();
  absl::Time end = absl::InfinitePast();
  size_t label_chars = 10;
  for (const ServiceSnapshot* s : spans) {
    origin = std::min(origin, s->start_began);
    end = std::max(end, end_of(*s));
    label_chars = std::max(label_chars, s->path.size());
    completed = completed || HasSpan(*s);
    any_failed = any_failed || FailedStart(*s);
  }
  if (spans.empty()) origin = end = absl::UnixEpoch();  // ticks of 0
  const double total_us =
      std::max(1.0, absl::ToDoubleMicroseconds(end - origin));
  const int kRow = 22, kTop = 48, kBarsWidth = 640;
  const int label_width = static_cast<int>(label_chars) * 8 + 20;
  const int width = label_width + kBarsWidth + 130;
  const int height = kTop + kRow * static_cast<int>(spans.size()) + 16;
  auto x_of = [&](absl::Time t) {
    return label_width +
           absl::ToDoubleMicroseconds(t - origin) / total_us * kBarsWidth;
  };
  std::string out = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
      "<text x=\"10\" y=\"20\" font-weight=\"bold\">Start-up: %s "
      "(the critical path in red%s)</text>\n",
      width, height, width, height,
      completed ? XmlText(Ms(end - origin)).c_str() : "no completed start-up",
      any_failed ? ", failed starts in grey" : "");
  // A tick every quarter of the whole.
  for (int q = 0; q <= 4; ++q) {
    double x = label_width + kBarsWidth * q / 4.0;
    out += absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#dddddd\"/>"
        "<text x=\"%.1f\" y=\"%d\" fill=\"#777777\">%s</text>\n",
        x, kTop - 12, x, height - 8, x + 2, kTop - 16,
        XmlText(Ms((end - origin) * q / 4)));
  }
  for (size_t i = 0; i < spans.size(); ++i) {
    const ServiceSnapshot& s = *spans[i];
    const bool failed = FailedStart(s);
    const int y = kTop + kRow * static_cast<int>(i);
    const double x = x_of(s.start_began);
    const double w = std::max(2.0, x_of(end_of(s)) - x);
    const std::string took =
        failed ? absl::StrCat("failed after ",
                              Ms(s.last_failure_at - s.start_began))
               : Ms(s.startup_duration);
    out += absl::StrFormat(
        "<text x=\"10\" y=\"%d\">%s</text>"
        "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"16\" fill=\"%s\">"
        "<title>%s: began @%s, %s%s</title></rect>"
        "<text x=\"%.1f\" y=\"%d\">%s</text>\n",
        y + 13, XmlText(s.path), x, y, w,
        failed                      ? "#8a8f98"
        : critical.contains(s.path) ? "#d0342c"
                                    : "#3b7dd8",
        XmlText(s.path), XmlText(Ms(s.start_began - origin)),
        failed ? "" : "took ", XmlText(took), x + w + 4, y + 13, XmlText(took));
  }
  return out + "</svg>\n";
}

}  // namespace lifecycle
