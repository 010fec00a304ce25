// An incremental HTTP/1.1 request parser: bytes in, one event out per call,
// no Node, no sockets, no allocation per request. As strict as Node's
// default (non-lenient) llhttp: anything it rejects as ambiguous is rejected
// here too (request smuggling), with the status a server should answer.
//
// Usage (the server's read path):
//   for (;;) {
//     RequestParser::Result r = parser.parse(data, length);
//     data += r.consumed; length -= r.consumed;
//     switch (r.event) {
//       case kNeedMore: wait for more bytes;  case kHead: parser.head();
//       case kBody: r.data/r.length;           case kMessageComplete: next request;
//       case kUpgraded: the rest is another protocol;  case kError: parser.error_status();
//     }
//   }
// Bytes left unconsumed by an event must be passed again on the next call
// (a server that pauses a body simply stops calling: that is backpressure).
//
// Where the head's spans point: into the bytes given to parse() when the
// whole head arrived in one call (the common case: no copy, the spans are
// over the server's read slab, handed to JavaScript in the same batch), into
// a buffer the parser owns when the head was split across calls (allocated
// once, max_head_bytes long, on the first split head, then reused). Either
// way they are valid until the next parse() call. The header spans live in a
// vector that keeps its capacity from request to request (it grows to the
// most headers one request had); a parser is 224 bytes on x86-64 before it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace reactor::http {

struct Limits {
  // Request line + header lines + their CRLFs; over it: 431. Also bounds a
  // chunked body's trailer section. Node's default --max-http-header-size.
  uint32_t max_head_bytes = 16384;
  // Content-Length, or the sum of chunk sizes; over it: 413 (before the body
  // is read when the length is declared).
  uint64_t max_body_bytes = UINT64_MAX;
  // Chunk extensions of one message, all chunks together; over it: 413
  // (what node:http answers for HPE_CHUNK_EXTENSIONS_OVERFLOW).
  uint32_t max_chunk_extension_bytes = 16384;
};

// Offset and length from RequestHead::base.
struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

struct HeaderSpan {
  Span name;
  Span value;  // Leading and trailing whitespace excluded.
};

enum class BodyFraming : uint8_t { kNone, kLength, kChunked };

struct RequestHead {
  const char* base = nullptr;
  Span method;
  Span target;
  uint8_t version_minor = 1;  // HTTP/1.0 or HTTP/1.1; other versions are refused (505).
  const HeaderSpan* headers = nullptr;
  uint32_t header_count = 0;

  // What the server has to decide, decided here.
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;   // With kLength.
  bool keep_alive = true;        // Version default, then Connection: close / keep-alive.
  bool upgrade = false;          // CONNECT, or Upgrade with Connection: upgrade.
  bool expect_continue = false;  // Expect: 100-continue.
  bool method_is_head = false;   // The response has no body.

  std::string_view view(Span span) const { return {base + span.offset, span.length}; }
};

class RequestParser {
 public:
  enum class Event : uint8_t {
    kNeedMore,         // Every byte given was consumed; call again with more.
    kHead,             // head() holds the request line and headers.
    kBody,             // data/length: decoded body bytes (chunk framing removed).
    kMessageComplete,  // The request ended; the next bytes are the next request.
    kUpgraded,         // After an upgrade head: no byte is consumed, the rest is not HTTP.
    kError,            // error_status() says what to answer; the connection must close.
  };
  struct Result {
    Event event;
    size_t consumed;
    const char* data = nullptr;
    size_t length = 0;
  };

  explicit RequestParser(const Limits& limits = Limits());

  Result parse(const char* data, size_t length);

  const RequestHead& head() const { return head_; }
  // 400, 413, 431 or 505, with a short reason for logs and tests.
  int error_status() const { return error_status_; }
  const char* error_reason() const { return error_reason_; }
  // True between messages: end of input here is a clean close, anywhere
  // else it cuts a request short.
  bool at_message_boundary() const { return state_ == State::kStart; }

 private:
  enum class State : uint8_t {
    kStart,
    kMethod,
    kSpacesBeforeTarget,
    kTarget,
    kSpacesBeforeVersion,
    kVersion,
    kRequestLineLf,
    kFieldLineStart,
    kFieldName,
    kFieldValueStart,
    kFieldValue,
    kFieldValueLf,
    kFieldsEndLf,
    kBodyLength,
    kChunkSize,
    kChunkExtensionName,
    kChunkExtensionValueStart,
    kChunkExtensionToken,
    kChunkExtensionQuoted,
    kChunkExtensionQuotedPair,
    kChunkExtensionAfterQuoted,
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kMessageDone,
    kUpgraded,
    kError,
  };
  enum class HeadScan : uint8_t { kNeedMore, kComplete, kError };

  Result parse_head(const char* data, size_t length);
  // Runs the head's state machine over base[pos_, end): the request line and
  // field lines of a head (spans kept), or the field lines of a trailer
  // section (checked, then dropped).
  HeadScan scan_lines(const char* base, uint32_t end);
  Result parse_chunked(const char* data, size_t length);
  Result parse_trailers(const char* data, size_t length);
  bool finish_method(const char* base, uint32_t end);
  bool finish_target(const char* base, uint32_t end);
  bool finish_field(const char* base);
  bool finish_head();
  void start_message();
  HeadScan scan_error(int status, const char* reason);
  Result fail(int status, const char* reason, size_t consumed);

  Limits limits_;
  State state_ = State::kStart;
  bool in_trailers_ = false;
  // The head being scanned: offsets from its first byte.
  uint32_t pos_ = 0;
  uint32_t token_start_ = 0;
  Span field_name_;
  Span field_value_;
  uint32_t field_raw_end_ = 0;  // Where the value's line ends (its CR).
  uint8_t version_index_ = 0;
  uint8_t version_major_ = 0;
  // Head split across calls: the bytes so far, and how many.
  std::unique_ptr<char[]> split_head_;
  uint32_t split_fill_ = 0;
  bool head_is_split_ = false;

  // What the headers said so far.
  bool has_content_length_ = false;
  bool has_transfer_encoding_ = false;
  bool last_coding_is_chunked_ = false;
  uint32_t chunked_codings_ = 0;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool connection_upgrade_ = false;
  bool has_upgrade_ = false;

  // Body progress.
  uint64_t body_remaining_ = 0;
  uint64_t body_total_ = 0;
  uint32_t chunk_extension_bytes_ = 0;
  uint32_t trailer_bytes_ = 0;
  bool chunk_size_digits_ = false;
  bool chunk_extension_name_started_ = false;

  std::vector<HeaderSpan> headers_;
  RequestHead head_;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace reactor::http
