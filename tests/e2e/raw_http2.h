// A raw HTTP/2 client for tests that must send what no gRPC library will:
// a content-type that is not gRPC's, a frame cut short, a length prefix
// that promises more than the body holds, two messages on a unary call, or
// a receive window that is never opened. It writes frames byte by byte and
// reads the server's answer back: HEADERS are decoded with a small HPACK
// decoder, enough to read `grpc-status`. A body larger than the server's
// initial flow-control window goes with SendData, which keeps to the
// windows the server grants (a client that does not read its answers must
// still send its requests as HTTP/2 allows).
//
// Why not a library: gRPC's clients cannot lie this way, and nghttp2's
// headers are not installed here. The decoder refuses Huffman-coded
// strings (gRPC 1.51's encoder sends plain literals); a test that meets
// one fails with a message saying so instead of reading a wrong status.
//
// Thread-compatible: one thread uses a connection at a time.
#ifndef COMPUTE_TESTS_E2E_RAW_HTTP2_H_
#define COMPUTE_TESTS_E2E_RAW_HTTP2_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace compute::testing {

namespace http2 {
inline constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3,
                         kSettings = 0x4, kPing = 0x6, kGoaway = 0x7,
                         kWindowUpdate = 0x8, kContinuation = 0x9;
inline constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4,
                         kPadded = 0x8, kPriority = 0x20;
inline constexpr uint16_t kSettingsMaxConcurrentStreams = 0x3,
                          kSettingsInitialWindowSize = 0x4,
                          kSettingsMaxFrameSize = 0x5,
                          kSettingsGrpcTrueBinary = 0xfe03;
}  // namespace http2

// One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload.
inline std::string Http2Frame(uint8_t type, uint8_t flags, uint32_t stream,
                              const std::string& payload) {
  std::string frame;
  uint32_t n = static_cast<uint32_t>(payload.size());
  frame.push_back(static_cast<char>(n >> 16));
  frame.push_back(static_cast<char>(n >> 8));
  frame.push_back(static_cast<char>(n));
  frame.push_back(static_cast<char>(type));
  frame.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) {
    frame.push_back(static_cast<char>(stream >> shift));
  }
  return frame + payload;
}

// A WINDOW_UPDATE frame: `increment` more bytes the peer may send on
// `stream` (0: the connection).
inline std::string WindowUpdateFrame(uint32_t stream, uint32_t increment) {
  std::string payload;
  for (int shift : {24, 16, 8, 0}) {
    payload.push_back(static_cast<char>(increment >> shift));
  }
  return Http2Frame(http2::kWindowUpdate, 0, stream, payload);
}

// An HPACK "literal header field without indexing, new name", neither
// string Huffman-coded (RFC 7541 6.2.2); both shorter than 127 bytes.
inline std::string HpackLiteral(const std::string& name,
                                const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

// The header block of a call to compute.v1.Compute/Run, with `content_type`
// and any `extra` fields (e.g. {"grpc-timeout", "5S"}).
inline std::string RunCallHeaders(
    const std::string& content_type = "application/grpc",
    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::string block = HpackLiteral(":method", "POST") +
                      HpackLiteral(":scheme", "http") +
                      HpackLiteral(":path", "/compute.v1.Compute/Run") +
                      HpackLiteral(":authority", "127.0.0.1") +
                      HpackLiteral("content-type", content_type) +
                      HpackLiteral("te", "trailers");
  for (const auto& [name, value] : extra) block += HpackLiteral(name, value);
  return block;
}

// A gRPC length-prefixed message: flag 0 (not compressed), a 32-bit length
// (`declared_length`, normally body.size()), then the body.
inline std::string GrpcMessage(const std::string& body,
                               std::optional<uint32_t> declared_length = {}) {
  uint32_t n = declared_length.value_or(static_cast<uint32_t>(body.size()));
  std::string out(1, '\0');
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>(n >> shift));
  return out + body;
}

