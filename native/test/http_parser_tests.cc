// The HTTP/1.1 request parser (native/http_parser.h): what it reports for
// valid requests, the status it gives each request-smuggling and syntax rule
// node:http's llhttp enforces, its limits, and that where the bytes are split
// never changes what it parses (every split point of a set of streams, byte
// by byte, and random splits of random mutations).
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "http_feed.h"
#include "test_framework.h"

namespace {

using namespace std::string_literals;
using http_test::End;
using http_test::feed;
using http_test::Parsed;
using reactor::http::BodyFraming;
using reactor::http::Limits;
using reactor::http::RequestParser;

Parsed whole(const std::string& bytes, const Limits& limits = Limits()) {
  return feed({bytes}, limits);
}

std::vector<std::string> byte_by_byte(const std::string& bytes) {
  std::vector<std::string> pieces;
  for (char c : bytes) pieces.emplace_back(1, c);
  return pieces;
}

// The status a stream is refused with (0 when it is not).
int refusal(const std::string& bytes, const Limits& limits = Limits()) {
  Parsed parsed = whole(bytes, limits);
  return parsed.end == End::kError ? parsed.status : 0;
}

const std::string kGet = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";

std::string chunked_post(const std::string& chunks) {
  return "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks;
}

// Requests every rule test starts from: valid, with one thing changed.
std::string with_header(const std::string& field_lines, const std::string& body = "") {
  return "POST / HTTP/1.1\r\nHost: a\r\n" + field_lines + "\r\n" + body;
}

}  // namespace

TEST(http_parser_reports_the_request_line_and_headers) {
  Parsed parsed = whole(kGet);
  REQUIRE(parsed.requests.size() == 1);
  const auto& request = parsed.requests[0];
  CHECK_EQ(request.method, std::string("GET"));
  CHECK_EQ(request.target, std::string("/index.html?q=1"));
  CHECK_EQ(request.version_minor, 1);
  REQUIRE(request.headers.size() == 2);
  CHECK_EQ(request.headers[0].first, std::string("Host"));
  CHECK_EQ(request.headers[0].second, std::string("example.com"));
  CHECK_EQ(request.headers[1].second, std::string("*/*"));
  CHECK(request.framing == BodyFraming::kNone);
  CHECK(request.keep_alive);
  CHECK(request.complete);
  CHECK(parsed.end == End::kBoundary);
}

TEST(http_parser_spans_point_into_the_bytes_of_a_head_read_at_once) {
  RequestParser parser;
  RequestParser::Result r = parser.parse(kGet.data(), kGet.size());
  REQUIRE(r.event == RequestParser::Event::kHead);
  CHECK_EQ(r.consumed, kGet.size());
  CHECK(parser.head().base == kGet.data());
  std::string body_request = with_header("Content-Length: 5\r\n", "hello");
  RequestParser body_parser;
  r = body_parser.parse(body_request.data(), body_request.size());
  REQUIRE(r.event == RequestParser::Event::kHead);
  r = body_parser.parse(body_request.data() + r.consumed, body_request.size() - r.consumed);
  REQUIRE(r.event == RequestParser::Event::kBody);
  CHECK(r.data == body_request.data() + body_request.size() - 5);  // No copy.
  CHECK_EQ(r.length, 5u);
}

TEST(http_parser_trims_field_values_and_keeps_obs_text) {
  Parsed parsed = whole("GET / HTTP/1.1\r\nA:\t b c \t\r\nB:\r\nC: \xff\x80\r\nD:x\r\n\r\n");
  REQUIRE(parsed.requests.size() == 1);
  const auto& h = parsed.requests[0].headers;
  REQUIRE(h.size() == 4);
  CHECK_EQ(h[0].second, std::string("b c"));
  CHECK_EQ(h[1].second, std::string(""));
  CHECK_EQ(h[2].second, std::string("\xff\x80"));
  CHECK_EQ(h[3].second, std::string("x"));
}

