// The process's open-file limit, raised for a server.
#ifndef COMPUTE_SERVER_BASE_FD_LIMIT_H_
#define COMPUTE_SERVER_BASE_FD_LIMIT_H_

#include <cstdint>

namespace compute {

// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit and
// returns the soft limit now in force (-1 if it cannot be read; unlimited
// as INT64_MAX).
//
// Why: every connection is a file, and gRPC 1.51's listener stops
// accepting for good after one accept4() fails with EMFILE (CVE-2023-4785,
// fixed in later gRPC releases): a flood of connections that reaches the
// soft limit once, even for a moment, leaves the server serving the
// connections it has and never another. Systemd and container runtimes
// often set a soft limit of 1,024 under a hard one of 524,288 or more, for
// programs that use select(); this one does not. The higher limit makes
// the flood it takes far larger; it does not remove the bug.
int64_t RaiseOpenFileLimit();

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FD_LIMIT_H_
