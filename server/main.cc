// compute-server: flags/env -> config, wiring, signals.
//
// Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread (the
// mask is set first in main, before any thread of ours starts) and taken by
// sigwait on a signal thread started at start-up, so the drain runs as
// ordinary code, not in a signal handler. SIGINT or SIGHUP ignored when the
// process starts (a shell's background job, nohup) stays ignored. The first
// begins the drain; a stop signal within kSameStopRequestWindow of it is the
// same request again; a later one ends the drain at once
// (ComputeServer::EndDrainNow), and the process then exits 128 + that signal's
// number (143 for SIGTERM, 130 for SIGINT, 129 for SIGHUP) instead of 0.
//
// The drain is bounded (README, Shutdown): the process exits at most
// kDrainOverrun after --drain_timeout (and the log's flush), and
// kEndedDrainOverrun after a second signal has stopped the pool, whatever
// gRPC still waits for. gRPC 1.51 closes a
// connection only once its pending write ends, and a client that stopped
// reading (its TCP window shut) holds that write until the kernel gives
// up on it: --keepalive_timeout later (gRPC's TCP_USER_TIMEOUT), or never
// with keepalive off. Its server shutdown waited that long (about 20 s
// with the defaults, whatever --drain_timeout, a second signal included).
// Past the bound every accepted call has had its answer or been
// cancelled; the process logs why and exits as a finished drain would.
//
// The start-up line ("starting") holds every flag's effective value
// (StartupFields, by hand: ServerE2eTest.TheStartupLineHasEveryFlag checks
// it against --help).
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/base/fd_limit.h"
#include "server/base/openssl_exit.h"
#include "server/config.h"
#include "server/log.h"
#include "server/malloc_setup.h"
#include "server/memory_returner.h"
#include "server/metrics/metrics.h"
#include "server/pool/sync.h"
#include "server/service/server.h"