TEST(http_parser_decides_keep_alive_from_version_and_connection) {
  CHECK(whole("GET / HTTP/1.1\r\n\r\n").requests[0].keep_alive);
  CHECK(!whole("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").requests[0].keep_alive);
  CHECK(!whole("GET / HTTP/1.0\r\n\r\n").requests[0].keep_alive);
  CHECK(whole("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests[0].keep_alive);
  CHECK(!whole("GET / HTTP/1.0\r\nConnection: keep-alive, CLOSE\r\n\r\n").requests[0].keep_alive);
  // As llhttp reads it: a trailing tab makes the option unknown.
  CHECK(!whole("GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n").requests[0].keep_alive);
  CHECK(whole("GET / HTTP/1.0\r\nConnection:\tkeep-alive  \r\n\r\n").requests[0].keep_alive);
  Parsed http10 = whole("GET / HTTP/1.0\r\n\r\n");
  CHECK_EQ(http10.requests[0].version_minor, 0);
}

TEST(http_parser_reports_upgrade_and_leaves_the_rest_unread) {
  std::string ws =
      "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n\x81\x05";
  Parsed parsed = whole(ws);
  REQUIRE(parsed.requests.size() == 1);
  CHECK(parsed.requests[0].upgrade);
  CHECK(parsed.end == End::kUpgraded);
  RequestParser parser;
  RequestParser::Result r = parser.parse(ws.data(), ws.size());
  CHECK_EQ(r.consumed, ws.size() - 2);  // The frame bytes are the server's.
  CHECK(parser.parse(ws.data() + r.consumed, 2).event == RequestParser::Event::kUpgraded);

  Parsed connect = whole("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  REQUIRE(connect.requests.size() == 1);
  CHECK(connect.requests[0].upgrade);
  CHECK_EQ(connect.requests[0].target, std::string("example.com:443"));
  // Upgrade without Connection: upgrade is an ordinary request.
  CHECK(!whole("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").requests[0].upgrade);
}

TEST(http_parser_reports_expect_continue_and_head) {
  Parsed parsed = whole(with_header("Expect: 100-Continue\r\nContent-Length: 2\r\n", "ok"));
  REQUIRE(parsed.requests.size() == 1);
  CHECK(parsed.requests[0].expect_continue);
  CHECK_EQ(parsed.requests[0].body, std::string("ok"));
  CHECK(!whole(with_header("Expect: 200-ok\r\n")).requests[0].expect_continue);
  CHECK(whole("HEAD / HTTP/1.1\r\n\r\n").requests[0].method_is_head);
  CHECK(!whole(kGet).requests[0].method_is_head);
}

TEST(http_parser_reads_a_content_length_body) {
  Parsed parsed = whole(with_header("Content-Length: 011\r\n", "hello world"));
  REQUIRE(parsed.requests.size() == 1);
  CHECK(parsed.requests[0].framing == BodyFraming::kLength);
  CHECK_EQ(parsed.requests[0].content_length, 11u);
  CHECK_EQ(parsed.requests[0].body, std::string("hello world"));
  CHECK(parsed.requests[0].complete);
  // Content-Length: 0 is no body at all.
  CHECK(whole(with_header("Content-Length: 0\r\n")).requests[0].framing == BodyFraming::kNone);
  // Cut short: the request is incomplete, not an error, until the input ends.
  Parsed cut = whole(with_header("Content-Length: 5\r\n", "abc"));
  CHECK(cut.end == End::kIncomplete);
  CHECK(!cut.requests[0].complete);
}

TEST(http_parser_decodes_chunks_skipping_extensions_and_trailers) {
  Parsed parsed =
      whole(chunked_post("5;name=value;flag\r\nhello\r\n1;q=\"a \\\" b\"\r\n \r\n"
                         "A\r\n0123456789\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"));
  REQUIRE(parsed.requests.size() == 1);
  CHECK(parsed.requests[0].framing == BodyFraming::kChunked);
  CHECK_EQ(parsed.requests[0].body, std::string("hello 0123456789"));
  CHECK(parsed.requests[0].complete);
  CHECK(parsed.end == End::kBoundary);
  // llhttp's leniencies in extensions, kept: they change no framing.
  for (const char* size_line : {"3;=b", "3;a=", "3;a;;b", "3;a=b\"c\"", "3;=;a"}) {
    Parsed lenient = whole(chunked_post(std::string(size_line) + "\r\nabc\r\n0\r\n\r\n"));
    CHECK_MSG(lenient.end == End::kBoundary, size_line);
  }
  // Codings before chunked are the application's business.
  Parsed gzip_chunked =
      whole("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
  REQUIRE(gzip_chunked.requests.size() == 1);
  CHECK_EQ(gzip_chunked.requests[0].body, std::string("hi"));
  // 16 hex digits fit in 64 bits (and the body is then cut short).
  CHECK(whole(chunked_post("ffffffffffffffff\r\nabc")).end == End::kIncomplete);
}

TEST(http_parser_keeps_pipelined_requests_in_order) {
  std::string stream = "\r\n" + kGet + with_header("Content-Length: 3\r\n", "abc") +
                       chunked_post("3\r\nxyz\r\n0\r\n\r\n") +
                       "DELETE /x HTTP/1.0\r\nConnection: close\r\n\r\n";
  Parsed parsed = whole(stream);
  REQUIRE(parsed.requests.size() == 4);
  CHECK_EQ(parsed.requests[0].method, std::string("GET"));
  CHECK_EQ(parsed.requests[1].body, std::string("abc"));
  CHECK_EQ(parsed.requests[2].body, std::string("xyz"));
  CHECK_EQ(parsed.requests[3].method, std::string("DELETE"));
  CHECK(!parsed.requests[3].keep_alive);
  CHECK(parsed.end == End::kBoundary);
}

TEST(http_parser_accepts_the_target_forms_and_methods_llhttp_accepts) {
  const char* accepted[] = {
      "OPTIONS * HTTP/1.1\r\n\r\n",
      "GET http://user@example.com:8080/a?b HTTP/1.1\r\n\r\n",
      "GET HTTPS://[::1]:443 HTTP/1.1\r\n\r\n",
      "GET /a#frag\"<>{|}^` HTTP/1.1\r\n\r\n",
      "GET  /   HTTP/1.1\r\n\r\n",  // Several spaces, as llhttp allows.
      "M-SEARCH * HTTP/1.1\r\n\r\n",
      "UNSUBSCRIBE / HTTP/1.1\r\n\r\n",
      "PROPPATCH / HTTP/1.1\r\n\r\n",
      "\n\r\nGET / HTTP/1.1\r\n\r\n",  // Empty lines before a request.
      "GET / HTTP/1.1\r\nA!#$%&'*+-.^_`|~0z: v\r\n\r\n",
  };
  for (const char* request : accepted) CHECK_MSG(refusal(request) == 0, request);
}

TEST(http_parser_refuses_what_llhttp_refuses_with_400) {
  const std::string refused[] = {
      // Methods: unknown, lower case, too long, missing.
      "FOO / HTTP/1.1\r\n\r\n",
      "get / HTTP/1.1\r\n\r\n",
      "GETGETGETGETGET / HTTP/1.1\r\n\r\n",
      " / HTTP/1.1\r\n\r\n",
      "PRI * HTTP/1.1\r\n\r\n",
      // Targets.
      "GET a HTTP/1.1\r\n\r\n",
      "GET ?a HTTP/1.1\r\n\r\n",
      "GET http:/x HTTP/1.1\r\n\r\n",
      "GET http://a\"b/ HTTP/1.1\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\n\r\n",
      "GET /\x80 HTTP/1.1\r\n\r\n",
      "GET /a\tb HTTP/1.1\r\n\r\n",
      // Version and line ends: bare LF anywhere, CR without LF, trailing space.
      "GET / http/1.1\r\n\r\n",
      "GET / HTTP/11\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
      "GET / HTTP/1.1\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
      // Field names and values.
      "GET / HTTP/1.1\r\nA : b\r\n\r\n",
      "GET / HTTP/1.1\r\n: b\r\n\r\n",
      "GET / HTTP/1.1\r\n{A}: b\r\n\r\n",
      "GET / HTTP/1.1\r\nA\x01: b\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"s,  // A NUL inside.
      // obs-fold, and whitespace before the first field.
      "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
      "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
      "GET / HTTP/1.1\r\n A: b\r\n\r\n",
      // Request smuggling: Content-Length with Transfer-Encoding, duplicate or
      // invalid Content-Length, Transfer-Encoding not ending in chunked.
      with_header("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "0\r\n\r\n"),
      with_header("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"),
      with_header("Content-Length: 3\r\ncontent-length: 4\r\n", "abcd"),
      with_header("Content-Length: 3, 3\r\n", "abc"),
      with_header("Content-Length: +3\r\n", "abc"),
      with_header("Content-Length: -1\r\n"),
      with_header("Content-Length: 0x3\r\n", "abc"),
      with_header("Content-Length: 1 2\r\n"),
      with_header("Content-Length: 3\t\r\n", "abc"),  // Spaces may follow, a tab not (llhttp).
      with_header("Content-Length:\r\n"),
      with_header("Content-Length: 18446744073709551616\r\n"),
      with_header("Transfer-Encoding: gzip\r\n", "abc"),
      with_header("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked,\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
      with_header("Transfer-Encoding: chunked\t\r\n", "0\r\n\r\n"),
      // Chunk framing: overflow, whitespace, bad extensions, missing CRLF.
      chunked_post("fffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3 \r\nabc\r\n0\r\n\r\n"),
      chunked_post("3 ;a\r\nabc\r\n0\r\n\r\n"),
      chunked_post("\r\nabc\r\n0\r\n\r\n"),
      chunked_post("X\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;;\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a;\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=b\"c\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=b=c\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=b\x80\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=\"\\\x7f\"\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3; a=b\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a =b\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=\"b\x01\"\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3;a=\"b\"c\r\nabc\r\n0\r\n\r\n"),
      chunked_post("3\nabc\r\n0\r\n\r\n"),
      chunked_post("3\r\nabcX\r\n0\r\n\r\n"),
      chunked_post("3\r\nabc\n0\r\n\r\n"),
      chunked_post("3\r\nabc\r\n0\r\n\n"),
      // Trailers follow the field rules.
      chunked_post("3\r\nabc\r\n0\r\nA: b\r\n c\r\n\r\n"),
      chunked_post("3\r\nabc\r\n0\r\nA b\r\n\r\n"),
  };
  for (const std::string& request : refused) {
    int status = refusal(request);
    CHECK_MSG(status == 400, testing::show(request) << " gave " << status);
  }
}

TEST(http_parser_refuses_versions_other_than_1_0_and_1_1_with_505) {
  // llhttp accepts HTTP/0.9 (with or without a version) and HTTP/2.0 and
  // node:http answers 400 for the rest; a 1.1 server can answer none of them.
  CHECK_EQ(refusal("GET / HTTP/1.2\r\n\r\n"), 505);
  CHECK_EQ(refusal("GET / HTTP/2.0\r\n\r\n"), 505);
  CHECK_EQ(refusal("GET / HTTP/0.9\r\n\r\n"), 505);
  CHECK_EQ(refusal("GET /\r\n\r\n"), 505);
}

TEST(http_parser_refuses_a_head_over_the_limit_with_431) {
  Limits limits;
  limits.max_head_bytes = 64;
  std::string head = "GET / HTTP/1.1\r\nA: " + std::string(64 - 23, 'x') + "\r\n\r\n";
  REQUIRE(head.size() == 64);
  CHECK_EQ(refusal(head, limits), 0);  // Exactly the limit is fine.
  CHECK(feed(byte_by_byte(head), limits).end == End::kBoundary);
  std::string over = "GET / HTTP/1.1\r\nA: " + std::string(64 - 22, 'x') + "\r\n\r\n";
  CHECK_EQ(refusal(over, limits), 431);
  Parsed split = feed(byte_by_byte(over), limits);
  CHECK(split.end == End::kError);
  CHECK_EQ(split.status, 431);
  // The default is node's 16 KiB.
  CHECK_EQ(refusal("GET / HTTP/1.1\r\nA: " + std::string(17000, 'x') + "\r\n\r\n"), 431);
  // Trailers are bounded the same way.
  CHECK_EQ(refusal(chunked_post("0\r\nA: " + std::string(100, 'x') + "\r\n\r\n"), limits), 431);
}

TEST(http_parser_refuses_a_body_over_the_limit_with_413) {
  Limits limits;
  limits.max_body_bytes = 10;
  CHECK_EQ(refusal(with_header("Content-Length: 10\r\n", "0123456789"), limits), 0);
  Parsed over = whole(with_header("Content-Length: 11\r\n"), limits);
  CHECK_EQ(over.status, 413);
  CHECK(over.requests.empty());  // Refused before any of the body is read.
  CHECK_EQ(refusal(chunked_post("6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n"), limits), 0);
  CHECK_EQ(refusal(chunked_post("6\r\n012345\r\n5\r\n"), limits), 413);
  limits.max_chunk_extension_bytes = 8;
  CHECK_EQ(refusal(chunked_post("1;abcdef\r\nx\r\n0\r\n\r\n"), limits), 0);
  CHECK_EQ(refusal(chunked_post("1;abcdefgh\r\nx\r\n0\r\n\r\n"), limits), 413);
}

TEST(http_parser_gives_the_same_result_at_every_split_point) {
  const std::string streams[] = {
      kGet + kGet,
      with_header("Content-Length: 11\r\nExpect: 100-continue\r\n", "hello world") + kGet,
      chunked_post("5;a=\"x;y\"\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n") + kGet,
      "\r\nGET http://a/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD / HTTP/1.1\r\n\r\n",
      with_header("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "abc"),
      chunked_post("3\r\nabc\r\n4 \r\n"),
      "GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nPRI * HTTP/2.0",
  };
  for (const std::string& stream : streams) {
    Parsed expected = whole(stream);
    for (size_t at = 0; at <= stream.size(); at++) {
      Parsed split = feed({stream.substr(0, at), stream.substr(at)});
      CHECK_MSG(split == expected, testing::show(stream) << " split at " << at);
    }
    for (size_t a = 0; a < stream.size(); a += 7) {
      for (size_t b = a; b <= stream.size(); b += 3) {
        Parsed split = feed({stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)});
        CHECK_MSG(split == expected, testing::show(stream) << " split at " << a << ", " << b);
      }
    }
    CHECK_MSG(feed(byte_by_byte(stream)) == expected, testing::show(stream) << " byte by byte");
  }
}

TEST(http_parser_random_mutations_parse_the_same_however_split) {
  // Never a crash, and the split never changes the outcome: random bytes
  // changed, inserted or removed in valid streams, fed in random pieces.
  const std::string seeds[] = {
      kGet,
      with_header("Content-Length: 4\r\nConnection: close\r\n", "body") + kGet,
      chunked_post("4;e=1\r\nabcd\r\n0\r\nT: 1\r\n\r\n"),
  };
  const char interesting[] = "\r\n \t:;,\"\\0aF\x7f\x80\xff";
  std::mt19937 rng(1234);
  for (int round = 0; round < 4000; round++) {
    std::string stream = seeds[rng() % 3];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; e++) {
      size_t at = rng() % (stream.size() + 1);
      char c = rng() % 2 ? interesting[rng() % (sizeof(interesting) - 1)]
                         : static_cast<char>(rng() % 256);
      switch (rng() % 3) {
        case 0:
          if (at < stream.size()) stream[at] = c;
          break;
        case 1:
          stream.insert(at, 1, c);
          break;
        default:
          if (at < stream.size()) stream.erase(at, 1);
      }
    }
    Parsed expected = whole(stream);
    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < stream.size();) {
      size_t n = 1 + rng() % 9;
      pieces.push_back(stream.substr(pos, n));
      pos += n;
    }
    CHECK_MSG(feed(pieces) == expected, testing::show(stream) << " round " << round);
  }
}
