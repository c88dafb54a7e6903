// The demo: starts the example client (client.h), shows its health table while
// it starts and once it has started, then stops it.
//
//   bazel run //examples:demo -- [--queues=N] [--fail=PATH,...]
//       [--hang=PATH,...] [--die=PATH] [--json] [--timeout=DURATION]
//       [--trace=FILE]
//
// Once the client has started, it prints the critical path of its start-up
// and the slowest parts (startup_report.h). `--trace=FILE` also writes the
// start-up as Trace Event JSON to FILE (open it in ui.perfetto.dev or
// chrome://tracing) and as an SVG waterfall to FILE.svg.
//
// Flags are abseil's (`--help` lists them). A relative --trace path is taken
// from the directory `bazel run` was called in (BUILD_WORKING_DIRECTORY), not
// from the runfiles tree the binary runs in.
//
// `--die=PATH` kills a leaf once the client has started, and shows what the
// client's supervision does about it (client.h): restart, degrade, or fail.
//
// Exit status: 0, 1 or 2, as kExitStatuses below says (--help prints it, and
// the README copies it).

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "examples/client.h"
#include "lifecycle/service.h"
#include "lifecycle/snapshot_format.h"
#include "lifecycle/startup_report.h"
#include "lifecycle/thread_stack.h"

ABSL_FLAG(int, queues, 2, "producers for N queues, 1 to 20");
ABSL_FLAG(std::vector<std::string>, fail, {},
          "paths of services whose start fails (comma-separated)");
ABSL_FLAG(std::vector<std::string>, hang, {},
          "paths of services that never finish starting (comma-separated)");
ABSL_FLAG(std::string, die, "",
          "path of a leaf to kill once the client has started; shows what "
          "the client does (restart, degrade or fail)");
ABSL_FLAG(bool, json, false,
          "snapshots as JSON Lines on stdout (one {phase, seconds, snapshot} "
          "object a line), everything else on stderr");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2),
          "how long to wait for the start");
ABSL_FLAG(std::string, trace, "",
          "write the start-up as Trace Event JSON to this file, and as an SVG "
          "waterfall to the file's name + .svg");

namespace {

struct Flags {
  int queues = 2;
  examples::Faults faults;
  std::string die;
  bool json = false;
  absl::Duration timeout = absl::Seconds(2);
};

// Abseil parses the command line (unknown flags, bad syntax, --help); this
// checks the values' ranges.
bool ValidateFlags(Flags& flags) {
  flags.queues = absl::GetFlag(FLAGS_queues);
  for (const std::string& path : absl::GetFlag(FLAGS_fail)) {
    flags.faults.fail.insert(path);
  }
  for (const std::string& path : absl::GetFlag(FLAGS_hang)) {
    flags.faults.hang.insert(path);
  }
  flags.die = absl::GetFlag(FLAGS_die);
  flags.json = absl::GetFlag(FLAGS_json);
  flags.timeout = absl::GetFlag(FLAGS_timeout);
  if (flags.queues < 1 || flags.queues > 20) {
    std::cerr << "demo: --queues wants a number from 1 to 20, got "
              << flags.queues << "\n";
    return false;
  }
  if (flags.timeout <= absl::ZeroDuration()) {
    std::cerr << "demo: --timeout wants a positive duration such as 2s, got "
              << absl::FormatDuration(flags.timeout) << "\n";
    return false;
  }
  return true;
}

std::vector<std::string> QueueNames(int n) {
  std::vector<std::string> names = {"default"};
  for (int i = 1; i < n; ++i) names.push_back(absl::StrCat("queue", i));
  return names;
}

// Where text for people goes: stdout, or stderr under --json, so that stdout
// holds nothing but JSON Lines.
std::ostream* human = &std::cout;

// A snapshot: a titled table, or under --json one line on stdout,
//   {"phase":"started","seconds":0.092,"snapshot":{...}}
// with `seconds` the time the phase took (0 when it has none).
void Show(const lifecycle::Service& service, bool json, std::string_view phase,
          std::string_view title, absl::Duration took = absl::ZeroDuration()) {
  *human << "== " << title << "\n" << std::flush;
  if (json) {
    std::cout << "{\"phase\":\"" << phase
              << "\",\"seconds\":" << absl::ToDoubleSeconds(took)
              << ",\"snapshot\":" << lifecycle::ToJson(service.Snapshot())
              << "}\n"
              << std::flush;
  } else {
    std::cout << lifecycle::ToTable(service.Snapshot()) << std::flush;
  }
}

constexpr char kExitStatuses[] =
    "Exit status:\n"
    "  0  a clean start and stop (also when a killed part was restarted, or "
    "the client degraded)\n"
    "  1  a service failed or hung: the report names it, or the part whose "
    "death failed the client\n"
    "  2  a usage error of the demo's own: an unknown service path, a value "
    "out of range, an argument that is not a flag, an unwritable --trace\n"
    "  1  abseil's own flag errors (an unknown flag, a value of the wrong "
    "type) and --help, as for any program using abseil's flags\n";

// A relative path as the user meant it: under `bazel run`, from the directory
// the command was run in, not the runfiles tree the binary runs in.
std::string UserPath(const std::string& path) {
  const char* dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || dir == nullptr || *dir == '\0') {
    return path;
  }
  return absl::StrCat(dir, "/", path);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(absl::StrCat(
      "starts the example client (examples/client.h), shows its health while "
      "it starts and once started, then stops it.\n",
      kExitStatuses));
  std::vector<char*> arguments = absl::ParseCommandLine(argc, argv);
  if (arguments.size() > 1) {
    std::cerr << "demo: unexpected argument '" << arguments[1]
              << "' (flags only; see --help)\n";
    return 2;
  }
  Flags flags;
  if (!ValidateFlags(flags)) return 2;
  if (flags.json) human = &std::cerr;
  lifecycle::EnableThreadStacksInReports();

