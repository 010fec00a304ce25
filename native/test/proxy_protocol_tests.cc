// The PROXY protocol parser (native/proxy_protocol.h): the addresses of v1
// and v2 headers of every kind, that it never consumes a byte past the
// header (the application's first bytes follow it in the same read), that
// where the bytes are split never changes the outcome, and the reason each
// malformed, missing or oversized header is refused with.
#include <string>
#include <vector>

#include "../proxy_protocol.h"
#include "test_framework.h"

namespace {

using namespace std::string_literals;
using reactor::SocketAddress;
using reactor::proxy::Header;
using reactor::proxy::Parser;
using reactor::proxy::Reject;
using reactor::proxy::Status;

struct Outcome {
  Status status = Status::kNeedMore;
  Reject reason = Reject::kNone;
  size_t consumed = 0;  // over all pieces
  Header header;
};

// Feeds the pieces in order until the parser is done or refuses.
Outcome feed_pieces(const std::vector<std::string>& pieces, size_t max_header = 4096) {
  Parser parser(max_header);
  Outcome outcome;
  for (const std::string& piece : pieces) {
    size_t consumed = 0;
    outcome.status =
        parser.feed(reinterpret_cast<const uint8_t*>(piece.data()), piece.size(), &consumed);
    outcome.consumed += consumed;
    if (outcome.status != Status::kNeedMore) break;
  }
  outcome.reason = parser.reason();
  outcome.header = parser.header();
  return outcome;
}

Outcome whole(const std::string& bytes, size_t max_header = 4096) {
  return feed_pieces({bytes}, max_header);
}

Reject refusal(const std::string& bytes, size_t max_header = 4096) {
  Outcome outcome = whole(bytes, max_header);
  return outcome.status == Status::kRejected ? outcome.reason : Reject::kNone;
}

const std::string kSignatureV2 = "\r\n\r\n\0\r\nQUIT\n"s;

// A v2 header: version/command byte, family/protocol byte, then the block.
std::string v2(uint8_t version_command, uint8_t family_protocol, const std::string& block) {
  std::string header = kSignatureV2;
  header += static_cast<char>(version_command);
  header += static_cast<char>(family_protocol);
  header += static_cast<char>(block.size() >> 8);
  header += static_cast<char>(block.size() & 0xff);
  return header + block;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

std::string tlv(uint8_t type, const std::string& value) {
  return bytes({type, static_cast<int>(value.size() >> 8), static_cast<int>(value.size() & 0xff)}) +
         value;
}

// 192.0.2.10:51000 -> 198.51.100.1:443
const std::string kInetBlock = bytes({192, 0, 2, 10, 198, 51, 100, 1, 0xC7, 0x38, 0x01, 0xBB});

std::string unix_path(const std::string& path) {
  std::string field = path;
  field.resize(108, '\0');
  return field;
}

void check_address(const SocketAddress& address, SocketAddress::Family family,
                   const std::string& host, int port) {
  CHECK_EQ(address.family, family);
  CHECK_EQ(address.address, host);
  CHECK_EQ(address.port, port);
}

// The valid headers, each with what it must yield (checked whole and at
// every split point).
struct Valid {
  std::string name;
  std::string header;
  int version;
  bool proxied;
  std::string source;
  int source_port;
};

std::vector<Valid> valid_headers() {
  std::string inet6_block =
      bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    1,    0x20, 0x01,
             0x0d, 0xb8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x30, 0x39, 0x00, 0x50});
  return {
      {"v1 TCP4", "PROXY TCP4 192.0.2.10 198.51.100.1 51000 443\r\n", 1, true, "192.0.2.10", 51000},
      {"v1 TCP6", "PROXY TCP6 2001:DB8::1 2001:db8::2 12345 80\r\n", 1, true, "2001:db8::1", 12345},
      {"v1 TCP6 mapped", "PROXY TCP6 ::ffff:192.0.2.7 ::1 0 65535\r\n", 1, true, "::ffff:192.0.2.7",
       0},
      {"v1 UNKNOWN", "PROXY UNKNOWN\r\n", 1, false, "", 0},
      {"v1 UNKNOWN with addresses", "PROXY UNKNOWN ffff:: ffff:: 65535 65535\r\n", 1, false, "", 0},
      {"v2 PROXY TCP4", v2(0x21, 0x11, kInetBlock), 2, true, "192.0.2.10", 51000},
      {"v2 PROXY TCP6", v2(0x21, 0x21, inet6_block), 2, true, "2001:db8::1", 12345},
      {"v2 PROXY UNIX stream", v2(0x21, 0x31, unix_path("/run/client.sock") + unix_path("/s")), 2,
       true, "/run/client.sock", 0},
      {"v2 PROXY TCP4 with TLVs",
       v2(0x21, 0x11, kInetBlock + tlv(0x01, "h2") + tlv(0x05, std::string(128, 'u'))), 2, true,
       "192.0.2.10", 51000},
      {"v2 LOCAL", v2(0x20, 0x00, ""), 2, false, "", 0},
      {"v2 LOCAL with a block", v2(0x20, 0x11, kInetBlock), 2, false, "", 0},
      {"v2 PROXY AF_UNSPEC", v2(0x21, 0x00, ""), 2, false, "", 0},
      {"v2 PROXY UDP4 (not ours: the socket's addresses)", v2(0x21, 0x12, kInetBlock), 2, false, "",
       0},
  };
}

