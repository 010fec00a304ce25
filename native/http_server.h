// The native HTTP/1.1 server's own pieces, apart from sockets: what an HTTP
// listener is configured with, the state of a connection while a request is
// in progress (Exchange, in a side table by slot: an idle keep-alive
// connection has none), the request head as JavaScript reads it (one
// self-contained descriptor in the read slab) and the response head writer.
// The read path and the response calls that drive them are LoopCore's
// (http_connections.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http_parser.h"

namespace reactor::http {

struct ServerConfig {
  Limits limits;  // 431, 413 (and 400 for what the parser refuses)
  // From a request's first byte to its complete head; over it: 408. Against
  // slowloris; node:http's headersTimeout is 60 s.
  uint32_t header_timeout_ms = 30000;
  // From a request's first byte to its complete body; over it: 408 (the
  // connection closed, if a response is under way). Against bodies that
  // trickle in; node:http's requestTimeout is 300 s. 0: none.
  uint32_t request_timeout_ms = 300000;
  // Between requests of a keep-alive connection: closed without a word.
  uint32_t keep_alive_ms = 60000;
  // Unparsed bytes kept for a connection while its request is answered (the
  // next pipelined requests) or its body is paused; past it, the connection
  // is not read until the response ends or the body resumes.
  uint32_t max_pending_bytes = 64 * 1024;
};

// A draining server's keep-alive connections close once idle this long.
// Shorter races more clients' next requests; longer holds the drain.
constexpr uint32_t kDrainIdleMs = 1000;

// An HTTP listener's part of its Listener record.
struct ListenerHttp {
  explicit ListenerHttp(const ServerConfig& c)
      : config(c), shared(std::make_unique<RequestParser>(c.limits)) {}
  ServerConfig config;
  // Stopped accepting (a worker's drain): every response closes its
  // connection, with Connection: close when its head has not gone yet.
  bool draining = false;
  // The parser for heads that arrive whole, shared by the connections; swapped
  // with an exchange's when a message stays split across reads.
  std::unique_ptr<RequestParser> shared;
};

// A connection's state from a request's first byte until its response ends.
struct Exchange {
  // The parser while a message is split across reads; otherwise the
  // listener's shared one serves, so a request that arrives whole needs none.
  std::unique_ptr<RequestParser> parser;
  std::string pending;           // read, not parsed yet: the next requests, or a paused body
  uint64_t head_started_ms = 0;  // the request's first byte (0: its head came in one read)
  uint8_t version_minor = 1;
  bool head_done = false;     // JavaScript has the request
  bool message_done = false;  // its body is all delivered
  bool body_paused = false;   // JavaScript paused the body
  bool keep_alive = true;     // the request allows it (and the response did not refuse it)
  bool head_only = false;     // HEAD: no body goes out
  bool response_started = false;
  bool sends_body = true;        // the response's status and the method allow a body
  bool chunked = false;          // the response body is chunk-framed
  bool close_delimited = false;  // HTTP/1.0 without a length: the close ends the body
  bool response_done = false;

  bool responding() const { return head_done && !response_done; }
};

// "Date: <IMF-fixdate>\r\n", formatted once a second.
class DateHeader {
 public:
  std::string_view get();

 private:
  time_t second_ = 0;
  char line_[40] = {};
  size_t length_ = 0;
};

// Exchanges by connection slot, made on demand, their objects reused.
class Exchanges {
 public:
  Exchange* find(uint32_t slot) const {
    return slot < by_slot_.size() ? by_slot_[slot].get() : nullptr;
  }
  Exchange* make(uint32_t slot);
  // Back to the spares.
  void finish(uint32_t slot);

  // Connections whose pending bytes wait to be parsed at the next settle
  // (packed ids: a slot reused meanwhile is told apart).
  std::vector<uint64_t> to_resume;
  DateHeader date;
  std::string scratch;  // a response head being written

 private:
  std::vector<std::unique_ptr<Exchange>> by_slot_;
  std::vector<std::unique_ptr<Exchange>> spare_;
};

// What JavaScript reads of a request: 32-bit words, then the head's bytes.
// Offsets are from the bytes' start, so the descriptor is valid wherever it
// lies (the head may have been split, and its bytes in an older slab).
enum DescriptorWord : uint32_t {
  kListenerSlot,
  kListenerGen,
  kFlags,  // HeadFlags | version_minor << 8
  kLengthLow,
  kLengthHigh,
  kMethodOffset,
  kMethodLength,
  kTargetOffset,
  kTargetLength,
  kHeaderCount,
  kFixedWords,  // then per header: name offset, name length, value offset, value length
};
enum HeadFlags : uint32_t {
  kFlagKeepAlive = 1,
  kFlagHead = 2,
  kFlagExpectContinue = 4,
  kFlagUpgrade = 8,
  kFlagChunked = 16,
  kFlagLength = 32,
};
size_t descriptor_size(const RequestHead& head);
// The head's bytes: from its method to the end of its last header value.
size_t head_bytes(const RequestHead& head);
// Writes the descriptor at out (4-aligned, descriptor_size(head) bytes).
void write_descriptor(const RequestHead& head, uint32_t listener_slot, uint32_t listener_gen,
                      uint8_t* out);

// A response head as JavaScript asks for it.
struct ResponseHead {
  int status = 200;
  std::string_view reason;   // empty: the standard phrase
  std::string_view headers;  // "Name: value\r\n" lines, the user's
  bool has_length = false;   // the user's headers frame the body (Content-Length)
  bool close = false;        // the user's Connection: close
};

// value in base 10 or 16 (a chunk size), without snprintf's cost.
void append_number(std::string* out, uint64_t value, unsigned base);
// The standard reason phrase, or "Unknown".
std::string_view reason_phrase(int status);
// The status line, the Date, the framing and Connection headers the server
// chose, the user's headers and the blank line. body_length: with the whole
// body known (end in the same call), else -1.
// Decides the exchange's framing (chunked, close-delimited) and keep-alive.
void format_response_head(const ResponseHead& head, Exchange* x, int64_t body_length,
                          DateHeader* date, std::string* out);
// Whether a response of this status to this request carries a body.
bool has_body(int status, const Exchange& x);
// The canned answer to a request refused before JavaScript saw it.
std::string_view error_response(int status);

}  // namespace reactor::http
