#!/usr/bin/env python3
"""Checks that the code examples of the headers and the README are code that builds.

Every example listed below must appear, line for line (whitespace aside), in the test
that compiles and runs them: testing/header_examples_test.cc (the README's test example
is examples/client_test.cc's ReadmeTest, its dependency lines the client's constructor in
examples/client.cc, the watchdog's main testing/hang_watchdog_main.cc). A line that elides with "..." is skipped.
Prints one "ok"/"FAIL" line per example and "N passed, N failed"; exits 1 on a
mismatch. `--self-test` also checks that a changed line is caught.

The README's inline calls with arguments of their own (`WaitOrTimeout(signal,
absl::Minutes(1))`) must appear in a compiled file too.

The README's whole files marked "<!-- consumer-check: FILE -->" are compiled and
run by tools/consumer_check.sh instead. With `--demo=BINARY`, the README's demo
samples ("<!-- demo-output: ARGS -->") are checked against runs of the demo,
times aside (and with `--self-test`, that a stale sample is caught).
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPILED = ["testing/header_examples_test.cc", "examples/client_test.cc",
            "testing/hang_watchdog_main.cc", "examples/client.cc",
            "lifecycle/real_servers_test.cc", "examples/redis_store_test.cc",
            "testing/servers/postgres_test.cc", "testing/servers/redis_test.cc",
            "testing/servers/memcached_test.cc", "testing/servers/mariadb_test.cc",
            "testing/servers/etcd_test.cc", "testing/servers/nginx_test.cc",
            "lifecycle/container_service_test.cc"]

# (file, the first line of the example, as the file shows it after "//   ")
HEADER_EXAMPLES = [
    ("lifecycle/base_service.h", "class Ticker : public lifecycle::BaseService {"),
    ("lifecycle/clock.h", "absl::Status Run(const lifecycle::Context& ctx,"),
    ("lifecycle/func_service.h", 'lifecycle::FuncService heartbeat("heartbeat",'),
    ("lifecycle/composite_service.h", "class Client : public lifecycle::CompositeService {"),
    ("lifecycle/composite_service.h", 'lifecycle::CompositeService app("app");'),
    ("lifecycle/context.h", "absl::Time deadline = lifecycle::Now() + absl::Seconds(5);"),
    ("lifecycle/process_service.h", "lifecycle::ProcessOptions redis;"),
    ("lifecycle/container_service.h", "lifecycle::ContainerOptions redis;"),
    ("examples/redis_store.h", "examples::RedisStore store(lifecycle_testing::ShortTempDir());"),
    ("lifecycle/service.h", "std::vector<lifecycle::Service*> services = {&notifier, &producer};"),
    ("lifecycle/start_graph.h", "lifecycle::Dependency deps[] = {{&producer, &elector}};"),
    ("lifecycle/signal.h", "lifecycle::Signal ready;"),
    ("lifecycle/test_signal.h", "// production code"),
    ("lifecycle/thread.h", 'lifecycle::Thread poller(time.context(), "poller", [] {'),
    ("lifecycle/thread_stack.h", "std::string stack = lifecycle::ThreadStack(service.WorkerThreadId());"),
    ("lifecycle/test_services.h", 'TestService db("db");'),
    ("testing/conformance.h",
     "using lifecycle_testing::ServiceConformanceTest;  // the macro wants a"),
    ("testing/fake_service.h", 'FakeService db("db");'),
    ("testing/hang_watchdog.h", "int main(int argc, char** argv) {"),
    ("testing/harness.h", "TEST(ClientTest, Serves) {"),
    ("testing/leftover_threads.h", "TEST(ClientTest, StopsEverything) {"),
    ("testing/leftover_threads.h", "::testing::UnitTest::GetInstance()->listeners().Append("),
    ("testing/matchers.h", "EXPECT_THAT(client, IsStarted());"),
    ("testing/mock_service.h", "lifecycle_testing::MockService db;"),
    ("testing/stress.h", "EXPECT_TRUE(lifecycle_testing::StressStartStop(client));"),
    ("testing/virtual_time.h", "lifecycle_testing::VirtualTime time;"),
    ("testing/virtual_time.h", "ASSERT_TRUE(time.Run([&] {"),
    ("testing/servers/postgres.h", "class OrdersTest : public lifecycle_testing::PostgresTest {};"),
    ("testing/servers/redis.h", "class SessionsTest : public lifecycle_testing::RedisTest {};"),
    ("testing/servers/memcached.h", "class CacheTest : public lifecycle_testing::MemcachedTest {};"),
    ("testing/servers/mariadb.h", "class InvoicesTest : public lifecycle_testing::MariadbTest {};"),
    ("testing/servers/etcd.h", "class ConfigTest : public lifecycle_testing::EtcdTest {};"),
    ("testing/servers/nginx.h", "class DownloadsTest : public lifecycle_testing::NginxTest {};"),
]


def normalize(line):
    return re.sub(r"\s+", " ", line).strip()


def header_example(text, first):
    """The example's lines: from `first` while lines are "//" + 3 or more spaces,
    or a bare "//" followed by more of them."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("//") and normalize(line[2:]) == normalize(first):
            block = []
            while i < len(lines):
                line = lines[i]
                if line.startswith("//   ") or (line.startswith("//  ") and block):
                    block.append(line[2:])
                elif line == "//" and i + 1 < len(lines) and lines[i + 1].startswith("//   "):
                    block.append("")
                else:
                    break
                i += 1
            return block
    return None