namespace {

using compute::Put;

// A stop signal that repeats the first within this long is the same stop
// request (see the signal thread), not a second one that ends the drain.
constexpr absl::Duration kSameStopRequestWindow = absl::Milliseconds(250);
// How long the drain may run past --drain_timeout (the wait for quiet, at
// most 100 ms; gRPC's grace, 1 s; its queues' end, at most 10 s; the
// metrics endpoint's stop, milliseconds, up to 2.5 s behind idle half-sent
// requests), and past a second signal, before the process exits without it.
constexpr absl::Duration kDrainOverrun = absl::Milliseconds(11500);
constexpr absl::Duration kEndedDrainOverrun = absl::Seconds(2);

// The next stop signal in `signals`, or 0 once `deadline` (MonotonicNow
// time) has passed without one.
int WaitForStopSignal(const sigset_t& signals, absl::Time deadline) {
  for (;;) {
    if (deadline == absl::InfiniteFuture()) {
      int sig = 0;
      sigwait(&signals, &sig);
      return sig;
    }
    const absl::Duration left = deadline - compute::MonotonicNow();
    if (left <= absl::ZeroDuration()) return 0;
    const timespec timeout = absl::ToTimespec(left);
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;  // EINTR: wait again
  }
}

// Past the drain's bound: says what was still waited for, and exits with
// the code a finished drain would have (128 + the second signal, or 0).
[[noreturn]] void ExitPastTheDrainsBound(absl::Time first_at, int second) {
  google::protobuf::Struct f;
  Put(f, "drain_seconds",
      absl::ToDoubleSeconds(compute::MonotonicNow() - first_at));
  Put(f, "detail",
      "gRPC's shutdown (or, rarely, the metrics endpoint's) still waits for "
      "a connection to close (a client that stopped reading holds its last "
      "write); every accepted call has been answered or cancelled");
  if (second != 0) Put(f, "ended_by", std::string(strsignal(second)));
  compute::LogJson("warning", "drain past its bound: exiting without gRPC", f);
  compute::FlushLogs(absl::Seconds(1));
  std::_Exit(second != 0 ? 128 + second : 0);
}

google::protobuf::Struct StartupFields(const compute::Config& c) {
  const auto& s = c.server;
  google::protobuf::Struct f;
  Put(f, "address", s.address);
  Put(f, "port", static_cast<double>(s.port));
  Put(f, "workers", static_cast<double>(s.pool.max_workers));
  Put(f, "min_workers", static_cast<double>(s.pool.min_workers));
  Put(f, "io_threads", static_cast<double>(s.io_threads));
  Put(f, "load_report_interval", absl::FormatDuration(s.load_report_interval));
  Put(f, "idle_timeout", absl::FormatDuration(s.pool.idle_timeout));
  Put(f, "queue_capacity", static_cast<double>(s.pool.queue_capacity));
  Put(f, "max_inflight_bytes", static_cast<double>(c.max_inflight_bytes));
  Put(f, "pool_inflight_bytes", static_cast<double>(s.pool.max_inflight_bytes));
  Put(f, "transport_quota_bytes", static_cast<double>(s.transport_quota_bytes));
  Put(f, "max_inflight_bytes_reason", c.max_inflight_bytes_reason);
  Put(f, "memory_limit", c.memory.explanation);
  Put(f, "target_queue_wait", absl::FormatDuration(s.pool.target_queue_wait));
  Put(f, "inline_max_cost", absl::FormatDuration(s.pool.inline_max_cost));
  Put(f, "worker_spin", s.pool.spin_before_park);
  Put(f, "trust_tenant_header", s.trust_tenant_header);
  Put(f, "tenant_ipv6_prefix", static_cast<double>(s.tenant_ipv6_prefix));
  Put(f, "tenant_weights", static_cast<double>(s.tenant_weights.size()));
  Put(f, "tenant_metrics", static_cast<double>(c.tenant_metrics));
  Put(f, "admission", s.admission);
  Put(f, "drain_timeout", absl::FormatDuration(c.drain_timeout));
  Put(f, "max_connection_age", absl::FormatDuration(s.max_connection_age));
  Put(f, "max_connection_age_grace",
      absl::FormatDuration(s.max_connection_age_grace));
  Put(f, "max_connection_idle", absl::FormatDuration(s.max_connection_idle));
  Put(f, "keepalive_time", absl::FormatDuration(s.keepalive_time));
  Put(f, "keepalive_timeout", absl::FormatDuration(s.keepalive_timeout));
  Put(f, "max_message_bytes", static_cast<double>(s.max_message_bytes));
  Put(f, "max_concurrent_streams",
      static_cast<double>(s.max_concurrent_streams));
  Put(f, "tls", !s.tls_cert.empty());
  Put(f, "mtls", !s.tls_client_ca.empty());
  Put(f, "metrics_address", c.metrics_address);
  Put(f, "metrics_port", static_cast<double>(c.metrics_port));
  Put(f, "cpu_count", static_cast<double>(c.cpu.cpus));
  Put(f, "cpu_count_reason", c.cpu.explanation);
  Put(f, "log_level", std::string(compute::LogLevelName(c.log_level)));
  return f;
}

// Logs why start-up failed; returns the exit code. A port another process
// listens on is a bad value of --port or --metrics_port, and an address not
// of this host or a TLS file that cannot be used (InvalidArgument, naming
// the flag) a bad value of its flag: exit 2, like any other bad flag;
// anything else is 1.
int CannotStart(const absl::Status& status) {
  google::protobuf::Struct f;
  Put(f, "error", std::string(status.message()));
  compute::LogJson("error", "cannot start", f);
  return status.code() == absl::StatusCode::kAlreadyExists ||
                 status.code() == absl::StatusCode::kInvalidArgument
             ? 2
             : 1;
}

// The returner's rules for this server: freed pages past an eighth of the
// memory budget (16 MiB at least; 64 MiB with no budget) go back at once,
// the rest after a second of idleness (memory_returner.h). What it keeps
// comes on top of the budget, so it scales with it: under a 256 MiB cgroup
// (a 150 MiB budget) a fixed 64 MiB took the burst's peak to 92-96% of the
// limit (cgroup v1 max_usage, 2 runs), 19 MiB to 78-82% (2 runs).
compute::MemoryReturner::Options ReturnerOptions(const compute::Config& c) {
  compute::MemoryReturner::Options options;
  const int64_t budget = c.max_inflight_bytes;
  if (budget > 0) {
    options.cap_bytes = std::max(int64_t{16} << 20, budget / 8);
  }
  return options;
}

std::string DescribeReturner(const compute::MemoryReturner::Options& o,
                             bool allocator_can_say) {
  if (!allocator_can_say) {
    return "by the allocator alone (it cannot say what it keeps)";
  }
  return absl::StrCat("freed pages past ", o.cap_bytes >> 20,
                      " MiB at once, the rest after ",
                      absl::FormatDuration(o.quiet), " idle");
}

}  // namespace

