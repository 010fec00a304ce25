// Test tool for the differential fuzzer (test/http-parser-fuzz.test.ts): runs
// byte streams through reactor::http::RequestParser (http_feed.h) and prints
// what it parsed.
//
// Input, one case per line: the stream's pieces (one parse() feed each, so
// the split points are the caller's) in hex, separated by spaces.
// Output, one JSON line per case:
//   {"requests":[{"method","target","version","headers":[name,value,...],
//     "body":hex,"complete","keepAlive","framing","upgrade","expectContinue"}],
//    "error":null|{"status","reason"},"end":"boundary"|"incomplete"|"upgraded"}
// Strings are bytes as Latin-1 (as node:http decodes header fields).
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "http_feed.h"

namespace {

using reactor::http::BodyFraming;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string> decode_pieces(const std::string& line) {
  std::vector<std::string> pieces(1);
  for (size_t i = 0; i < line.size();) {
    if (line[i] == ' ') {
      pieces.emplace_back();
      i++;
      continue;
    }
    int high = hex_digit(line[i]);
    int low = i + 1 < line.size() ? hex_digit(line[i + 1]) : -1;
    if (high < 0 || low < 0) return {};
    pieces.back() += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return pieces;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  out += '"';
}

void append_hex(std::string& out, const char* data, size_t length) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < length; i++) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    out += hex[c >> 4];
    out += hex[c & 15];
  }
}

const char* framing_name(BodyFraming framing) {
  switch (framing) {
    case BodyFraming::kLength:
      return "length";
    case BodyFraming::kChunked:
      return "chunked";
    default:
      return "none";
  }
}

const char* end_name(http_test::End end) {
  switch (end) {
    case http_test::End::kBoundary:
      return "boundary";
    case http_test::End::kIncomplete:
      return "incomplete";
    case http_test::End::kUpgraded:
      return "upgraded";
    default:
      return "error";
  }
}

std::string to_json(const http_test::Parsed& parsed) {
  std::string out = "{\"requests\":[";
  for (size_t r = 0; r < parsed.requests.size(); r++) {
    const http_test::ParsedRequest& request = parsed.requests[r];
    if (r > 0) out += ',';
    out += "{\"method\":";
    append_json_string(out, request.method);
    out += ",\"target\":";
    append_json_string(out, request.target);
    out += request.version_minor == 1 ? ",\"version\":\"1.1\"" : ",\"version\":\"1.0\"";
    out += ",\"headers\":[";
    for (size_t i = 0; i < request.headers.size(); i++) {
      if (i > 0) out += ',';
      append_json_string(out, request.headers[i].first);
      out += ',';
      append_json_string(out, request.headers[i].second);
    }
    out += "],\"keepAlive\":";
    out += request.keep_alive ? "true" : "false";
    out += ",\"framing\":\"";
    out += framing_name(request.framing);
    out += "\",\"upgrade\":";
    out += request.upgrade ? "true" : "false";
    out += ",\"expectContinue\":";
    out += request.expect_continue ? "true" : "false";
    out += ",\"body\":\"";
    append_hex(out, request.body.data(), request.body.size());
    out += "\",\"complete\":";
    out += request.complete ? "true" : "false";
    out += '}';
  }
  out += "],\"error\":";
  if (parsed.end == http_test::End::kError) {
    out += "{\"status\":" + std::to_string(parsed.status) + ",\"reason\":";
    append_json_string(out, parsed.reason);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"end\":\"";
  out += end_name(parsed.end);
  out += "\"}";
  return out;
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> pieces = decode_pieces(line);
    std::string out = pieces.empty() ? "{\"bad_input\":true}" : to_json(http_test::feed(pieces));
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}