def readme_examples(text):
    """The README's C++ blocks, as (line number, lines), but for the whole files
    marked "<!-- consumer-check: FILE -->", which tools/consumer_check.sh compiles
    and runs in a workspace of their own."""
    out = []
    for m in re.finditer(r"(<!-- consumer-check: [^>]* -->\n)?```cpp\n(.*?)```", text, re.S):
        if m.group(1):
            continue
        out.append((text[: m.start()].count("\n") + 1, m.group(2).split("\n")))
    return out


TIME = re.compile(r"\b\d+(\.\d+)?(ns|us|µs|ms|s|m|h)\b")


def demo_sections(text):
    """{header: [lines]} of a demo output, each section from its "== " line,
    times made "T" and runs of spaces one; in the sections whose content varies
    from run to run (the snapshot while starting, the critical path), only each
    line's first word."""
    sections, header = {}, None
    for line in text.split("\n"):
        line = re.sub(r"\s+", " ", TIME.sub("T", line)).strip()
        if line.startswith("== "):
            header = line
            sections[header] = []
        elif header and line:
            if header in ("== starting", "== critical path"):
                line = line.split(" ")[0]
            sections[header].append(line)
    return sections


def check_demo(readme, demo):
    """Every README block marked "<!-- demo-output: ARGS -->" against a run of
    the demo with ARGS: each of its sections must be in the output, line for line,
    times aside."""
    results = []
    for m in re.finditer(r"<!-- demo-output:(.*?)-->\n```\n(.*?)```", readme, re.S):
        args = m.group(1).split()
        where = f"README.md:{readme[: m.start()].count(chr(10)) + 1}: demo {' '.join(args)}"
        run = subprocess.run([demo] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=120)
        got = demo_sections(run.stdout)
        for header, lines in demo_sections(m.group(2)).items():
            if got.get(header) != lines:
                results.append((False, f"{where}: the sample's '{header}' is stale; "
                                f"the demo prints {got.get(header)}, the README {lines}"))
                break
        else:
            results.append((True, f"{where}: the sample matches a run"))
    if not results:
        results.append((False, "README.md has no <!-- demo-output: --> sample"))
    return results


def readme_inline_calls(text):
    """The README's inline C++ calls with arguments of their own (a duration, a
    number, a string), such as `WaitOrTimeout(signal, absl::Minutes(1))`, as
    (line number, call): each must be a call that compiles, so each must appear
    in a compiled file. Fenced blocks are checked as blocks."""
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out = []
    for m in re.finditer(r"`([A-Za-z_][\w:]*\(([^`]*)\));?`", prose):
        if re.search(r'absl::|\d|"', m.group(2)):
            out.append((prose[: m.start()].count("\n") + 1, m.group(1)))
    return out


def missing(block, compiled):
    return [l for l in block if normalize(l) and "..." not in l
            and normalize(l) not in compiled]


def run(read):
    compiled = {normalize(l) for f in COMPILED for l in read(f).split("\n")}
    results = []
    for path, first in HEADER_EXAMPLES:
        block = header_example(read(path), first)
        if block is None:
            results.append((False, f"{path}: no example starting '{first}'"))
            continue
        gone = missing(block, compiled)
        results.append((not gone, f"{path}: example '{first}'" +
                        (f" has lines not compiled: {gone}" if gone else "")))
    for line, block in readme_examples(read("README.md")):
        gone = missing(block, compiled)
        results.append((not gone, f"README.md:{line}: C++ example" +
                        (f" has lines not compiled: {gone}" if gone else "")))
    # Whitespace aside, as a call may be wrapped across lines.
    squeezed = re.sub(r"\s+", "", "".join(read(f) for f in COMPILED))
    for line, call in readme_inline_calls(read("README.md")):
        found = re.sub(r"\s+", "", call) in squeezed
        results.append((found, f"README.md:{line}: inline call `{call}`" +
                        ("" if found else " is not in any compiled file")))
    return results


def main(argv):
    def read(path):
        return (ROOT / path).read_text()
    results = run(read)
    demo = next((a.split("=", 1)[1] for a in argv if a.startswith("--demo=")), None)
    if demo:
        results += check_demo(read("README.md"), demo)
        if "--self-test" in argv:
            stale = read("README.md").replace("client/producer/queue1      started",
                                              "client/producer/queue9      started", 1)
            caught = not all(ok for ok, _ in check_demo(stale, demo))
            results.append((caught, "self-test: a stale demo sample is reported"))
    if "--self-test" in argv:
        def changed(path):
            text = read(path)
            if path == "lifecycle/signal.h":
                text = text.replace("//   worker.join();", "//   worker.detach();")
            return text

        def inline_changed(path):
            text = read(path)
            if path == "README.md":
                text = text.replace("`WaitOrTimeout(signal, absl::Minutes(1))`",
                                    "`WaitOrTimeout(signal, absl::Minutes(2))`")
            return text
        caught = not all(ok for ok, _ in run(inline_changed))
        results.append((caught, "self-test: an inline call that is not compiled is reported"))
        caught = not all(ok for ok, _ in run(changed))
        results.append((caught, "self-test: a changed example line is reported"))
    for ok, message in results:
        print(("ok " if ok else "FAIL ") + message)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