  examples::SimulatedDatabase database;
  examples::ClientConfig config;
  config.queues = QueueNames(flags.queues);
  config.database = &database;
  config.faults = flags.faults;
  examples::Crashes crashes;
  config.crashes = &crashes;
  config.simulated_start_time = absl::Milliseconds(30);
  examples::Client client(config);

  // Every injected path must name a service of this client.
  std::vector<std::string> paths;
  lifecycle::ServiceSnapshot tree = client.Snapshot();
  for (const auto* s : tree.Flatten()) paths.push_back(s->path);
  std::set<std::string> dies;
  if (!flags.die.empty()) dies.insert(flags.die);
  for (const auto* set : {&flags.faults.fail, &flags.faults.hang, &dies}) {
    for (const std::string& path : *set) {
      if (std::find(paths.begin(), paths.end(), path) == paths.end()) {
        std::cerr << "demo: unknown service path '" << path
                  << "'. Valid paths: " << absl::StrJoin(paths, ", ") << "\n";
        return 2;
      }
    }
  }

  absl::Time began = absl::Now();
  lifecycle::Service* services[] = {&client};
  absl::Status status = client.Start(lifecycle::Context::Background());
  if (status.ok()) {
    // One look while it starts: once its first component (the notifier) has
    // started, or at once if it cannot.
    client.notifier().Started().WaitUntil(began + flags.timeout);
    Show(client, flags.json, "starting", "starting");
    status = lifecycle::WaitAllStartedUntil(services, began + flags.timeout);
  }
  if (!status.ok()) {
    *human << "== start FAILED\n" << lifecycle::StatusText(status) << "\n";
    if (auto path = lifecycle::FailedServicePath(status)) {
      *human << "failed service: " << *path << "\n";
    }
    Show(client, flags.json, "start_failed", "health at the failure");
    *human << lifecycle::PendingThreadStacks(client.Snapshot());
    client.Stop();
    return 1;
  }
  absl::Duration start_took = absl::Now() - began;
  Show(client, flags.json, "started",
       absl::StrCat("started in ", absl::FormatDuration(absl::Trunc(
                                       start_took, absl::Milliseconds(1)))),
       start_took);
  lifecycle::ServiceSnapshot at_start = client.Snapshot();
  *human << "== critical path\n"
         << lifecycle::CriticalPathText(at_start) << "\n"
         << lifecycle::SlowestStarts(at_start) << "\n";
  if (std::string trace = UserPath(absl::GetFlag(FLAGS_trace));
      !trace.empty()) {
    std::ofstream json(trace), svg(trace + ".svg");
    json << lifecycle::ToTraceEventJson({at_start});
    svg << lifecycle::ToStartupSvg({at_start});
    json.close();
    svg.close();
    if (!json || !svg) {
      std::cerr << "demo: could not write " << trace << " or " << trace
                << ".svg\n";
      client.Stop();
      return 2;
    }
    *human << "trace: " << trace << " (and " << trace << ".svg)\n";
  }
  if (!flags.die.empty()) {
    lifecycle::BaseService* victim = client.Find(flags.die);
    if (victim == nullptr || !crashes.Crash(flags.die)) {
      std::cerr << "demo: --die wants a leaf service (a running worker), got '"
                << flags.die << "'\n";
      client.Stop();
      return 2;
    }
    // Wait for the client's answer: it fails, degrades, or the victim runs
    // again after its restart.
    absl::Time deadline = absl::Now() + flags.timeout;
    auto answered = [&] {
      lifecycle::ServiceSnapshot c = client.Snapshot();
      lifecycle::ServiceSnapshot v = victim->Snapshot();
      return c.state == lifecycle::ServiceState::kFailed || c.degraded ||
             (v.restart_count > 0 &&
              v.state == lifecycle::ServiceState::kStarted);
    };
    while (true) {
      lifecycle::Signal changes[] = {client.NextChange(), victim->NextChange()};
      if (answered()) break;
      if (!lifecycle::WaitAnyUntil(changes, deadline)) break;
    }
    lifecycle::ServiceSnapshot after = client.Snapshot();
    Show(client, flags.json, "after_death",
         absl::StrCat("after ", flags.die, " died"));
    if (after.state == lifecycle::ServiceState::kFailed) {
      *human << "== client FAILED\n"
             << lifecycle::StatusText(after.status) << "\n";
      if (auto path = lifecycle::FailedServicePath(after.status)) {
        *human << "failed service: " << *path << "\n";
      }
      client.Stop();
      return 1;
    }
  }
  absl::Time stop_began = absl::Now();
  client.Stop();
  absl::Duration stop_took = absl::Now() - stop_began;
  Show(client, flags.json, "stopped",
       absl::StrCat("stopped in ", absl::FormatDuration(absl::Trunc(
                                       stop_took, absl::Microseconds(100)))),
       stop_took);
  return 0;
}
