// Runs byte pieces through reactor::http::RequestParser the way a server's
// read path does (one parse() loop per piece, so the split points are the
// caller's) and collects what it parsed: shared by the parser's unit tests
// and the differential fuzzer's probe.
#pragma once

#include <string>
#include <vector>

#include "../http_parser.h"

namespace http_test {

struct ParsedRequest {
  std::string method;
  std::string target;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  reactor::http::BodyFraming framing = reactor::http::BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = false;
  bool upgrade = false;
  bool expect_continue = false;
  bool method_is_head = false;
  std::string body;
  bool complete = false;

  bool operator==(const ParsedRequest& o) const {
    return method == o.method && target == o.target && version_minor == o.version_minor &&
           headers == o.headers && framing == o.framing && content_length == o.content_length &&
           keep_alive == o.keep_alive && upgrade == o.upgrade &&
           expect_continue == o.expect_continue && method_is_head == o.method_is_head &&
           body == o.body && complete == o.complete;
  }
};

enum class End { kBoundary, kIncomplete, kUpgraded, kError };

struct Parsed {
  std::vector<ParsedRequest> requests;
  End end = End::kBoundary;
  int status = 0;  // With kError.
  std::string reason;
  size_t body_events = 0;

  bool operator==(const Parsed& o) const {
    return requests == o.requests && end == o.end && status == o.status;
  }
};

inline Parsed feed(const std::vector<std::string>& pieces,
                   const reactor::http::Limits& limits = reactor::http::Limits()) {
  using Event = reactor::http::RequestParser::Event;
  reactor::http::RequestParser parser(limits);
  Parsed parsed;
  for (const std::string& piece : pieces) {
    const char* data = piece.data();
    size_t length = piece.size();
    for (;;) {
      reactor::http::RequestParser::Result r = parser.parse(data, length);
      data += r.consumed;
      length -= r.consumed;
      if (r.event == Event::kNeedMore) break;
      if (r.event == Event::kHead) {
        const reactor::http::RequestHead& head = parser.head();
        ParsedRequest request;
        request.method = std::string(head.view(head.method));
        request.target = std::string(head.view(head.target));
        request.version_minor = head.version_minor;
        for (uint32_t i = 0; i < head.header_count; i++) {
          request.headers.emplace_back(head.view(head.headers[i].name),
                                       head.view(head.headers[i].value));
        }
        request.framing = head.framing;
        request.content_length = head.content_length;
        request.keep_alive = head.keep_alive;
        request.upgrade = head.upgrade;
        request.expect_continue = head.expect_continue;
        request.method_is_head = head.method_is_head;
        parsed.requests.push_back(std::move(request));
      } else if (r.event == Event::kBody) {
        parsed.requests.back().body.append(r.data, r.length);
        parsed.body_events++;
      } else if (r.event == Event::kMessageComplete) {
        parsed.requests.back().complete = true;
      } else if (r.event == Event::kUpgraded) {
        parsed.end = End::kUpgraded;
        return parsed;
      } else {
        parsed.end = End::kError;
        parsed.status = parser.error_status();
        parsed.reason = parser.error_reason();
        return parsed;
      }
    }
  }
  parsed.end = parser.at_message_boundary() ? End::kBoundary : End::kIncomplete;
  return parsed;
}

}  // namespace http_test
