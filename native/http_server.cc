// The HTTP server's socket-free pieces: exchanges, the request descriptor,
// the response head.
#include "http_server.h"

#include <cstring>

namespace reactor::http {

Exchange* Exchanges::make(uint32_t slot) {
  if (by_slot_.size() <= slot) by_slot_.resize(slot + 1);
  std::unique_ptr<Exchange>& x = by_slot_[slot];
  if (x) return x.get();
  if (spare_.empty()) {
    x = std::make_unique<Exchange>();
  } else {
    x = std::move(spare_.back());
    spare_.pop_back();
  }
  return x.get();
}

void Exchanges::finish(uint32_t slot) {
  if (slot >= by_slot_.size() || !by_slot_[slot]) return;
  std::unique_ptr<Exchange> x = std::move(by_slot_[slot]);
  *x = Exchange{};
  // As many spares as a busy moment needed, up to a bound.
  if (spare_.size() < 1024) spare_.push_back(std::move(x));
}

// ---- the request descriptor ----------------------------------------------------

size_t descriptor_size(const RequestHead& head) {
  size_t words = kFixedWords + 4 * static_cast<size_t>(head.header_count);
  return (words * 4 + head_bytes(head) + 3) & ~size_t{3};
}

size_t head_bytes(const RequestHead& head) {
  size_t end = head.target.offset + head.target.length;
  if (head.header_count > 0) {
    const HeaderSpan& last = head.headers[head.header_count - 1];
    end = std::max<size_t>(end, last.value.offset + last.value.length);
    end = std::max<size_t>(end, last.name.offset + last.name.length);
  }
  return end;
}

void write_descriptor(const RequestHead& head, uint32_t listener_slot, uint32_t listener_gen,
                      uint8_t* out) {
  uint32_t* words = reinterpret_cast<uint32_t*>(out);
  uint32_t flags = 0;
  if (head.keep_alive) flags |= kFlagKeepAlive;
  if (head.method_is_head) flags |= kFlagHead;
  if (head.expect_continue) flags |= kFlagExpectContinue;
  if (head.upgrade) flags |= kFlagUpgrade;
  if (head.framing == BodyFraming::kChunked) flags |= kFlagChunked;
  if (head.framing == BodyFraming::kLength) flags |= kFlagLength;
  words[kListenerSlot] = listener_slot;
  words[kListenerGen] = listener_gen;
  words[kFlags] = flags | static_cast<uint32_t>(head.version_minor) << 8;
  words[kLengthLow] = static_cast<uint32_t>(head.content_length);
  words[kLengthHigh] = static_cast<uint32_t>(head.content_length >> 32);
  words[kMethodOffset] = head.method.offset;
  words[kMethodLength] = head.method.length;
  words[kTargetOffset] = head.target.offset;
  words[kTargetLength] = head.target.length;
  words[kHeaderCount] = head.header_count;
  uint32_t* spans = words + kFixedWords;
  for (uint32_t i = 0; i < head.header_count; i++) {
    const HeaderSpan& h = head.headers[i];
    spans[4 * i] = h.name.offset;
    spans[4 * i + 1] = h.name.length;
    spans[4 * i + 2] = h.value.offset;
    spans[4 * i + 3] = h.value.length;
  }
  std::memcpy(spans + 4 * head.header_count, head.base, head_bytes(head));
}

// ---- the response --------------------------------------------------------------

void append_number(std::string* out, uint64_t value, unsigned base) {
  char digits[20];
  size_t n = 0;
  do {
    digits[n++] = "0123456789abcdef"[value % base];
    value /= base;
  } while (value > 0);
  while (n > 0) out->push_back(digits[--n]);
}

std::string_view DateHeader::get() {
  time_t now = time(nullptr);
  if (now != second_) {
    second_ = now;
    struct tm utc;
#ifdef _WIN32
    gmtime_s(&utc, &now);
#else
    gmtime_r(&now, &utc);
#endif
    length_ = strftime(line_, sizeof(line_), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &utc);
  }
  return {line_, length_};
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool has_body(int status, const Exchange& x) {
  return !x.head_only && status >= 200 && status != 204 && status != 304;
}

void format_response_head(const ResponseHead& head, Exchange* x, int64_t body_length,
                          DateHeader* date, std::string* out) {
  // A response that ends before its request's body was read closes the
  // connection: the rest of that body is not waited for.
  bool ends_early = body_length >= 0 && !x->message_done;
  bool keep_alive = x->keep_alive && !head.close && !ends_early;
  bool framed = head.status >= 200 && head.status != 204 && head.status != 304;
  out->append(x->version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  append_number(out, static_cast<uint64_t>(head.status), 10);
  out->push_back(' ');
  out->append(head.reason.empty() ? reason_phrase(head.status) : head.reason);
  out->append("\r\n");
  out->append(date->get());
  if (framed && !head.has_length) {
    if (body_length >= 0) {
      out->append("Content-Length: ");
      append_number(out, static_cast<uint64_t>(body_length), 10);
      out->append("\r\n");
    } else if (x->version_minor >= 1) {
      out->append("Transfer-Encoding: chunked\r\n");
      x->chunked = !x->head_only;
    } else {
      // HTTP/1.0 knows no chunks: the close ends the body.
      keep_alive = false;
      x->close_delimited = true;
    }
  }
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (x->version_minor == 0) {
    out->append("Connection: keep-alive\r\n");
  }
  x->keep_alive = keep_alive;
  out->append(head.headers);
  out->append("\r\n");
}

std::string_view error_response(int status) {
  switch (status) {
    case 408:
      return "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    case 413:
      return "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    case 431:
      return "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: "
             "close\r\n\r\n";
    case 505:
      return "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: "
             "close\r\n\r\n";
    default:
      return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  }
}

}  // namespace reactor::http