// Decodes HPACK header blocks (RFC 7541), keeping the dynamic table across
// the blocks of one connection; plain string literals only.
class HpackDecoder {
 public:
  // Appends the fields of `block` to `out`; false (and `error()`) on a
  // block it cannot decode.
  bool Decode(const std::string& block,
              std::vector<std::pair<std::string, std::string>>& out) {
    size_t i = 0;
    while (i < block.size()) {
      uint8_t b = static_cast<uint8_t>(block[i]);
      if (b & 0x80) {  // indexed field
        uint64_t index;
        if (!Integer(block, i, 7, index)) return false;
        std::optional<std::pair<std::string, std::string>> f = Entry(index);
        if (!f) return Fail("bad index");
        out.push_back(*f);
      } else if ((b & 0xe0) == 0x20) {  // dynamic table size update
        uint64_t size;
        if (!Integer(block, i, 5, size)) return false;
        max_size_ = size;
        Evict();
      } else {
        // Literal: with incremental indexing (01), else without (0000) or
        // never indexed (0001).
        bool index_it = (b & 0xc0) == 0x40;
        uint64_t name_index;
        if (!Integer(block, i, index_it ? 6 : 4, name_index)) return false;
        std::string name, value;
        if (name_index == 0) {
          if (!String(block, i, name)) return false;
        } else {
          std::optional<std::pair<std::string, std::string>> f =
              Entry(name_index);
          if (!f) return Fail("bad name index");
          name = f->first;
        }
        if (!String(block, i, value)) return false;
        if (index_it) {
          dynamic_.emplace_front(name, value);
          size_ += name.size() + value.size() + 32;
          Evict();
        }
        out.emplace_back(std::move(name), std::move(value));
      }
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool Fail(const std::string& why) {
    error_ = why;
    return false;
  }
  bool Integer(const std::string& s, size_t& i, int prefix_bits,
               uint64_t& value) {
    uint8_t mask = static_cast<uint8_t>((1 << prefix_bits) - 1);
    value = static_cast<uint8_t>(s[i++]) & mask;
    if (value < mask) return true;
    for (int shift = 0; shift < 56; shift += 7) {
      if (i >= s.size()) return Fail("truncated integer");
      uint8_t b = static_cast<uint8_t>(s[i++]);
      value += static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return Fail("integer too long");
  }
  bool String(const std::string& s, size_t& i, std::string& out) {
    if (i >= s.size()) return Fail("truncated string");
    bool huffman = static_cast<uint8_t>(s[i]) & 0x80;
    uint64_t n;
    if (!Integer(s, i, 7, n)) return false;
    if (huffman) return Fail("Huffman-coded string (not decoded here)");
    if (n > s.size() - i) return Fail("string past the block");
    out = s.substr(i, n);
    i += n;
    return true;
  }
  std::optional<std::pair<std::string, std::string>> Entry(uint64_t index) {
    // RFC 7541 Appendix A.
    static const char* const kStatic[][2] = {
        {":authority", ""},
        {":method", "GET"},
        {":method", "POST"},
        {":path", "/"},
        {":path", "/index.html"},
        {":scheme", "http"},
        {":scheme", "https"},
        {":status", "200"},
        {":status", "204"},
        {":status", "206"},
        {":status", "304"},
        {":status", "400"},
        {":status", "404"},
        {":status", "500"},
        {"accept-charset", ""},
        {"accept-encoding", "gzip, deflate"},
        {"accept-language", ""},
        {"accept-ranges", ""},
        {"accept", ""},
        {"access-control-allow-origin", ""},
        {"age", ""},
        {"allow", ""},
        {"authorization", ""},
        {"cache-control", ""},
        {"content-disposition", ""},
        {"content-encoding", ""},
        {"content-language", ""},
        {"content-length", ""},
        {"content-location", ""},
        {"content-range", ""},
        {"content-type", ""},
        {"cookie", ""},
        {"date", ""},
        {"etag", ""},
        {"expect", ""},
        {"expires", ""},
        {"from", ""},
        {"host", ""},
        {"if-match", ""},
        {"if-modified-since", ""},
        {"if-none-match", ""},
        {"if-range", ""},
        {"if-unmodified-since", ""},
        {"last-modified", ""},
        {"link", ""},
        {"location", ""},
        {"max-forwards", ""},
        {"proxy-authenticate", ""},
        {"proxy-authorization", ""},
        {"range", ""},
        {"referer", ""},
        {"refresh", ""},
        {"retry-after", ""},
        {"server", ""},
        {"set-cookie", ""},
        {"strict-transport-security", ""},
        {"transfer-encoding", ""},
        {"user-agent", ""},
        {"vary", ""},
        {"via", ""},
        {"www-authenticate", ""},
    };
    constexpr uint64_t kStaticSize = sizeof(kStatic) / sizeof(kStatic[0]);
    if (index == 0) return std::nullopt;
    if (index <= kStaticSize) {
      return std::make_pair(kStatic[index - 1][0], kStatic[index - 1][1]);
    }
    if (index - kStaticSize > dynamic_.size()) return std::nullopt;
    return dynamic_[index - kStaticSize - 1];
  }
  void Evict() {
    while (size_ > max_size_ && !dynamic_.empty()) {
      size_ -=
          dynamic_.back().first.size() + dynamic_.back().second.size() + 32;
      dynamic_.pop_back();
    }
  }

  std::deque<std::pair<std::string, std::string>> dynamic_;
  uint64_t size_ = 0;
  uint64_t max_size_ = 4096;
  std::string error_;
};

// How a stream ended, as the client saw it.
struct StreamEnd {
  enum class Kind {
    kTrailers,  // HEADERS with END_STREAM: `fields` holds grpc-status
    kReset,     // RST_STREAM, `reset_code`
    kClosed,    // the server closed the connection first
    kTimeout,   // nothing ended it in time
    kBadFrame,  // a header block this client cannot decode (`error`)
  };
  Kind kind = Kind::kTimeout;
  std::map<std::string, std::string> fields;  // every header field seen
  uint32_t reset_code = 0;
  bool goaway = false;  // the server sent GOAWAY on the way
  std::string error;
  // grpc-status as a number, or -1 if none was seen.
  int grpc_status() const {
    auto it = fields.find("grpc-status");
    return it == fields.end() ? -1 : std::atoi(it->second.c_str());
  }
};

// A TCP connection to 127.0.0.1:`port` (blocking connect), or -1.
inline int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

class RawHttp2Connection {
 public:
  RawHttp2Connection() = default;
  ~RawHttp2Connection() { Close(); }
  RawHttp2Connection(const RawHttp2Connection&) = delete;
  RawHttp2Connection& operator=(const RawHttp2Connection&) = delete;

  // Connects to 127.0.0.1:`port` and sends the client preface and
  // SETTINGS; with `initial_window`, each stream's receive window is that
  // many bytes (0: the server may send no DATA until a WINDOW_UPDATE, which
  // this client never sends). With `true_binary`, gRPC's own setting that
  // asks for binary metadata (`-bin`) as its bytes after a 0 byte, not in
  // base64, which gRPC 1.51 Huffman-codes (not decoded here).
  bool Connect(int port, std::optional<uint32_t> initial_window = {},
               bool true_binary = false) {
    fd_ = ConnectLoopback(port);
    if (fd_ < 0) return false;
    std::string settings;
    auto add = [&settings](uint16_t id, uint32_t value) {
      settings.push_back(static_cast<char>(id >> 8));
      settings.push_back(static_cast<char>(id));
      for (int shift : {24, 16, 8, 0}) {
        settings.push_back(static_cast<char>(value >> shift));
      }
    };
    if (initial_window) {
      add(http2::kSettingsInitialWindowSize, *initial_window);
    }
    if (true_binary) add(http2::kSettingsGrpcTrueBinary, 1);
    return Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                Http2Frame(http2::kSettings, 0, 0, settings));
  }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n =
          send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  // A setting the server sent (http2::kSettings*), once its SETTINGS have
  // been read (ReadUntilEnd, SendData).
  std::optional<uint32_t> PeerSetting(uint16_t id) const {
    auto it = peer_settings_.find(id);
    if (it == peer_settings_.end()) return std::nullopt;
    return it->second;
  }

  // Sends `body` as `stream`'s DATA, ending the stream (its HEADERS must
  // have been sent), as the server's flow control allows: in frames of at
  // most its SETTINGS_MAX_FRAME_SIZE, within the connection's and the
  // stream's send windows, reading the server's frames (WINDOW_UPDATE,
  // SETTINGS, PING, and whatever else, kept for ReadUntilEnd) while they are
  // shut. For a body larger than the 64 KiB a connection starts with. False
  // if the connection closes or `timeout` passes first.
  bool SendData(uint32_t stream, const std::string& body,
                absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    Stream& st = StreamFor(stream);
    size_t sent = 0;
    do {
      ProcessFrames();  // a header block it cannot decode is no matter here
      const int64_t room =
          std::min<int64_t>({connection_send_window_, st.send_window,
                             static_cast<int64_t>(peer_max_frame_),
                             static_cast<int64_t>(body.size() - sent)});
      if (room <= 0 && sent < body.size()) {
        if (ReadMore(deadline) != Read::kBytes) return false;
        continue;
      }
      const size_t n = static_cast<size_t>(std::max<int64_t>(room, 0));
      const bool last = sent + n == body.size();
      if (!Send(Http2Frame(http2::kData, last ? http2::kEndStream : 0, stream,
                           body.substr(sent, n)))) {
        return false;
      }
      sent += n;
      connection_send_window_ -= static_cast<int64_t>(n);
      st.send_window -= static_cast<int64_t>(n);
    } while (sent < body.size());
    return true;
  }

  // Sends a PING and reads (answering SETTINGS and PING) until the server
  // acknowledges it: HTTP/2 peers handle frames in order, so the server has
  // read everything sent before. False if the connection closes or
  // `timeout` passes first.
  bool Ping(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    const int acks = ping_acks_;
    if (!Send(Http2Frame(http2::kPing, 0, 0, std::string(8, '\0')))) {
      return false;
    }
    for (;;) {
      ProcessFrames();
      if (ping_acks_ > acks) return true;
      if (ReadMore(deadline) != Read::kBytes) return false;
    }
  }

  // Reads (answering SETTINGS and PING) until `stream` ends, the connection
  // closes, or `timeout` passes. What arrives for other streams meanwhile is
  // kept for their own ReadUntilEnd.
  StreamEnd ReadUntilEnd(uint32_t stream, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const bool ok = ProcessFrames();
      StreamEnd end = StreamFor(stream).end;
      end.goaway = goaway_;
      if (StreamFor(stream).ended) return end;
      if (!ok) {  // its end may have been in a block that did not decode
        end.kind = StreamEnd::Kind::kBadFrame;
        end.error = error_;
        return end;
      }
      switch (ReadMore(deadline)) {
        case Read::kBytes:
          break;
        case Read::kTimeout:
          end.kind = StreamEnd::Kind::kTimeout;
          return end;
        case Read::kClosed:
          ProcessFrames();  // what came before the close
          end = StreamFor(stream).end;
          end.goaway = goaway_;
          if (!StreamFor(stream).ended) end.kind = StreamEnd::Kind::kClosed;
          return end;
      }
    }
  }

 private:
  struct Stream {
    StreamEnd end;       // what has arrived so far
    bool ended = false;  // end.kind is final
    int64_t send_window = 0;
  };
  enum class Read { kBytes, kTimeout, kClosed };

  Stream& StreamFor(uint32_t id) {
    auto [it, added] = streams_.try_emplace(id);
    if (added) it->second.send_window = peer_initial_window_;
    return it->second;
  }

  // Waits for bytes from the server until `deadline`.
  Read ReadMore(absl::Time deadline) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return Read::kTimeout;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <=
        0) {
      return absl::Now() >= deadline ? Read::kTimeout : Read::kBytes;
    }
    char chunk[16384];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) return Read::kClosed;
    buffer_.append(chunk, static_cast<size_t>(n));
    return Read::kBytes;
  }

  // Handles every whole frame received; false once a header block could not
  // be decoded (error_). Frames after that one are still handled (windows,
  // SETTINGS, PING, resets), their header blocks no longer decoded.
  bool ProcessFrames() {
    while (buffer_.size() >= 9) {
      uint32_t length = (static_cast<uint8_t>(buffer_[0]) << 16) |
                        (static_cast<uint8_t>(buffer_[1]) << 8) |
                        static_cast<uint8_t>(buffer_[2]);
      if (buffer_.size() < 9 + length) break;
      uint8_t type = static_cast<uint8_t>(buffer_[3]);
      uint8_t flags = static_cast<uint8_t>(buffer_[4]);
      uint32_t id = 0;
      for (int k = 5; k < 9; ++k) {
        id = (id << 8) | static_cast<uint8_t>(buffer_[k]);
      }
      id &= 0x7fffffff;
      std::string payload = buffer_.substr(9, length);
      buffer_.erase(0, 9 + length);
      Handle(type, flags, id, payload);
    }
    return error_.empty();
  }

  static uint32_t Be32(const std::string& s, size_t at) {
    uint32_t v = 0;
    for (size_t k = at; k < at + 4 && k < s.size(); ++k) {
      v = (v << 8) | static_cast<uint8_t>(s[k]);
    }
    return v;
  }

  void Handle(uint8_t type, uint8_t flags, uint32_t id,
              const std::string& payload) {
    if (type == http2::kSettings && !(flags & http2::kAck)) {
      for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
        uint16_t setting =
            static_cast<uint16_t>((static_cast<uint8_t>(payload[i]) << 8) |
                                  static_cast<uint8_t>(payload[i + 1]));
        uint32_t value = Be32(payload, i + 2);
        peer_settings_[setting] = value;
        if (setting == http2::kSettingsInitialWindowSize) {
          // Applies to every stream, open or not yet (RFC 9113 6.9.2).
          const int64_t delta = int64_t{value} - peer_initial_window_;
          for (auto& [unused, st] : streams_) st.send_window += delta;
          peer_initial_window_ = value;
        } else if (setting == http2::kSettingsMaxFrameSize) {
          peer_max_frame_ = value;
        }
      }
      Send(Http2Frame(http2::kSettings, http2::kAck, 0, ""));
    } else if (type == http2::kPing && !(flags & http2::kAck)) {
      Send(Http2Frame(http2::kPing, http2::kAck, 0, payload));
    } else if (type == http2::kPing) {
      ++ping_acks_;
    } else if (type == http2::kGoaway) {
      goaway_ = true;
    } else if (type == http2::kWindowUpdate) {
      const int64_t increment = Be32(payload, 0) & 0x7fffffff;
      if (id == 0) {
        connection_send_window_ += increment;
      } else {
        StreamFor(id).send_window += increment;
      }
    } else if (type == http2::kRstStream) {
      Stream& st = StreamFor(id);
      if (!st.ended) {
        st.end.kind = StreamEnd::Kind::kReset;
        st.end.reset_code = Be32(payload, 0);
        st.ended = true;
      }
    } else if (type == http2::kHeaders || type == http2::kContinuation) {
      if (type == http2::kHeaders) {
        size_t skip = 0, pad = 0;
        if ((flags & http2::kPadded) && !payload.empty()) {
          pad = static_cast<uint8_t>(payload[0]);
          skip = 1;
        }
        if (flags & http2::kPriority) skip += 5;
        if (skip + pad > payload.size()) {
          error_ = "HEADERS shorter than its padding and priority";
          return;
        }
        block_ = payload.substr(skip, payload.size() - skip - pad);
        block_stream_ = id;
        block_ends_stream_ = flags & http2::kEndStream;
      } else {
        block_ += payload;
      }
      if ((flags & http2::kEndHeaders) && error_.empty()) {
        std::vector<std::pair<std::string, std::string>> fields;
        if (!hpack_.Decode(block_, fields)) {
          error_ = hpack_.error();  // its table is lost: decode no more
          return;
        }
        Stream& st = StreamFor(block_stream_);
        if (st.ended) return;  // what ended it stands
        for (auto& [name, value] : fields) st.end.fields[name] = value;
        if (block_ends_stream_) {
          st.end.kind = StreamEnd::Kind::kTrailers;
          st.ended = true;
        }
      }
    } else if (type == http2::kData && (flags & http2::kEndStream)) {
      Stream& st = StreamFor(id);
      if (!st.ended) {
        st.end.kind = StreamEnd::Kind::kTrailers;  // no trailers: no status
        st.ended = true;
      }
    }
  }

  int fd_ = -1;
  std::string buffer_;
  HpackDecoder hpack_;
  std::map<uint32_t, Stream> streams_;
  // A header block continued in CONTINUATION frames.
  std::string block_;
  uint32_t block_stream_ = 0;
  bool block_ends_stream_ = false;
  bool goaway_ = false;
  int ping_acks_ = 0;  // PING ACKs received
  std::map<uint16_t, uint32_t> peer_settings_;
  std::string error_;  // a frame this client could not decode
  // What the server lets this client send (RFC 9113 6.9): 65,535 bytes on
  // the connection and on each stream until it says otherwise.
  int64_t connection_send_window_ = 65535;
  int64_t peer_initial_window_ = 65535;
  uint32_t peer_max_frame_ = 16384;
};

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_E2E_RAW_HTTP2_H_
