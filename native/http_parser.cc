// The request parser's state machine. Rules follow Node's default llhttp
// (9.x, strict) unless a comment says why not; the differential fuzzer
// (test/http-parser-fuzz.test.ts) checks them against node:http.
#include "http_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace reactor::http {

namespace {

using Table = std::array<bool, 256>;

constexpr bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(int c) { return c >= '0' && c <= '9'; }
constexpr bool is_one_of(int c, std::string_view set) {
  return c != 0 && set.find(static_cast<char>(c)) != std::string_view::npos;
}

// tchar (RFC 9110): method names, field names, transfer codings, chunk
// extension names and values.
constexpr Table make_token_table() {
  Table t{};
  for (int c = 0; c < 256; c++) {
    t[c] = is_alpha(c) || is_digit(c) || is_one_of(c, "!#$%&'*+-.^_`|~");
  }
  return t;
}

// A request target: any visible ASCII (llhttp's strict URL characters);
// spaces end it, controls and bytes >= 0x80 are refused.
constexpr Table make_target_table() {
  Table t{};
  for (int c = 0x21; c <= 0x7e; c++) t[c] = true;
  return t;
}

// field-value characters: SP, HTAB, visible ASCII and obs-text (>= 0x80);
// every other control, DEL and a bare CR or LF are refused.
constexpr Table make_field_value_table() {
  Table t{};
  for (int c = 0x20; c <= 0x7e; c++) t[c] = true;
  for (int c = 0x80; c <= 0xff; c++) t[c] = true;
  t['\t'] = true;
  return t;
}

// The authority of an absolute-form target: unreserved, sub-delims, ':',
// '@', '[', ']' (IPv6) and '%' (pct-encoded).
constexpr Table make_authority_table() {
  Table t{};
  for (int c = 0; c < 256; c++) {
    t[c] = is_alpha(c) || is_digit(c) || is_one_of(c, "-._~!$&'()*+,;=:@[]%");
  }
  return t;
}

constexpr Table kToken = make_token_table();
constexpr Table kTargetChar = make_target_table();
constexpr Table kFieldValueChar = make_field_value_table();
constexpr Table kAuthorityChar = make_authority_table();

// The request methods llhttp knows (node:http's METHODS), the usual ones
// first. An unknown method is a 400, as in node:http.
constexpr std::string_view kMethods[] = {
    "GET",     "POST",     "HEAD",      "PUT",        "DELETE",     "OPTIONS", "PATCH",
    "CONNECT", "TRACE",    "ACL",       "BIND",       "CHECKOUT",   "COPY",    "LINK",
    "LOCK",    "M-SEARCH", "MERGE",     "MKACTIVITY", "MKCALENDAR", "MKCOL",   "MOVE",
    "NOTIFY",  "PROPFIND", "PROPPATCH", "PURGE",      "QUERY",      "REBIND",  "REPORT",
    "SEARCH",  "SOURCE",   "SUBSCRIBE", "UNBIND",     "UNLINK",     "UNLOCK",  "UNSUBSCRIBE",
};
constexpr size_t kLongestMethod = 11;

bool equals_ignoring_case(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    if (c != lower[i]) return false;
  }
  return true;
}

