// The PROXY protocol (HAProxy's, versions 1 and 2), receiving side: a pure,
// incremental parser of the header a proxy sends first on a connection, told
// apart by its signature ("PROXY " for the text version 1, the 12-byte binary
// signature for version 2). Bytes in, never a byte past the header's end
// consumed: what follows belongs to the application. No sockets, no Node.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sockets.h"

namespace reactor {
namespace proxy {

// The largest header accepted by default. Version 1 is at most 107 bytes
// (the spec's limit, whatever this says); version 2 is 16 bytes plus a
// length of up to 65,535: its addresses (at most 216 bytes) and TLVs, which
// are skipped, so the limit only bounds what a sender may make us read.
constexpr size_t kDefaultMaxHeader = 4096;
constexpr size_t kMaxLineV1 = 107;  // with its CRLF

enum class Status : uint8_t {
  kNeedMore,  // every byte given was part of the header; it is not complete
  kDone,      // the header ended: header() says what it carried
  kRejected,  // reason() says why; the connection must be dropped
};

enum class Reject : uint8_t {
  kNone,
  kMissing,    // the first bytes are no PROXY signature (a plain request, say)
  kMalformed,  // a signature, then something the spec does not allow
  kTooLarge,   // a v1 line with no CRLF in 107 bytes, a v2 length over the limit
};

struct Header {
  int version = 0;  // 1 or 2
  // The addresses are the client's (v1 TCP4/TCP6, v2 PROXY over TCP or a
  // Unix stream). False for v1 UNKNOWN, v2 LOCAL, and v2 families or
  // protocols not forwarded here (AF_UNSPEC, UDP): the socket's own
  // addresses stand, as the spec says.
  bool proxied = false;
  SocketAddress source;
  SocketAddress destination;
};

class Parser {
 public:
  explicit Parser(size_t max_header = kDefaultMaxHeader) : max_header_(max_header) {}

  // Feeds the next bytes of the connection. *consumed is how many of them
  // belong to the header: all of them with kNeedMore, up to and including its
  // last byte with kDone; with kRejected, no more are fed.
  Status feed(const uint8_t* data, size_t length, size_t* consumed);

  Reject reason() const { return reason_; }
  const Header& header() const { return header_; }
  // Header bytes seen so far.
  size_t seen() const { return seen_; }

 private:
  Status reject(Reject why);
  // One byte of the signature: which version it starts, or a rejection.
  Status take_signature_byte(uint8_t byte);
  Status take_v1_byte(uint8_t byte);
  Status parse_v1_line();
  // The fixed 16 bytes are in buffer_: check them, learn the total length.
  Status check_v2_prefix();
  void decode_v2_addresses();

  // Version 2's fixed part, then as many address bytes as its family has.
  static constexpr size_t kV2Fixed = 16;
  static constexpr size_t kV2MaxAddresses = 216;

  size_t max_header_;
  size_t seen_ = 0;
  size_t total_ = 0;  // v2: 16 + its length, once the fixed part is in
  size_t keep_ = 0;   // v2: bytes of the header worth keeping (fixed part + addresses)
  int version_ = 0;   // 0 while the signature is incomplete
  Reject reason_ = Reject::kNone;
  Header header_;
  uint8_t buffer_[kV2Fixed + kV2MaxAddresses];  // also holds a v1 line (<= 107 bytes)
};

}  // namespace proxy
}  // namespace reactor