const std::string kFollowing = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

}  // namespace

TEST(proxy_v1_tcp4_gives_both_addresses_and_stops_at_the_header) {
  std::string header = "PROXY TCP4 192.0.2.10 198.51.100.1 51000 443\r\n";
  Outcome outcome = whole(header + kFollowing);
  REQUIRE(outcome.status == Status::kDone);
  CHECK_EQ(outcome.consumed, header.size());
  CHECK_EQ(outcome.header.version, 1);
  CHECK(outcome.header.proxied);
  check_address(outcome.header.source, SocketAddress::kIPv4, "192.0.2.10", 51000);
  check_address(outcome.header.destination, SocketAddress::kIPv4, "198.51.100.1", 443);
}

TEST(proxy_v1_tcp6_addresses_come_out_canonical) {
  Outcome outcome = whole("PROXY TCP6 2001:DB8:0:0::1 2001:db8::2 12345 80\r\n");
  REQUIRE(outcome.status == Status::kDone);
  check_address(outcome.header.source, SocketAddress::kIPv6, "2001:db8::1", 12345);
  check_address(outcome.header.destination, SocketAddress::kIPv6, "2001:db8::2", 80);
}

TEST(proxy_v1_unknown_keeps_the_sockets_addresses) {
  for (const char* line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ::1 ::2 1 2\r\n",
                           "PROXY UNKNOWN anything at all\r\n"}) {
    Outcome outcome = whole(std::string(line) + "data");
    REQUIRE(outcome.status == Status::kDone);
    CHECK_EQ(outcome.consumed, std::string(line).size());
    CHECK(!outcome.header.proxied);
    CHECK_EQ(outcome.header.source.family, SocketAddress::kNone);
  }
}

TEST(proxy_v2_tcp4_tcp6_and_unix_give_both_addresses) {
  Outcome inet = whole(v2(0x21, 0x11, kInetBlock) + kFollowing);
  REQUIRE(inet.status == Status::kDone);
  CHECK_EQ(inet.consumed, 16 + kInetBlock.size());
  CHECK_EQ(inet.header.version, 2);
  check_address(inet.header.source, SocketAddress::kIPv4, "192.0.2.10", 51000);
  check_address(inet.header.destination, SocketAddress::kIPv4, "198.51.100.1", 443);

  std::string block(36, '\0');
  block[15] = 1;                        // ::1
  block[16] = static_cast<char>(0xfe);  // fe80::2
  block[17] = static_cast<char>(0x80);
  block[31] = 2;
  block[32] = 0x01;  // 256
  block[35] = 0x16;  // 22
  Outcome inet6 = whole(v2(0x21, 0x21, block));
  REQUIRE(inet6.status == Status::kDone);
  check_address(inet6.header.source, SocketAddress::kIPv6, "::1", 256);
  check_address(inet6.header.destination, SocketAddress::kIPv6, "fe80::2", 22);

  Outcome unix_stream = whole(v2(0x21, 0x31, unix_path("/tmp/a.sock") + unix_path("/tmp/b")));
  REQUIRE(unix_stream.status == Status::kDone);
  check_address(unix_stream.header.source, SocketAddress::kUnix, "/tmp/a.sock", 0);
  check_address(unix_stream.header.destination, SocketAddress::kUnix, "/tmp/b", 0);
}

