#include "lifecycle/testing/servers/etcd.h"

#include <algorithm>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace lifecycle_testing {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";

std::string Base64(std::string_view text) {
  return absl::Base64Escape(std::string(text));
}

std::string Unbase64(const std::string& text) {
  std::string out;
  absl::Base64Unescape(text, &out);
  return out;
}

// The end of the key range of every key that starts with `prefix` (etcd's
// "range_end": the prefix with its last byte increased).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      ++prefix.back();
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

}  // namespace

EtcdServer::EtcdServer(EtcdOptions options)
    : ServerModule(options.name, kEtcd, "etcd-server"),
      options_(std::move(options)) {}

EtcdServer::~EtcdServer() { StopForDestruction(); }

absl::StatusOr<EtcdServer*> EtcdServer::Shared(const EtcdOptions& options) {
  std::string key = absl::StrCat("etcd|", options.name);
  for (const auto& [k, v] : options.seed) absl::StrAppend(&key, "|", k, "=", v);
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      key, [&] { return std::make_unique<EtcdServer>(options); },
      options.start_timeout);
  if (!server.ok()) return server.status();
  return static_cast<EtcdServer*>(*server);
}

absl::Status EtcdServer::Prepare(const std::string&) {
  absl::StatusOr<int> client = servers_internal::PickFreeTcpPort();
  if (!client.ok()) return client.status();
  absl::StatusOr<int> peer = servers_internal::PickFreeTcpPort();
  if (!peer.ok()) return peer.status();
  absl::MutexLock lock(&mu_);
  client_port_ = *client;
  peer_port_ = *peer;
  return absl::OkStatus();
}

lifecycle::ProcessOptions EtcdServer::Program(const std::string& dir) {
  int client, peer;
  {
    absl::MutexLock lock(&mu_);
    client = client_port_;
    peer = peer_port_;
  }
  const std::string client_url = absl::StrCat("http://127.0.0.1:", client);
  const std::string peer_url = absl::StrCat("http://127.0.0.1:", peer);
  lifecycle::ProcessOptions o;
  o.executable = kEtcd;
  o.args = {"--name",
            options_.name,
            "--data-dir",
            dir + "/data",
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            absl::StrCat(options_.name, "=", peer_url),
            "--unsafe-no-fsync"};
  o.ready_when = {lifecycle::Readiness::Notification(),
                  lifecycle::Readiness::TcpPort(client)};
  o.start_timeout = options_.start_timeout;
  return o;
}

absl::Status EtcdServer::Ready() {
  absl::StatusOr<servers_internal::HttpReply> reply =
      servers_internal::HttpRequest(port(), "GET", "/version");
  if (!reply.ok()) return reply.status();
  nlohmann::json version = nlohmann::json::parse(reply->body, nullptr,
                                                 /*allow_exceptions=*/false);
  if (version.is_object() && version.contains("etcdserver")) {
    absl::MutexLock lock(&mu_);
    version_ = version["etcdserver"].get<std::string>();
  }
  SetDetail("version", this->version());
  SetDetail("uri", endpoint());
  return DeleteAll();
}

absl::StatusOr<std::string> EtcdServer::Call(std::string_view path,
                                             const std::string& body) const {
  absl::StatusOr<servers_internal::HttpReply> reply =
      servers_internal::HttpRequest(port(), "POST", path, body);
  if (!reply.ok()) {
    return absl::Status(reply.status().code(),
                        absl::StrCat(Path(), ": ", reply.status().message()));
  }
  if (reply->status != 200) {
    return absl::InternalError(absl::StrCat(Path(), ": ", std::string(path),
                                            " answered ", reply->status, ": ",
                                            reply->body));
  }
  return reply->body;
}

absl::Status EtcdServer::Put(std::string_view key,
                             std::string_view value) const {
  nlohmann::json body = {{"key", Base64(key)}, {"value", Base64(value)}};
  return Call("/v3/kv/put", body.dump()).status();
}

absl::StatusOr<std::string> EtcdServer::Get(std::string_view key) const {
  nlohmann::json body = {{"key", Base64(key)}};
  absl::StatusOr<std::string> answer = Call("/v3/kv/range", body.dump());
  if (!answer.ok()) return answer.status();
  nlohmann::json range = nlohmann::json::parse(*answer, nullptr, false);
  if (!range.is_object() || !range.contains("kvs") || range["kvs"].empty()) {
    return absl::NotFoundError(
        absl::StrCat("no key '", std::string(key), "' in ", Path()));
  }
  return Unbase64(range["kvs"][0].value("value", ""));
}

absl::StatusOr<std::vector<std::string>> EtcdServer::Keys(
    std::string_view prefix) const {
  nlohmann::json body = {{"key", Base64(prefix.empty() ? std::string(1, '\0')
                                                       : std::string(prefix))},
                         {"range_end", Base64(PrefixEnd(std::string(prefix)))},
                         {"keys_only", true}};
  absl::StatusOr<std::string> answer = Call("/v3/kv/range", body.dump());
  if (!answer.ok()) return answer.status();
  nlohmann::json range = nlohmann::json::parse(*answer, nullptr, false);
  std::vector<std::string> keys;
  if (range.is_object() && range.contains("kvs")) {
    for (const nlohmann::json& kv : range["kvs"]) {
      keys.push_back(Unbase64(kv.value("key", "")));
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::Status EtcdServer::DeleteAll() const {
  nlohmann::json body = {{"key", Base64(std::string(1, '\0'))},
                         {"range_end", Base64(std::string(1, '\0'))}};
  if (absl::Status s = Call("/v3/kv/deleterange", body.dump()).status();
      !s.ok()) {
    return s;
  }
  for (const auto& [key, value] : options_.seed) {
    if (absl::Status s = Put(key, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string EtcdServer::endpoint() const {
  int p = port();
  return p == 0 ? "" : absl::StrCat("http://127.0.0.1:", p);
}

int EtcdServer::port() const {
  absl::MutexLock lock(&mu_);
  return client_port_;
}

std::string EtcdServer::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

void EtcdTest::SetUp() {
  absl::StatusOr<EtcdServer*> server = EtcdServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  etcd_ = *server;
  ASSERT_TRUE(etcd_->DeleteAll().ok());
}

void EtcdTest::TearDown() {
  if (etcd_ != nullptr) {
    EXPECT_TRUE(etcd_->DeleteAll().ok());
  }
}

}  // namespace lifecycle_testing
