// The native HTTP server: the response head it writes for each framing and
// keep-alive case, the request descriptor JavaScript reads, and the loop's
// HTTP path end to end on the backend under test (requests as records, one
// at a time per connection, responses framed, refusals answered natively).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "loop_harness.h"
#include "test_framework.h"

namespace {

using namespace reactor;
using testing::Harness;
using testing::packed_of;

std::string head_for(http::ResponseHead head, http::Exchange* x, int64_t body_length) {
  http::DateHeader date;
  std::string out;
  http::format_response_head(head, x, body_length, &date, &out);
  return out;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

http::Exchange request(uint8_t version_minor, bool keep_alive, bool message_done = true) {
  http::Exchange x;
  x.version_minor = version_minor;
  x.keep_alive = keep_alive;
  x.head_done = true;
  x.message_done = message_done;
  return x;
}

// The descriptor's words and bytes, read back as JavaScript does.
struct Decoded {
  std::string method, target;
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t flags = 0;
  uint64_t length = 0;
};

Decoded decode(const uint8_t* at) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(at);
  uint32_t count = words[http::kHeaderCount];
  const char* bytes = reinterpret_cast<const char*>(words + http::kFixedWords + 4 * count);
  Decoded d;
  d.method.assign(bytes + words[http::kMethodOffset], words[http::kMethodLength]);
  d.target.assign(bytes + words[http::kTargetOffset], words[http::kTargetLength]);
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* span = words + http::kFixedWords + 4 * i;
    d.headers.push_back(
        {std::string(bytes + span[0], span[1]), std::string(bytes + span[2], span[3])});
  }
  d.flags = words[http::kFlags];
  d.length = words[http::kLengthLow] | static_cast<uint64_t>(words[http::kLengthHigh]) << 32;
  return d;
}

}  // namespace

