#include "client/channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "client/input_file.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace compute::client {
namespace {

// A PEM file is small (a CA bundle of every public root is ~200 KiB); the
// limit keeps `--ca /dev/zero` from being read to the end of memory.
constexpr size_t kMaxPemBytes = 1 << 20;

// Never asks for a passphrase (OpenSSL's default prompts on the terminal):
// gRPC cannot use an encrypted key anyway.
int NoPassphrase(char*, int, int, void*) { return 0; }

// Whether `pem` holds a private key (kind kKey), or one certificate or more
// and no malformed one. gRPC's own way to report a bad PEM is eight log
// lines and then UNAVAILABLE "empty address list" on the first call.
enum class PemKind { kCertificates, kKey };
bool PemHolds(const std::string& pem, PemKind kind) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  bool ok = false;
  if (kind == PemKind::kKey) {
    EVP_PKEY* key =
        PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr);
    ok = key != nullptr;
    EVP_PKEY_free(key);
  } else {
    int certs = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_free(cert);
      ++certs;
    }
    // The loop ends at the end of the file (no further BEGIN line) or at a
    // block it could not read.
    const unsigned long last = ERR_peek_last_error();
    ok = certs > 0 && ERR_GET_LIB(last) == ERR_LIB_PEM &&
         ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  }
  ERR_clear_error();
  BIO_free(bio);
  return ok;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const ChannelOptions& options) {
  bool tls = options.tls || !options.ca.empty() || !options.cert.empty() ||
             !options.key.empty();
  if (!tls) {
    if (!options.server_name.empty()) {
      return absl::InvalidArgumentError(
          "--server_name applies only with TLS (--tls, --ca, --cert or "
          "--key)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (options.cert.empty() != options.key.empty()) {
    return absl::InvalidArgumentError(
        "--cert and --key must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  struct Pem {
    const char* flag;
    const std::string* path;
    std::string* pem;
    PemKind kind;
    const char* want;
  };
  for (const Pem& f : {Pem{"--ca", &options.ca, &ssl.pem_root_certs,
                           PemKind::kCertificates, "PEM certificates"},
                       Pem{"--cert", &options.cert, &ssl.pem_cert_chain,
                           PemKind::kCertificates, "a PEM certificate"},
                       Pem{"--key", &options.key, &ssl.pem_private_key,
                           PemKind::kKey, "an unencrypted PEM private key"}}) {
    if (f.path->empty()) continue;
    absl::StatusOr<std::string> contents =
        ReadInputFile(*f.path, kMaxPemBytes + 1);
    if (!contents.ok()) return contents.status();
    // An empty --ca would leave gRPC to trust the system's roots instead.
    if (contents->empty() || contents->size() > kMaxPemBytes ||
        !PemHolds(*contents, f.kind)) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.flag, " ", *f.path, ": ",
                       contents->empty()                 ? "empty file, want "
                       : contents->size() > kMaxPemBytes ? "over 1 MiB, want "
                                                         : "not ",
                       f.want));
    }
    *f.pem = *std::move(contents);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

std::string ServiceConfigJson(const ChannelOptions& options) {
  std::string config = absl::StrCat(R"({"loadBalancingConfig":[{")",
                                    options.lb_policy, R"(":{}}])");
  if (options.retry) {
    // Throttled (gRFC A6): a failed attempt costs a token, an OK call earns
    // 0.2, and retries stop while half of the 10 are gone. Without it, every
    // call to a replica that refuses all of them was sent 5 times (measured:
    // 300 calls, 1,382 attempts); with it, a fleet refusing everything sees
    // a handful of retries, and retries of occasional refusals go on.
    absl::StrAppend(&config,
                    R"(,"retryThrottling":{"maxTokens":10,"tokenRatio":0.2})");
    absl::StrAppend(&config, R"(,"methodConfig":[{)",
                    R"("name":[{"service":"compute.v1.Compute"}],)",
                    R"("retryPolicy":{"maxAttempts":5,)",
                    R"("initialBackoff":"0.05s","maxBackoff":"2s",)",
                    R"("backoffMultiplier":2,"retryableStatusCodes":)",
                    R"(["RESOURCE_EXHAUSTED","UNAVAILABLE"]}}])");
  }
  absl::StrAppend(&config, "}");
  return config;
}

absl::Status CheckCredentials(const ChannelOptions& options) {
  return Credentials(options).status();
}

absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> CreateChannels(
    const ChannelOptions& options, int count) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("--target must not be empty");
  }
  if (options.lb_policy != "round_robin" && options.lb_policy != "pick_first") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lb must be round_robin or pick_first (got ", options.lb_policy,
        options.lb_policy == "least_loaded" ? ": least_loaded is for bench"
                                            : "",
        ")"));
  }
  if (count < 1) {
    return absl::InvalidArgumentError("at least one channel is needed");
  }
  auto credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();

  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(ServiceConfigJson(options));
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // gRPC keeps a call's messages for its retries up to 256 KiB by default,
  // and a larger call is committed to its first attempt: a blur of 1 MB was
  // never retried. As large as a message may be.
  if (options.retry) {
    args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, options.max_message_bytes);
  }
  if (!options.server_name.empty()) {
    args.SetSslTargetNameOverride(options.server_name);
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < count; ++i) {
    channels.push_back(
        grpc::CreateCustomChannel(options.target, *credentials, args));
  }
  return channels;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const ChannelOptions& options) {
  auto channels = CreateChannels(options, 1);
  if (!channels.ok()) return channels.status();
  return channels->front();
}

}  // namespace compute::client