int main(int argc, char** argv) {
  // First: nothing of ours runs before the mask is set (every thread we
  // start inherits it; jemalloc's background thread, started at the first
  // allocation before main, blocks every signal itself). As PID 1 in a
  // container the kernel drops a signal that is neither blocked nor
  // handled, so one that came while the allocations, flags and logging were
  // set up was lost, and the server served until it was killed. Loading the
  // libraries before main leaves such a window all the same (~15 ms here,
  // most of start-up): in the image tini is PID 1 (Dockerfile).
  //
  // Blocked first, for sigwait: a signal that comes from here on stays
  // pending for it (installed the other way round, one arriving in between
  // would run the empty handler and be gone). Then a handler, though the
  // signals stay blocked: as PID 1 in a container, a signal left at its
  // default action would be dropped.
  //
  // SIGINT that the parent set to be ignored stays ignored (the shell does
  // so for a script's background jobs, `server &`): by convention a
  // program started so leaves interrupts to whoever started it (before, a
  // Ctrl-C meant for the script stopped the server behind it too).
  //
  // SIGHUP (its terminal hung up, or a deploy hook's "reload": nothing is
  // reloaded, the TLS files are read at start-up) drains too: at its
  // default action the process ended at once, every call in flight lost
  // (a TLS review's finding, 2026-12-06). Ignored on entry (nohup), it
  // stays ignored, as SIGINT does.
  auto ignored_on_entry = [](int sig) {
    struct sigaction on_entry {};
    sigaction(sig, nullptr, &on_entry);
    return on_entry.sa_handler == SIG_IGN;
  };
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  for (int sig : {SIGINT, SIGHUP}) {
    if (!ignored_on_entry(sig)) sigaddset(&stop_signals, sig);
  }
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (sigismember(&stop_signals, sig) == 1) signal(sig, [](int) {});
  }
  // A write to a pipe with no reader (stderr, once a log collector has gone
  // away) fails with EPIPE instead of ending the process and every call in
  // flight; the line is lost, the server serves on. gRPC's own sockets
  // never raise it (MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);

  // Before any thread allocates.
  const std::string large_allocations = compute::SetUpLargeAllocations();
  compute::base::KeepOpenSslThroughExit();
  // Debian builds abseil with its Mutex deadlock detection on, and gRPC
  // takes absl::Mutex on every call: the lock-order graph it keeps cost
  // ~10% of the server's CPU under load (perf). Our own locks are checked
  // by clang's -Wthread-safety and TSan instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto config = compute::ParseConfig(argc, argv, compute::GetEnv);
  if (!config.ok()) {
    std::fprintf(stderr, "compute-server: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (config->help) {
    std::fputs(compute::Usage().c_str(), stdout);
    return 0;
  }
  // Before anything starts gRPC, so that every line of stderr is JSON.
  compute::SetLogLevel(config->log_level);
  compute::RouteLibraryLogs(config->log_level);
  // A log reader that stalls must not stall the server (log_sink.h). What
  // is logged before the process ends is written, if the reader reads,
  // whichever way main returns.
  const absl::Status log_writer = compute::StartLogWriter();
  // 1.5 s: a drain that ends just inside its bound (kDrainOverrun) still
  // exits within 13 s of --drain_timeout, what the deploy files allow.
  std::atexit([] { compute::FlushLogs(absl::Milliseconds(1500)); });
  if (!log_writer.ok()) {
    google::protobuf::Struct f;
    Put(f, "error", std::string(log_writer.message()));
    compute::LogJson("warning", "log lines are written by the threads that log",
                     f);
  }

  google::protobuf::Struct startup = StartupFields(*config);
  Put(startup, "large_allocations", large_allocations);
  // Every connection is a file: see fd_limit.h for why the hard limit.
  Put(startup, "open_files_limit",
      static_cast<double>(compute::RaiseOpenFileLimit()));
  const compute::MemoryReturner::Options returner_options =
      ReturnerOptions(*config);
  // Whether the allocator can say what it keeps (jemalloc): if not, the
  // server leaves returning memory to it.
  const bool allocator_can_say = compute::FreedBytesKept() >= 0;
  Put(startup, "memory_return",
      DescribeReturner(returner_options, allocator_can_say));
  compute::LogJson("info", "starting", startup);
  if (std::string warning = compute::MemoryBudgetWarning(*config);
      !warning.empty()) {
    google::protobuf::Struct f;
    Put(f, "detail", warning);
    compute::LogJson("warning", "memory budget below the message limit", f);
  }
  if (std::string warning = compute::TenantHeaderWarning(*config);
      !warning.empty()) {
    google::protobuf::Struct f;
    Put(f, "detail", warning);
    compute::LogJson("warning", "tenant header not read under mutual TLS", f);
  }
  // Outlives the server: the pool and the service call its observers until
  // they are destroyed.
  compute::metrics::MetricsOptions metrics_options;
  metrics_options.max_tenant_series =
      static_cast<size_t>(config->tenant_metrics);
  metrics_options.transport_quota_bytes = config->server.transport_quota_bytes;
  metrics_options.log_lines_dropped = compute::LogLinesDropped;
  compute::metrics::Metrics metrics(std::move(metrics_options));
  config->server.pool.observer = metrics.pool_observer();
  config->server.observer = metrics.call_observer();
  config->server.tenant_observer = metrics.tenant_observer();
  if (config->metrics_port != 0) {
    // Before the gRPC port opens, so a bad metrics port stops start-up
    // before any call is accepted.
    absl::Status s =
        metrics.Serve(config->metrics_address, config->metrics_port,
                      config->metrics_address_name, config->metrics_port_name);
    if (!s.ok()) return CannotStart(s);
  }
  auto server = compute::service::ComputeServer::Start(config->server);
  if (!server.ok()) return CannotStart(server.status());
  for (const std::string& warning : (*server)->start_warnings()) {
    google::protobuf::Struct f;
    Put(f, "detail", warning);
    compute::LogJson("warning", "TLS handshakes will fail", f);
  }
  metrics.AttachPool(&(*server)->pool(), &(*server)->service().cost_model());
  // Stopped before the server goes (declared after it).
  compute::WorkerPool& pool = (*server)->pool();
  compute::MemoryReturner returner(
      {[] {
         // Arenas made since the last check (new threads) keep freed
         // extents too, from now on.
         compute::KeepFreedExtentsInNewArenas();
         return compute::FreedBytesKept();
       },
       compute::ReturnFreedBytes,
       [&pool] {
         compute::PoolStats s = pool.Stats();
         return compute::MemoryReturner::Activity{
             s.accepted + s.rejected + s.completed_total(),
             s.queue_depth == 0 && s.busy == 0 && s.inflight_bytes == 0};
       },
       [&metrics](compute::MemoryReturner::Action action) {
         using Rule = compute::metrics::Metrics::MemoryReturnRule;
         metrics.CountMemoryReturn(
             action == compute::MemoryReturner::Action::kOverCap ? Rule::kCap
                                                                 : Rule::kIdle);
       }},
      returner_options);
  if (allocator_can_say) {
    if (absl::Status started = returner.Start(); !started.ok()) {
      // Freed memory then goes back by the allocator's own rules only.
      google::protobuf::Struct f;
      Put(f, "error", std::string(started.message()));
      compute::LogJson("warning", "serving without the memory returner", f);
    }
  }

  // The signals are waited for on a thread of their own, started now: the
  // first begins the drain, a second ends it at once. Started at start-up,
  // not when the first signal comes: a server that can no longer start
  // threads then (pids.max in a container) aborted there, dropping every
  // call in flight instead of draining them.
  std::atomic<int> first_signal{0};
  compute::Notification drain_begins;
  // Whoever ends the drain first: main once Drain returns, or the signal
  // thread at the drain's bound. The other side then stands down, so the
  // process never both logs "stopped" and exits past the bound.
  enum DrainEnd : int { kDraining, kDrained, kCutAtTheBound };
  std::atomic<int> drain_end{kDraining};
  std::atomic<int> second_signal{0};
  std::thread signal_waiter;
  try {
    signal_waiter = std::thread([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      const absl::Time first_at = compute::MonotonicNow();
      first_signal.store(sig, std::memory_order_release);
      drain_begins.Notify();
      absl::Time give_up = first_at + config->drain_timeout + kDrainOverrun;
      int second = 0;
      for (;;) {
        // Woken by a signal of our own, to this thread alone, once the
        // drain is over.
        sig = WaitForStopSignal(stop_signals, give_up);
        if (drain_end.load(std::memory_order_acquire) == kDrained) return;
        int draining = kDraining;
        if (sig == 0) {
          if (!drain_end.compare_exchange_strong(draining, kCutAtTheBound)) {
            return;  // Drain returned meanwhile
          }
          ExitPastTheDrainsBound(first_at, second);
        }
        // A stop signal again at once is the same request sent twice, not
        // a second one: `timeout` signals the server and then its process
        // group, as do supervisors that signal both (before, that ended
        // the drain in about half of such stops, every call in flight
        // answered UNAVAILABLE). Whichever signal it is: a script's Ctrl-C
        // reaches the server's process group as SIGINT, and then the
        // script's clean-up sends SIGTERM (scripts/bench/lib.sh does).
        // A third signal changes nothing: the drain is ending.
        if (second != 0 ||
            compute::MonotonicNow() - first_at < kSameStopRequestWindow) {
          continue;
        }
        second = sig;
        second_signal.store(sig, std::memory_order_release);
        google::protobuf::Struct f;
        Put(f, "signal", std::string(strsignal(sig)));
        compute::LogJson("warning", "second signal: ending the drain now", f);
        (*server)->EndDrainNow();
        give_up =
            std::min(give_up, compute::MonotonicNow() + kEndedDrainOverrun);
      }
    });
  } catch (const std::system_error& e) {
    // As at the end of main: scrapes stop reading the pool before it goes.
    metrics.AttachPool(nullptr);
    metrics.StopServing();
    (*server)->Drain(absl::ZeroDuration());
    return CannotStart(absl::ResourceExhaustedError(
        absl::StrCat("cannot start the signal thread: ", e.what())));
  }
  {
    google::protobuf::Struct f;
    Put(f, "port", static_cast<double>((*server)->port()));
    Put(f, "metrics_port", static_cast<double>(metrics.port()));
    compute::LogJson("info", "serving", f);
  }

  drain_begins.WaitForNotification();
  {
    google::protobuf::Struct f;
    Put(f, "signal",
        std::string(strsignal(first_signal.load(std::memory_order_acquire))));
    Put(f, "drain_timeout", absl::FormatDuration(config->drain_timeout));
    compute::LogJson("info", "draining", f);
  }
  absl::Time start = compute::MonotonicNow();
  (*server)->Drain(config->drain_timeout);
  // Scrapes go on until the drain is over; the pool goes with the server,
  // before metrics. Stopped within the drain's bound: civetweb waits up to
  // 2 s for a connection that sent part of a request and went quiet (a
  // review: 3 such connections held the exit 1.7 s past "stopped").
  metrics.AttachPool(nullptr);
  metrics.StopServing();
  int draining = kDraining;
  if (!drain_end.compare_exchange_strong(draining, kDrained)) {
    // The signal thread is exiting the process past the bound.
    signal_waiter.join();  // never returns
  }
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  compute::PoolStats stats = (*server)->pool().Stats();
  google::protobuf::Struct f;
  Put(f, "drain_seconds",
      absl::ToDoubleSeconds(compute::MonotonicNow() - start));
  Put(f, "tasks_completed", static_cast<double>(stats.completed_total()));
  Put(f, "tasks_shut_down",
      static_cast<double>(
          stats.completed[static_cast<int>(compute::TaskOutcome::kShutDown)]));
  const int second = second_signal.load(std::memory_order_acquire);
  if (second != 0) Put(f, "ended_by", std::string(strsignal(second)));
  // Answers whose clients did not take them by the drain's deadline: a
  // client that does not read held the drain that long (a review's
  // finding: the drain took its whole timeout and no line said why).
  if (const int64_t untaken = (*server)->untaken_answer_bytes(); untaken > 0) {
    Put(f, "answers_untaken_bytes", static_cast<double>(untaken));
  }
  compute::LogJson("info", "stopped", f);
  return second != 0 ? 128 + second : 0;
}
