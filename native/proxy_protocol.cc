// The PROXY protocol parser (proxy_protocol.h), after HAProxy's
// doc/proxy-protocol.txt: strict where the spec is (v1's single spaces, no
// leading zeros, CRLF only; v2's version, command, family and protocol
// nibbles), lenient where it says to be (v1 UNKNOWN's rest of line, v2 LOCAL's
// address block, TLVs).
#include "proxy_protocol.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace reactor {
namespace proxy {
namespace {

constexpr uint8_t kSignatureV1[] = {'P', 'R', 'O', 'X', 'Y'};
constexpr uint8_t kSignatureV2[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr uint8_t kProtocolStream = 0x1;
constexpr uint8_t kProtocolDatagram = 0x2;
constexpr size_t kUnixPathBytes = 108;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number of 1 to max_digits digits, no leading zero (the spec
// forbids them: they could be read as octal), at most max.
bool parse_decimal(const std::string& text, size_t max_digits, int max, int* out) {
  if (text.empty() || text.size() > max_digits) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  int value = 0;
  for (char c : text) {
    if (!is_digit(c)) return false;
    value = value * 10 + (c - '0');
  }
  if (value > max) return false;
  *out = value;
  return true;
}

// Exactly four decimal numbers 0-255 separated by single dots.
bool parse_ipv4(const std::string& text, SocketAddress* out) {
  size_t start = 0;
  for (int part = 0; part < 4; part++) {
    size_t dot = part < 3 ? text.find('.', start) : text.size();
    if (dot == std::string::npos) return false;
    int value;
    if (!parse_decimal(text.substr(start, dot - start), 3, 255, &value)) return false;
    start = dot + 1;
  }
  out->family = SocketAddress::kIPv4;
  out->address = text;  // already canonical: what the checks above allow is
  return true;
}

bool parse_ipv6(const std::string& text, SocketAddress* out) {
  in6_addr address;
  if (text.empty() || inet_pton(AF_INET6, text.c_str(), &address) != 1) return false;
  char canonical[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, &address, canonical, sizeof canonical)) return false;
  out->family = SocketAddress::kIPv6;
  out->address = canonical;
  return true;
}

// Splits on single spaces; an empty field (two spaces in a row, or one at
// either end) makes it fail.
bool split_fields(const std::string& text, std::string* fields, size_t count) {
  size_t start = 0;
  for (size_t i = 0; i < count; i++) {
    size_t space = i + 1 < count ? text.find(' ', start) : text.size();
    if (space == std::string::npos || space == start) return false;
    fields[i] = text.substr(start, space - start);
    start = space + 1;
  }
  return fields[count - 1].find(' ') == std::string::npos;
}

uint16_t read_u16(const uint8_t* at) { return static_cast<uint16_t>(at[0] << 8 | at[1]); }

void format_ip(int family, const uint8_t* bytes, uint16_t port, SocketAddress* out) {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes, text, sizeof text);
  out->family = family == AF_INET ? SocketAddress::kIPv4 : SocketAddress::kIPv6;
  out->address = text;
  out->port = port;
}

// A sun_path as sent: up to its first NUL (an abstract name reads as empty).
void format_unix(const uint8_t* bytes, SocketAddress* out) {
  const auto* begin = reinterpret_cast<const char*>(bytes);
  out->family = SocketAddress::kUnix;
  out->address.assign(begin, strnlen(begin, kUnixPathBytes));
  out->port = 0;
}

}  // namespace

Status Parser::feed(const uint8_t* data, size_t length, size_t* consumed) {
  *consumed = 0;
  if (reason_ != Reject::kNone) return Status::kRejected;
  size_t i = 0;
  while (i < length) {
    if (version_ == 2 && total_ > 0 && seen_ >= keep_) {
      // TLVs (and addresses nobody uses): counted, not kept.
      size_t skip = std::min(length - i, total_ - seen_);
      seen_ += skip;
      i += skip;
      if (seen_ < total_) break;
      decode_v2_addresses();
      *consumed = i;
      return Status::kDone;
    }
    uint8_t byte = data[i++];
    Status status;
    if (version_ == 0) {
      status = take_signature_byte(byte);
    } else if (version_ == 1) {
      status = take_v1_byte(byte);
    } else {
      buffer_[seen_++] = byte;
      status = seen_ == kV2Fixed ? check_v2_prefix() : Status::kNeedMore;
      if (status == Status::kNeedMore && total_ > 0 && seen_ == total_) {
        decode_v2_addresses();
        status = Status::kDone;
      }
    }
    if (status != Status::kNeedMore) {
      *consumed = i;
      return status;
    }
  }
  *consumed = length;
  return Status::kNeedMore;
}

Status Parser::reject(Reject why) {
  reason_ = why;
  return Status::kRejected;
}

// The first byte picks the only signature it can start; a byte that differs
// from it means the connection did not begin with a PROXY header at all.
Status Parser::take_signature_byte(uint8_t byte) {
  buffer_[seen_++] = byte;
  const uint8_t* signature;
  size_t size;
  int version;
  if (buffer_[0] == kSignatureV1[0]) {
    signature = kSignatureV1;
    size = sizeof kSignatureV1;
    version = 1;
  } else {
    signature = kSignatureV2;
    size = sizeof kSignatureV2;
    version = 2;
  }
  if (byte != signature[seen_ - 1]) return reject(Reject::kMissing);
  if (seen_ == size) version_ = version;
  return Status::kNeedMore;
}

Status Parser::take_v1_byte(uint8_t byte) {
  if (seen_ == kMaxLineV1) return reject(Reject::kTooLarge);
  buffer_[seen_++] = byte;
  bool after_cr = buffer_[seen_ - 2] == '\r';
  if (byte == '\n') return after_cr ? parse_v1_line() : reject(Reject::kMalformed);
  // A CR must start the CRLF; a lone one never ends the line.
  return after_cr ? reject(Reject::kMalformed) : Status::kNeedMore;
}

// "PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>"
// or "PROXY UNKNOWN[ anything]", without its CRLF.
Status Parser::parse_v1_line() {
  std::string line(reinterpret_cast<const char*>(buffer_), seen_ - 2);
  if (line.compare(0, 6, "PROXY ") != 0) return reject(Reject::kMalformed);
  std::string rest = line.substr(6);
  header_.version = 1;
  if (rest.compare(0, 7, "UNKNOWN") == 0 && (rest.size() == 7 || rest[7] == ' ')) {
    return Status::kDone;  // the socket's own addresses stand
  }
  bool v4 = rest.compare(0, 5, "TCP4 ") == 0;
  if (!v4 && rest.compare(0, 5, "TCP6 ") != 0) return reject(Reject::kMalformed);
  std::string fields[4];
  if (!split_fields(rest.substr(5), fields, 4)) return reject(Reject::kMalformed);
  auto parse_ip = v4 ? parse_ipv4 : parse_ipv6;
  if (!parse_ip(fields[0], &header_.source) || !parse_ip(fields[1], &header_.destination) ||
      !parse_decimal(fields[2], 5, 65535, &header_.source.port) ||
      !parse_decimal(fields[3], 5, 65535, &header_.destination.port)) {
    header_ = Header{};
    return reject(Reject::kMalformed);
  }
  header_.proxied = true;
  return Status::kDone;
}

Status Parser::check_v2_prefix() {
  uint8_t version = buffer_[12] >> 4;
  uint8_t command = buffer_[12] & 0x0F;
  uint8_t family = buffer_[13] >> 4;
  uint8_t protocol = buffer_[13] & 0x0F;
  size_t length = read_u16(buffer_ + 14);
  if (version != 2) return reject(Reject::kMalformed);
  if (command != kCommandLocal && command != kCommandProxy) return reject(Reject::kMalformed);
  total_ = kV2Fixed + length;
  if (total_ > max_header_) return reject(Reject::kTooLarge);
  header_.version = 2;
  keep_ = kV2Fixed;
  // LOCAL: the block, family included, is ignored (a proxy's health check).
  if (command == kCommandLocal) return Status::kNeedMore;
  if (family > kFamilyUnix || protocol > kProtocolDatagram) return reject(Reject::kMalformed);
  size_t addresses = family == kFamilyInet    ? 12
                     : family == kFamilyInet6 ? 36
                     : family == kFamilyUnix  ? 2 * kUnixPathBytes
                                              : 0;
  if (protocol == 0) addresses = 0;  // UNSPEC: address information is ignored
  if (length < addresses) return reject(Reject::kMalformed);
  // Datagrams cannot be what reached a stream socket: as the spec says of
  // valid combinations a receiver does not support, it falls back to UNSPEC.
  header_.proxied = addresses > 0 && protocol == kProtocolStream;
  if (header_.proxied) keep_ += addresses;
  return Status::kNeedMore;
}

void Parser::decode_v2_addresses() {
  if (!header_.proxied) return;
  const uint8_t* at = buffer_ + kV2Fixed;
  switch (buffer_[13] >> 4) {
    case kFamilyInet:
      format_ip(AF_INET, at, read_u16(at + 8), &header_.source);
      format_ip(AF_INET, at + 4, read_u16(at + 10), &header_.destination);
      break;
    case kFamilyInet6:
      format_ip(AF_INET6, at, read_u16(at + 32), &header_.source);
      format_ip(AF_INET6, at + 16, read_u16(at + 34), &header_.destination);
      break;
    default:
      format_unix(at, &header_.source);
      format_unix(at + kUnixPathBytes, &header_.destination);
      break;
  }
}

}  // namespace proxy
}  // namespace reactor