TEST(proxy_v2_local_unspec_and_udp_keep_the_sockets_addresses) {
  for (const std::string& header :
       {v2(0x20, 0x00, ""), v2(0x20, 0x11, kInetBlock), v2(0x20, 0xff, "x"), v2(0x21, 0x00, "abc"),
        v2(0x21, 0x10, ""), v2(0x21, 0x12, kInetBlock)}) {
    Outcome outcome = whole(header + "after");
    REQUIRE(outcome.status == Status::kDone);
    CHECK_EQ(outcome.consumed, header.size());
    CHECK(!outcome.header.proxied);
  }
}

TEST(proxy_v2_tlvs_are_skipped_up_to_the_limit) {
  std::string tlvs = tlv(0x02, "example.com") + tlv(0x20, std::string(300, 's'));
  std::string header = v2(0x21, 0x11, kInetBlock + tlvs);
  Outcome outcome = whole(header + kFollowing);
  REQUIRE(outcome.status == Status::kDone);
  CHECK_EQ(outcome.consumed, header.size());
  check_address(outcome.header.source, SocketAddress::kIPv4, "192.0.2.10", 51000);
  // The limit counts the whole header, TLVs included.
  CHECK(refusal(header, header.size() - 1) == Reject::kTooLarge);
  CHECK(whole(header, header.size()).status == Status::kDone);
  CHECK(refusal(v2(0x21, 0x11, kInetBlock + std::string(65535 - 12, 'x'))) == Reject::kTooLarge);
}

TEST(proxy_every_split_point_gives_the_same_outcome) {
  for (const Valid& valid : valid_headers()) {
    std::string stream = valid.header + kFollowing;
    for (size_t split = 0; split <= stream.size(); split++) {
      Outcome outcome = feed_pieces({stream.substr(0, split), stream.substr(split)});
      CHECK_MSG(outcome.status == Status::kDone, valid.name << " split at " << split);
      CHECK_MSG(outcome.consumed == valid.header.size(), valid.name << " split at " << split);
      CHECK_EQ(outcome.header.version, valid.version);
      CHECK_EQ(outcome.header.proxied, valid.proxied);
      CHECK_EQ(outcome.header.source.address, valid.source);
      CHECK_EQ(outcome.header.source.port, valid.source_port);
    }
    std::vector<std::string> byte_by_byte;
    for (char c : stream) byte_by_byte.emplace_back(1, c);
    Outcome outcome = feed_pieces(byte_by_byte);
    CHECK_MSG(outcome.status == Status::kDone, valid.name << " byte by byte");
    CHECK_MSG(outcome.consumed == valid.header.size(), valid.name << " byte by byte");
    CHECK_EQ(outcome.header.source.address, valid.source);
    // A header cut anywhere short of its end needs more, having taken it all.
    for (size_t cut = 0; cut < valid.header.size(); cut++) {
      Outcome partial = whole(valid.header.substr(0, cut));
      CHECK_MSG(partial.status == Status::kNeedMore, valid.name << " cut at " << cut);
      CHECK_EQ(partial.consumed, cut);
    }
  }
}