// How llhttp reads the values it interprets (Content-Length,
// Transfer-Encoding, Connection): whitespace before a value or list element
// is skipped, but only spaces after one; a trailing tab makes the element
// something else ("chunked\t" is not chunked, "6\t" is not a length).
std::string_view trim_like_llhttp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Calls `fn` with each element of a comma-separated list, trimmed; empty
// elements included (where one sits decides a Transfer-Encoding).
template <typename Fn>
void for_each_list_element(std::string_view list, Fn fn) {
  for (;;) {
    size_t comma = list.find(',');
    fn(trim_like_llhttp(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// origin-form ("/..."), asterisk-form ("*", and like llhttp anything after
// it), absolute-form ("scheme://authority[/path][?query]"); CONNECT's
// authority-form is any target characters (the server decides what it
// connects to, if anything).
bool target_is_valid(std::string_view target, bool connect) {
  if (connect || target[0] == '/' || target[0] == '*') return true;
  size_t i = 0;
  while (i < target.size() && is_alpha(static_cast<unsigned char>(target[i]))) i++;
  if (i == 0 || target.substr(i, 3) != "://") return false;
  for (i += 3; i < target.size() && target[i] != '/' && target[i] != '?'; i++) {
    if (!kAuthorityChar[static_cast<unsigned char>(target[i])]) return false;
  }
  return true;
}

int hex_value(unsigned char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// qdtext and the byte after a backslash (quoted-pair) in a quoted chunk
// extension value.
bool is_quoted_text(unsigned char c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
         (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}
bool is_quoted_pair_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

constexpr std::string_view kHttpSlash = "HTTP/";

}  // namespace

RequestParser::RequestParser(const Limits& limits) : limits_(limits) { start_message(); }

void RequestParser::start_message() {
  state_ = State::kStart;
  in_trailers_ = false;
  pos_ = 0;
  head_is_split_ = false;
  split_fill_ = 0;
  has_content_length_ = false;
  has_transfer_encoding_ = false;
  last_coding_is_chunked_ = false;
  chunked_codings_ = 0;
  connection_close_ = false;
  connection_keep_alive_ = false;
  connection_upgrade_ = false;
  has_upgrade_ = false;
  body_remaining_ = 0;
  body_total_ = 0;
  chunk_extension_bytes_ = 0;
  trailer_bytes_ = 0;
  headers_.clear();
  head_ = RequestHead();
}

RequestParser::Result RequestParser::fail(int status, const char* reason, size_t consumed) {
  state_ = State::kError;
  error_status_ = status;
  error_reason_ = reason;
  return {Event::kError, consumed};
}

RequestParser::HeadScan RequestParser::scan_error(int status, const char* reason) {
  state_ = State::kError;
  error_status_ = status;
  error_reason_ = reason;
  return HeadScan::kError;
}

RequestParser::Result RequestParser::parse(const char* data, size_t length) {
  switch (state_) {
    case State::kBodyLength: {
      if (length == 0) return {Event::kNeedMore, 0};
      size_t n = static_cast<size_t>(std::min<uint64_t>(body_remaining_, length));
      body_remaining_ -= n;
      if (body_remaining_ == 0) state_ = State::kMessageDone;
      return {Event::kBody, n, data, n};
    }
    case State::kChunkSize:
    case State::kChunkExtensionName:
    case State::kChunkExtensionValueStart:
    case State::kChunkExtensionToken:
    case State::kChunkExtensionQuoted:
    case State::kChunkExtensionQuotedPair:
    case State::kChunkExtensionAfterQuoted:
    case State::kChunkSizeLf:
    case State::kChunkData:
    case State::kChunkDataCr:
    case State::kChunkDataLf:
      return parse_chunked(data, length);
    case State::kMessageDone:
      start_message();
      return {Event::kMessageComplete, 0};
    case State::kUpgraded:
      return {Event::kUpgraded, 0};
    case State::kError:
      return {Event::kError, 0};
    default:
      return in_trailers_ ? parse_trailers(data, length) : parse_head(data, length);
  }
}

RequestParser::Result RequestParser::parse_head(const char* data, size_t length) {
  size_t skipped = 0;
  if (state_ == State::kStart) {
    // Like llhttp, empty lines (CRLF or LF) before a request are skipped.
    while (skipped < length && (data[skipped] == '\r' || data[skipped] == '\n')) skipped++;
    if (skipped == length) return {Event::kNeedMore, length};
    state_ = State::kMethod;
    token_start_ = 0;
  }
  const uint32_t limit = limits_.max_head_bytes;
  if (!head_is_split_) {
    const char* base = data + skipped;
    uint32_t end = static_cast<uint32_t>(std::min<size_t>(length - skipped, limit));
    HeadScan scan = scan_lines(base, end);
    if (scan == HeadScan::kError) return {Event::kError, skipped + pos_};
    if (scan == HeadScan::kComplete) {
      head_.base = base;
      if (!finish_head()) return {Event::kError, skipped + pos_};
      return {Event::kHead, skipped + pos_};
    }
    if (end == limit) return fail(431, "request head larger than max_head_bytes", length);
    if (!split_head_) split_head_.reset(new char[limit]);
    std::memcpy(split_head_.get(), base, end);
    split_fill_ = end;
    head_is_split_ = true;
    return {Event::kNeedMore, length};
  }
  const uint32_t before = split_fill_;
  const uint32_t n = static_cast<uint32_t>(std::min<size_t>(length, limit - split_fill_));
  std::memcpy(split_head_.get() + split_fill_, data, n);
  split_fill_ += n;
  HeadScan scan = scan_lines(split_head_.get(), split_fill_);
  if (scan == HeadScan::kError) return {Event::kError, pos_ > before ? pos_ - before : 0};
  if (scan == HeadScan::kComplete) {
    head_.base = split_head_.get();
    if (!finish_head()) return {Event::kError, pos_ - before};
    return {Event::kHead, pos_ - before};
  }
  if (split_fill_ == limit) return fail(431, "request head larger than max_head_bytes", n);
  return {Event::kNeedMore, length};
}

RequestParser::HeadScan RequestParser::scan_lines(const char* base, uint32_t end) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(base);
  uint32_t p = pos_;
  while (p < end) {
    unsigned char c = bytes[p];
    switch (state_) {
      case State::kMethod:
        while (kToken[c] && p - token_start_ < kLongestMethod) {
          if (++p == end) break;
          c = bytes[p];
        }
        if (p == end) break;
        if (c != ' ') return scan_error(400, "invalid method");
        if (!finish_method(base, p)) return HeadScan::kError;
        state_ = State::kSpacesBeforeTarget;
        p++;
        break;
      case State::kSpacesBeforeTarget:
        // llhttp accepts several spaces here and before the version.
        if (c == ' ') {
          p++;
        } else {
          token_start_ = p;
          state_ = State::kTarget;
        }
        break;
      case State::kTarget:
        while (p < end && kTargetChar[bytes[p]]) p++;
        if (p == end) break;
        // A CR or LF here would be an HTTP/0.9 request line, refused (505).
        if (bytes[p] == '\r' || bytes[p] == '\n') {
          return scan_error(505, "HTTP/0.9 request line (no version)");
        }
        if (bytes[p] != ' ' || p == token_start_) return scan_error(400, "invalid request target");
        if (!finish_target(base, p)) return HeadScan::kError;
        state_ = State::kSpacesBeforeVersion;
        p++;
        break;
      case State::kSpacesBeforeVersion:
        if (c == ' ') {
          p++;
        } else {
          version_index_ = 0;
          state_ = State::kVersion;
        }
        break;
      case State::kVersion:
        // "HTTP/" DIGIT "." DIGIT CR, one byte per step: it may be split.
        if (version_index_ < kHttpSlash.size()) {
          if (c != kHttpSlash[version_index_]) return scan_error(400, "invalid HTTP version");
        } else if (version_index_ == 5) {
          if (!is_digit(c)) return scan_error(400, "invalid HTTP version");
          version_major_ = static_cast<uint8_t>(c - '0');
        } else if (version_index_ == 6) {
          if (c != '.') return scan_error(400, "invalid HTTP version");
        } else if (version_index_ == 7) {
          if (!is_digit(c)) return scan_error(400, "invalid HTTP version");
          head_.version_minor = static_cast<uint8_t>(c - '0');
          if (version_major_ != 1 || head_.version_minor > 1) {
            return scan_error(505, "HTTP version not supported");
          }
        } else {
          if (c != '\r') return scan_error(400, "expected CRLF after the HTTP version");
          state_ = State::kRequestLineLf;
        }
        version_index_++;
        p++;
        break;
      case State::kRequestLineLf:
        if (c != '\n') return scan_error(400, "expected LF after CR");
        state_ = State::kFieldLineStart;
        p++;
        break;
      case State::kFieldLineStart:
        if (c == '\r') {
          state_ = State::kFieldsEndLf;
          p++;
        } else if (kToken[c]) {
          token_start_ = p;
          state_ = State::kFieldName;
        } else if (c == ' ' || c == '\t') {
          return scan_error(400, "obs-fold or whitespace before a field name");
        } else {
          return scan_error(400, "invalid field name");
        }
        break;
      case State::kFieldName:
        while (p < end && kToken[bytes[p]]) p++;
        if (p == end) break;
        if (bytes[p] != ':') return scan_error(400, "invalid field name");
        field_name_ = {token_start_, p - token_start_};
        state_ = State::kFieldValueStart;
        p++;
        break;
      case State::kFieldValueStart:
        if (c == ' ' || c == '\t') {
          p++;
        } else {
          token_start_ = p;
          state_ = State::kFieldValue;
        }
        break;
      case State::kFieldValue: {
        while (p < end && kFieldValueChar[bytes[p]]) p++;
        if (p == end) break;
        if (bytes[p] != '\r') return scan_error(400, "invalid character in a field value");
        if (!in_trailers_) {
          field_raw_end_ = p;
          uint32_t value_end = p;
          while (value_end > token_start_ &&
                 (base[value_end - 1] == ' ' || base[value_end - 1] == '\t')) {
            value_end--;
          }
          field_value_ = {token_start_, value_end - token_start_};
        }
        state_ = State::kFieldValueLf;
        p++;
        break;
      }
      case State::kFieldValueLf:
        if (c != '\n') return scan_error(400, "expected LF after CR");
        if (!finish_field(base)) return HeadScan::kError;
        state_ = State::kFieldLineStart;
        p++;
        break;
      case State::kFieldsEndLf:
        if (c != '\n') return scan_error(400, "expected LF after CR");
        pos_ = p + 1;
        return HeadScan::kComplete;
      default:
        return scan_error(400, "parser state out of place");
    }
  }
  pos_ = p;
  return HeadScan::kNeedMore;
}

bool RequestParser::finish_method(const char* base, uint32_t end) {
  std::string_view method(base + token_start_, end - token_start_);
  for (std::string_view known : kMethods) {
    if (method == known) {
      head_.method = {token_start_, end - token_start_};
      head_.method_is_head = method == "HEAD";
      return true;
    }
  }
  scan_error(400, "unknown method");
  return false;
}

bool RequestParser::finish_target(const char* base, uint32_t end) {
  head_.target = {token_start_, end - token_start_};
  std::string_view method(base + head_.method.offset, head_.method.length);
  if (!target_is_valid(std::string_view(base + token_start_, end - token_start_),
                       method == "CONNECT")) {
    scan_error(400, "invalid request target");
    return false;
  }
  return true;
}

bool RequestParser::finish_field(const char* base) {
  if (in_trailers_) return true;
  headers_.push_back({field_name_, field_value_});
  std::string_view name(base + field_name_.offset, field_name_.length);
  // What node:http reports is trimmed of all whitespace; what it interprets
  // only of leading whitespace and trailing spaces.
  std::string_view value = trim_like_llhttp(
      std::string_view(base + field_value_.offset, field_raw_end_ - field_value_.offset));
  switch (name.size()) {
    case 14:
      if (!equals_ignoring_case(name, "content-length")) break;
      if (has_content_length_) {
        scan_error(400, "duplicate Content-Length");
        return false;
      }
      has_content_length_ = true;
      if (value.empty()) {
        scan_error(400, "invalid Content-Length");
        return false;
      }
      head_.content_length = 0;
      for (char ch : value) {
        uint64_t digit = static_cast<uint64_t>(ch - '0');
        if (!is_digit(ch) || head_.content_length > (UINT64_MAX - digit) / 10) {
          scan_error(400, "invalid Content-Length");
          return false;
        }
        head_.content_length = head_.content_length * 10 + digit;
      }
      break;
    case 17:
      if (!equals_ignoring_case(name, "transfer-encoding")) break;
      has_transfer_encoding_ = true;
      for_each_list_element(value, [this](std::string_view coding) {
        last_coding_is_chunked_ = equals_ignoring_case(coding, "chunked");
        if (last_coding_is_chunked_) chunked_codings_++;
      });
      break;
    case 10:
      if (!equals_ignoring_case(name, "connection")) break;
      for_each_list_element(value, [this](std::string_view option) {
        if (equals_ignoring_case(option, "close")) connection_close_ = true;
        if (equals_ignoring_case(option, "keep-alive")) connection_keep_alive_ = true;
        if (equals_ignoring_case(option, "upgrade")) connection_upgrade_ = true;
      });
      break;
    case 7:
      if (equals_ignoring_case(name, "upgrade")) has_upgrade_ = true;
      break;
    case 6:
      if (equals_ignoring_case(name, "expect") && equals_ignoring_case(value, "100-continue")) {
        head_.expect_continue = true;
      }
      break;
    default:
      break;
  }
  return true;
}

bool RequestParser::finish_head() {
  head_.headers = headers_.data();
  head_.header_count = static_cast<uint32_t>(headers_.size());
  if (has_transfer_encoding_) {
    if (has_content_length_) {
      fail(400, "Content-Length with Transfer-Encoding", 0);
      return false;
    }
    // chunked must be the final coding, once: anything else leaves the body's
    // end unknowable in a request.
    if (!last_coding_is_chunked_ || chunked_codings_ != 1) {
      fail(400, "Transfer-Encoding does not end with chunked", 0);
      return false;
    }
    head_.framing = BodyFraming::kChunked;
  } else if (has_content_length_ && head_.content_length > 0) {
    if (head_.content_length > limits_.max_body_bytes) {
      fail(413, "Content-Length over max_body_bytes", 0);
      return false;
    }
    head_.framing = BodyFraming::kLength;
  }
  head_.keep_alive = !connection_close_ && (head_.version_minor == 1 || connection_keep_alive_);
  bool connect = head_.view(head_.method) == "CONNECT";
  head_.upgrade = connect || (has_upgrade_ && connection_upgrade_);
  if (head_.upgrade) {
    state_ = State::kUpgraded;
  } else if (head_.framing == BodyFraming::kLength) {
    body_remaining_ = head_.content_length;
    state_ = State::kBodyLength;
  } else if (head_.framing == BodyFraming::kChunked) {
    body_remaining_ = 0;
    chunk_size_digits_ = false;
    state_ = State::kChunkSize;
  } else {
    state_ = State::kMessageDone;
  }
  return true;
}

RequestParser::Result RequestParser::parse_chunked(const char* data, size_t length) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < length) {
    unsigned char c = bytes[i];
    bool extension_byte = false;
    switch (state_) {
      case State::kChunkSize: {
        int digit = hex_value(c);
        if (digit >= 0) {
          if (body_remaining_ > (UINT64_MAX >> 4)) return fail(400, "chunk size overflow", i);
          body_remaining_ = (body_remaining_ << 4) | static_cast<uint64_t>(digit);
          chunk_size_digits_ = true;
        } else if (!chunk_size_digits_) {
          return fail(400, "invalid chunk size", i);
        } else if (c == ';') {
          chunk_extension_name_started_ = false;
          state_ = State::kChunkExtensionName;
          extension_byte = true;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else {
          // Strict like llhttp: no whitespace after the size.
          return fail(400, "invalid chunk size", i);
        }
        break;
      }
      // Extensions are skipped, but checked with llhttp's grammar, leniencies
      // included (agreeing with node:http is the point): an empty name before
      // '=' or ';', an empty value, a quoted string right after a token.
      case State::kChunkExtensionName:
        extension_byte = true;
        if (kToken[c]) {
          chunk_extension_name_started_ = true;
        } else if (c == ';') {
          chunk_extension_name_started_ = false;
        } else if (c == '=') {
          state_ = State::kChunkExtensionValueStart;
        } else if (c == '\r' && chunk_extension_name_started_) {
          state_ = State::kChunkSizeLf;
        } else {
          return fail(400, "invalid chunk extension", i);
        }
        break;
      case State::kChunkExtensionValueStart:
      case State::kChunkExtensionToken:
      case State::kChunkExtensionAfterQuoted:
        extension_byte = true;
        if (c == ';') {
          chunk_extension_name_started_ = false;
          state_ = State::kChunkExtensionName;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else if (state_ == State::kChunkExtensionAfterQuoted) {
          return fail(400, "invalid chunk extension", i);
        } else if (c == '"') {
          state_ = State::kChunkExtensionQuoted;
        } else if (kToken[c]) {
          state_ = State::kChunkExtensionToken;
        } else {
          return fail(400, "invalid chunk extension", i);
        }
        break;
      case State::kChunkExtensionQuoted:
        extension_byte = true;
        if (c == '"') {
          state_ = State::kChunkExtensionAfterQuoted;
        } else if (c == '\\') {
          state_ = State::kChunkExtensionQuotedPair;
        } else if (!is_quoted_text(c)) {
          return fail(400, "invalid chunk extension", i);
        }
        break;
      case State::kChunkExtensionQuotedPair:
        extension_byte = true;
        if (!is_quoted_pair_byte(c)) return fail(400, "invalid chunk extension", i);
        state_ = State::kChunkExtensionQuoted;
        break;
      case State::kChunkSizeLf:
        if (c != '\n') return fail(400, "expected LF after CR", i);
        if (body_remaining_ == 0) {
          in_trailers_ = true;
          state_ = State::kFieldLineStart;
          Result rest = parse_trailers(data + i + 1, length - i - 1);
          rest.consumed += i + 1;
          return rest;
        }
        if (body_remaining_ > limits_.max_body_bytes - body_total_) {
          return fail(413, "chunked body over max_body_bytes", i);
        }
        body_total_ += body_remaining_;
        state_ = State::kChunkData;
        break;
      case State::kChunkData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(body_remaining_, length - i));
        body_remaining_ -= n;
        if (body_remaining_ == 0) state_ = State::kChunkDataCr;
        return {Event::kBody, i + n, data + i, n};
      }
      case State::kChunkDataCr:
        if (c != '\r') return fail(400, "expected CRLF after chunk data", i);
        state_ = State::kChunkDataLf;
        break;
      case State::kChunkDataLf:
        if (c != '\n') return fail(400, "expected CRLF after chunk data", i);
        body_remaining_ = 0;
        chunk_size_digits_ = false;
        state_ = State::kChunkSize;
        break;
      default:
        return fail(400, "parser state out of place", i);
    }
    if (extension_byte && ++chunk_extension_bytes_ > limits_.max_chunk_extension_bytes) {
      return fail(413, "chunk extensions over max_chunk_extension_bytes", i);
    }
    i++;
  }
  return {Event::kNeedMore, length};
}

RequestParser::Result RequestParser::parse_trailers(const char* data, size_t length) {
  // Offsets restart with every call: trailer fields are checked, not kept.
  const uint32_t budget = limits_.max_head_bytes - trailer_bytes_;
  const uint32_t end = static_cast<uint32_t>(std::min<size_t>(length, budget));
  pos_ = 0;
  HeadScan scan = scan_lines(data, end);
  if (scan == HeadScan::kError) return {Event::kError, pos_};
  if (scan == HeadScan::kComplete) {
    size_t consumed = pos_;
    start_message();
    return {Event::kMessageComplete, consumed};
  }
  trailer_bytes_ += end;
  if (end == budget) return fail(431, "trailer section larger than max_head_bytes", end);
  return {Event::kNeedMore, length};
}

}  // namespace reactor::http