TEST(http_response_head_frames_by_what_is_known) {
  http::ResponseHead head;
  http::Exchange x = request(1, true);
  std::string known = head_for(head, &x, 11);
  CHECK(known.rfind("HTTP/1.1 200 OK\r\nDate: ", 0) == 0);
  CHECK(has(known, "Content-Length: 11\r\n"));
  CHECK(!has(known, "Connection"));
  CHECK(known.size() >= 4 && known.compare(known.size() - 4, 4, "\r\n\r\n") == 0);
  CHECK(x.keep_alive && !x.chunked);

  http::Exchange streamed = request(1, true);
  CHECK(has(head_for(head, &streamed, -1), "Transfer-Encoding: chunked\r\n"));
  CHECK(streamed.chunked);

  // HTTP/1.0 has no chunks: the close ends the body.
  http::Exchange old = request(0, true);
  std::string old_head = head_for(head, &old, -1);
  CHECK(old_head.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
  CHECK(has(old_head, "Connection: close\r\n"));
  CHECK(old.close_delimited && !old.keep_alive);
  http::Exchange old_kept = request(0, true);
  CHECK(has(head_for(head, &old_kept, 5), "Connection: keep-alive\r\n"));

  // No body for 204 and 304: no framing either.
  head.status = 204;
  http::Exchange empty = request(1, true);
  std::string no_content = head_for(head, &empty, 0);
  CHECK(has(no_content, "204 No Content\r\n"));
  CHECK(!has(no_content, "Content-Length") && !has(no_content, "Transfer-Encoding"));
}

TEST(http_response_head_honours_the_user_and_the_request) {
  http::ResponseHead head;
  head.status = 418;
  head.reason = "Short And Stout";
  head.headers = "X-A: 1\r\nContent-Length: 3\r\n";
  head.has_length = true;
  http::Exchange x = request(1, true);
  std::string text = head_for(head, &x, -1);
  CHECK(text.rfind("HTTP/1.1 418 Short And Stout\r\n", 0) == 0);
  CHECK(has(text, "X-A: 1\r\nContent-Length: 3\r\n\r\n"));
  CHECK(!has(text, "chunked"));

  http::ResponseHead closing;
  closing.close = true;
  http::Exchange y = request(1, true);
  CHECK(has(head_for(closing, &y, 0), "Connection: close\r\n"));
  CHECK(!y.keep_alive);

  // Ending before the request's body was read closes: it is not waited for.
  http::Exchange early = request(1, true, false);
  CHECK(has(head_for(http::ResponseHead{}, &early, 2), "Connection: close\r\n"));
  CHECK_EQ(std::string(http::reason_phrase(799)), std::string("Unknown"));
}

TEST(http_numbers_in_decimal_and_hex) {
  std::string out;
  http::append_number(&out, 0, 10);
  out += ' ';
  http::append_number(&out, 18446744073709551615ull, 10);
  out += ' ';
  http::append_number(&out, 65535, 16);
  CHECK_EQ(out, std::string("0 18446744073709551615 ffff"));
}

TEST(http_descriptor_carries_the_head_whole) {
  http::RequestParser parser;
  std::string bytes =
      "PUT /a?b HTTP/1.0\r\nHost: h\r\nX-Long:  value with spaces \r\nContent-Length: 7\r\n\r\n";
  http::RequestParser::Result r = parser.parse(bytes.data(), bytes.size());
  REQUIRE(r.event == http::RequestParser::Event::kHead);
  const http::RequestHead& head = parser.head();
  std::vector<uint32_t> storage((http::descriptor_size(head) + 3) / 4, 0xEEEEEEEE);
  uint8_t* at = reinterpret_cast<uint8_t*>(storage.data());
  http::write_descriptor(head, 5, 9, at);
  // Nothing of it points back into the parsed bytes.
  std::fill(bytes.begin(), bytes.end(), '#');
  Decoded d = decode(at);
  CHECK_EQ(d.method, std::string("PUT"));
  CHECK_EQ(d.target, std::string("/a?b"));
  REQUIRE(d.headers.size() == 3u);
  CHECK_EQ(d.headers[1].first, std::string("X-Long"));
  CHECK_EQ(d.headers[1].second, std::string("value with spaces"));
  CHECK_EQ(d.length, 7u);
  CHECK_EQ(d.flags & 0xff, static_cast<uint32_t>(http::kFlagLength));  // 1.0: not keep-alive
  CHECK_EQ(d.flags >> 8, 0u);
  CHECK_EQ(storage[http::kListenerSlot], 5u);
  CHECK_EQ(storage[http::kListenerGen], 9u);
}

namespace {

struct HttpPair {
  uint64_t listener = 0;
  uint64_t client = 0;
  bool ok = false;
};

HttpPair http_pair(Harness& h, const http::ServerConfig& config = {}) {
  HttpPair p;
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  if (listener < 0 || h.loop->configure_http(static_cast<uint64_t>(listener), config) != 0)
    return p;
  p.listener = static_cast<uint64_t>(listener);
  int64_t client = h.loop->connect_tcp("127.0.0.1", h.local_port(p.listener));
  if (client < 0) return p;
  p.client = static_cast<uint64_t>(client);
  p.ok = h.pump_until([&] { return h.has(kConnected, p.client); });
  return p;
}

}  // namespace

TEST(http_loop_serves_requests_one_at_a_time_in_order) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::vector<Decoded> heads;
  h.sink.hook = [&](const Record& r) {
    if (r.kind == kHttpRequest) heads.push_back(decode(h.sink.current_slab() + r.a));
  };
  HttpPair p = http_pair(h);
  REQUIRE(p.ok);
  // No kAccepted: JavaScript meets an HTTP connection with its first request.
  CHECK_EQ(h.count_kind(kAccepted), 0u);
  h.write(p.client, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(h.pump_until([&] { return h.count_kind(kHttpEnd) == 1; }));
  h.pump_for(20);
  REQUIRE(heads.size() == 1u);  // the second waits for the first's response
  CHECK_EQ(heads[0].target, std::string("/1"));
  uint64_t server = 0;
  for (const Record& r : h.sink.records) {
    if (r.kind == kHttpRequest) server = packed_of(r);
  }
  iovec body{const_cast<char*>("one"), 3};
  http::ResponseHead head;
  CHECK(h.loop->http_respond(server, &head, &body, 1, true) >= 0);
  CHECK_EQ(h.loop->http_respond(server, nullptr, &body, 1, true), -EPIPE);  // it ended
  REQUIRE(h.pump_until([&] { return heads.size() == 2; }));
  CHECK_EQ(heads[1].target, std::string("/2"));
  iovec two{const_cast<char*>("two"), 3};
  CHECK(h.loop->http_respond(server, &head, &two, 1, false) >= 0);
  CHECK(h.loop->http_respond(server, nullptr, nullptr, 0, true) >= 0);
  REQUIRE(h.pump_until([&] { return has(h.received(p.client), "3\r\ntwo\r\n0\r\n\r\n"); }));
  std::string got = h.received(p.client);
  CHECK(got.find("one") < got.find("two"));
  CHECK(has(got, "Content-Length: 3\r\n\r\none"));
  CHECK_EQ(h.loop->stats().http_requests, 2u);
}

TEST(http_loop_refuses_natively_and_closes) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  HttpPair p = http_pair(h);
  REQUIRE(p.ok);
  h.write(p.client, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  REQUIRE(h.pump_until([&] { return has(h.received(p.client), "\r\n\r\n"); }));
  CHECK(h.received(p.client).rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK_EQ(h.count_kind(kHttpRequest), 0u);
  CHECK_EQ(h.loop->stats().http_refused, 1u);
  // The server shut its side: the client sees the end, closes, and the
  // server's connection goes (reported: the slot was JavaScript's to know).
  REQUIRE(h.pump_until([&] { return h.has(kEof, p.client); }));
  h.loop->close(p.client);
  REQUIRE(h.pump_until([&] { return h.loop->open_connections() == 0; }));
}

// Sends bytes that leave a request unfinished; the server must answer 408.
static void expect_timed_out(Harness& h, const http::ServerConfig& config, const char* bytes) {
  HttpPair p = http_pair(h, config);
  REQUIRE(p.ok);
  h.write(p.client, bytes);
  REQUIRE(h.pump_until([&] { return has(h.received(p.client), "\r\n\r\n"); }, 2000));
  CHECK(h.received(p.client).rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK_EQ(h.loop->stats().http_refused, 1u);
}

TEST(http_loop_times_out_a_head_that_stops_coming) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  http::ServerConfig config;
  config.header_timeout_ms = 50;
  expect_timed_out(h, config, "GET / HTTP/1.1\r\nHo");
  CHECK_EQ(h.count_kind(kHttpRequest), 0u);
}

TEST(http_loop_times_out_a_body_that_stops_coming) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  http::ServerConfig config;
  config.request_timeout_ms = 50;
  expect_timed_out(h, config, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  CHECK_EQ(h.count_kind(kHttpRequest), 1u);  // the head went to JavaScript; the body never ended
  CHECK_EQ(h.count_kind(kHttpEnd), 0u);
}
