#include "lifecycle/testing/servers/nginx.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lifecycle_testing {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";

}  // namespace

NginxServer::NginxServer(NginxOptions options)
    : ServerModule(options.name, kNginx, "nginx-core"),
      options_(std::move(options)) {}

NginxServer::~NginxServer() { StopForDestruction(); }

absl::StatusOr<NginxServer*> NginxServer::Shared(const NginxOptions& options) {
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      absl::StrCat("nginx|", options.name, "|", options.server_config),
      [&] { return std::make_unique<NginxServer>(options); },
      options.start_timeout);
  if (!server.ok()) return server.status();
  return static_cast<NginxServer*>(*server);
}

absl::Status NginxServer::Prepare(const std::string& dir) {
  absl::StatusOr<int> port = servers_internal::PickFreeTcpPort();
  if (!port.ok()) return port.status();
  {
    absl::MutexLock lock(&mu_);
    port_ = *port;
  }
  if (mkdir((dir + "/html").c_str(), 0755) != 0 ||
      mkdir((dir + "/tmp").c_str(), 0755) != 0) {
    return absl::FailedPreconditionError("cannot make folders in " + dir);
  }
  // Workers run as this process's user: as root, nginx would otherwise hand
  // them to "nobody", who cannot read the folder.
  std::ofstream conf(dir + "/nginx.conf");
  conf << "daemon off;\n"
       << (geteuid() == 0 ? "user root;\n" : "") << "worker_processes 1;\n"
       << "pid " << dir << "/nginx.pid;\n"
       << "error_log stderr notice;\n"
       << "events { worker_connections 256; }\n"
       << "http {\n"
       << "  access_log off;\n"
       << "  include /etc/nginx/mime.types;\n"
       << "  client_body_temp_path " << dir << "/tmp/body;\n"
       << "  proxy_temp_path " << dir << "/tmp/proxy;\n"
       << "  fastcgi_temp_path " << dir << "/tmp/fastcgi;\n"
       << "  uwsgi_temp_path " << dir << "/tmp/uwsgi;\n"
       << "  scgi_temp_path " << dir << "/tmp/scgi;\n"
       << "  server {\n"
       << "    listen 127.0.0.1:" << *port << ";\n"
       << "    root " << dir << "/html;\n"
       << "    " << options_.server_config << "\n"
       << "  }\n"
       << "}\n";
  conf.close();
  if (!conf) return absl::FailedPreconditionError("cannot write " + dir);
  // nginx's own check of the configuration: its message, at once.
  std::string output;
  if (absl::Status s =
          servers_internal::RunToEnd({kNginx, "-t", "-q", "-p", dir, "-c",
                                      dir + "/nginx.conf", "-e", "stderr"},
                                     "", absl::Seconds(30), &output);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nginx refuses its configuration (NginxOptions::server_config?): ",
        output));
  }
  return absl::OkStatus();
}

lifecycle::ProcessOptions NginxServer::Program(const std::string& dir) {
  lifecycle::ProcessOptions o;
  o.executable = kNginx;
  o.args = {"-p", dir, "-c", dir + "/nginx.conf", "-e", "stderr"};
  o.ready_when = {lifecycle::Readiness::TcpPort(port())};
  o.start_timeout = options_.start_timeout;
  // A fast shutdown (SIGTERM; SIGQUIT would wait for open connections).
  return o;
}

absl::Status NginxServer::Ready() {
  SetDetail("uri", endpoint());
  std::string output;
  (void)servers_internal::RunToEnd({kNginx, "-v"}, "", absl::Seconds(30),
                                   &output);
  // "nginx version: nginx/1.22.1"
  size_t slash = output.find('/');
  if (slash != std::string::npos)
    SetDetail("version", output.substr(slash + 1));
  return absl::OkStatus();
}

absl::StatusOr<servers_internal::HttpReply> NginxServer::Get(
    std::string_view path) const {
  absl::StatusOr<servers_internal::HttpReply> reply =
      servers_internal::HttpRequest(port(), "GET", path);
  if (!reply.ok()) {
    return absl::Status(reply.status().code(),
                        absl::StrCat(Path(), ": ", reply.status().message()));
  }
  return reply;
}

absl::Status NginxServer::WriteFile(std::string_view name,
                                    std::string_view contents) const {
  const std::string folder = root();
  if (folder.empty())
    return absl::FailedPreconditionError(Path() + " never ran");
  if (name.empty() || name[0] == '/' ||
      absl::StrContains(std::string(name), "..")) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteFile: '", std::string(name),
                     "' must be a relative path inside the served folder"));
  }
  std::string path = folder;
  std::vector<std::string> parts = absl::StrSplit(std::string(name), '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path += "/" + parts[i];
    mkdir(path.c_str(), 0755);
  }
  path = folder + "/" + std::string(name);
  std::ofstream out(path, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::FailedPreconditionError("cannot write " + path);
  return absl::OkStatus();
}

absl::Status NginxServer::ClearFiles() const {
  const std::string folder = root();
  if (folder.empty()) return absl::OkStatus();
  servers_internal::RemoveTree(folder);
  if (mkdir(folder.c_str(), 0755) != 0) {
    return absl::FailedPreconditionError("cannot make " + folder);
  }
  return absl::OkStatus();
}

std::string NginxServer::root() const {
  std::string folder = dir();
  return folder.empty() ? "" : folder + "/html";
}

std::string NginxServer::endpoint() const {
  int p = port();
  return p == 0 ? "" : absl::StrCat("http://127.0.0.1:", p);
}

int NginxServer::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

void NginxTest::SetUp() {
  absl::StatusOr<NginxServer*> server = NginxServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  nginx_ = *server;
  ASSERT_TRUE(nginx_->ClearFiles().ok());
}

void NginxTest::TearDown() {
  if (nginx_ != nullptr) {
    EXPECT_TRUE(nginx_->ClearFiles().ok());
  }
}

}  // namespace lifecycle_testing