TEST(proxy_no_signature_is_missing) {
  CHECK(refusal("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == Reject::kMissing);
  CHECK(refusal("POST / HTTP/1.1\r\n") == Reject::kMissing);  // 'P', then not "ROXY"
  CHECK(refusal("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n") == Reject::kMissing);
  CHECK(refusal("\x16\x03\x01\x02\x00") == Reject::kMissing);  // a TLS ClientHello
  CHECK(refusal("\r\n\r\n\0\r\nQUIX\n"s) == Reject::kMissing);
  CHECK(refusal("\r\n\r\nGET"s) == Reject::kMissing);
  // Refused at the first byte that cannot be a signature's.
  Outcome outcome = whole("PRO");
  CHECK(outcome.status == Status::kNeedMore);
}

TEST(proxy_v1_malformed_lines_are_refused) {
  const char* malformed[] = {
      "PROXY\r\n",
      "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",      // two spaces
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      // trailing space
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         // a port short
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     // one too many
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",       // no such protocol
      "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",       // case matters
      "PROXY UNKNOWNX\r\n",                       //
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",   // port out of range
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",      // leading zero
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",      //
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",      //
      "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",  //
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",     // octet out of range
      "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",      // leading zero: octal?
      "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",         // three octets
      "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",     // five
      "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",        //
      "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",           // IPv6 in TCP4
      "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",           // IPv4 in TCP6
      "PROXY TCP6 ::1::2 ::1 1 2\r\n",            // two double colons
      "PROXY TCP6 12345::1 ::1 1 2\r\n",          // a group of five digits
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         // LF alone
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",     // CR alone
      "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",      //
  };
  for (const char* line : malformed) {
    CHECK_MSG(refusal(line) == Reject::kMalformed, line);
  }
}

TEST(proxy_v1_line_over_107_bytes_is_too_large) {
  std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'f') + "\r\n";
  REQUIRE(longest.size() == 107);
  CHECK(whole(longest).status == Status::kDone);
  std::string longer = "PROXY UNKNOWN " + std::string(107 - 15, 'f') + "\r\n";
  CHECK(refusal(longer) == Reject::kTooLarge);
  // Refused as soon as the 108th byte comes, whatever follows.
  CHECK(refusal("PROXY TCP4 " + std::string(200, '1')) == Reject::kTooLarge);
}

TEST(proxy_v2_malformed_headers_are_refused) {
  CHECK(refusal(v2(0x11, 0x11, kInetBlock)) == Reject::kMalformed);  // version 1 in binary
  CHECK(refusal(v2(0x31, 0x11, kInetBlock)) == Reject::kMalformed);  // version 3
  CHECK(refusal(v2(0x22, 0x11, kInetBlock)) == Reject::kMalformed);  // command 2
  CHECK(refusal(v2(0x2f, 0x11, kInetBlock)) == Reject::kMalformed);  // command 15
  CHECK(refusal(v2(0x21, 0x41, kInetBlock)) == Reject::kMalformed);  // family 4
  CHECK(refusal(v2(0x21, 0x13, kInetBlock)) == Reject::kMalformed);  // protocol 3
  // A length too short for the family's addresses.
  CHECK(refusal(v2(0x21, 0x11, kInetBlock.substr(0, 11))) == Reject::kMalformed);
  CHECK(refusal(v2(0x21, 0x21, std::string(35, '\0'))) == Reject::kMalformed);
  CHECK(refusal(v2(0x21, 0x31, std::string(215, '\0'))) == Reject::kMalformed);
  // Refused from the fixed 16 bytes alone: nothing of the block is awaited.
  std::string fixed = v2(0x22, 0x11, kInetBlock).substr(0, 16);
  CHECK(refusal(fixed) == Reject::kMalformed);
}

TEST(proxy_a_refused_parser_stays_refused) {
  Parser parser;
  size_t consumed = 0;
  const std::string bad = "GET /";
  CHECK(parser.feed(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), &consumed) ==
        Status::kRejected);
  const std::string good = "PROXY UNKNOWN\r\n";
  CHECK(parser.feed(reinterpret_cast<const uint8_t*>(good.data()), good.size(), &consumed) ==
        Status::kRejected);
  CHECK_EQ(consumed, size_t{0});
  CHECK(parser.reason() == Reject::kMissing);
}
