// Micro-benchmark of the HTTP request parser alone: requests per second and
// bytes per second for wrk's request (one per read, as keep-alive without
// pipelining delivers it, and 64 pipelined in one read) and for a browser-like
// request with a dozen headers. Usage: http_parser_bench [seconds per case]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../http_parser.h"

namespace {

using reactor::http::RequestParser;

// What `wrk -t1 -c100 http://127.0.0.1:8080/` sends on every request.
const std::string kWrkRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

const std::string kBrowserRequest =
    "GET /static/app/main.4f1c2a.js?v=20261129 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Accept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\r\n";

// Parses `reads` (one buffer per read) over and over for about `seconds`;
// returns requests parsed and the time taken. A request with no message
// complete event, or any other outcome, is a failure.
struct Run {
  uint64_t requests;
  uint64_t bytes;
  double seconds;
};

Run run(const std::string& read, size_t requests_per_read, double seconds) {
  RequestParser parser;
  uint64_t requests = 0;
  uint64_t bytes = 0;
  uint64_t header_bytes_seen = 0;  // Keeps the head's spans from being optimised away.
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int batch = 0; batch < 1000; batch++) {
      const char* data = read.data();
      size_t length = read.size();
      size_t completed = 0;
      for (;;) {
        RequestParser::Result r = parser.parse(data, length);
        data += r.consumed;
        length -= r.consumed;
        if (r.event == RequestParser::Event::kNeedMore) break;
        if (r.event == RequestParser::Event::kHead) {
          header_bytes_seen += parser.head().header_count + parser.head().target.length;
        } else if (r.event == RequestParser::Event::kMessageComplete) {
          completed++;
        } else {
          std::printf("unexpected event %d (status %d)\n", static_cast<int>(r.event),
                      parser.error_status());
          std::exit(1);
        }
      }
      if (completed != requests_per_read) {
        std::printf("parsed %zu requests, expected %zu\n", completed, requests_per_read);
        std::exit(1);
      }
      requests += completed;
      bytes += read.size();
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (header_bytes_seen == 0) std::printf("(no headers seen)\n");
  return {requests, bytes, elapsed};
}

void report(const char* name, const std::string& request, size_t per_read, double seconds) {
  std::string read;
  for (size_t i = 0; i < per_read; i++) read += request;
  Run r = run(read, per_read, seconds);
  double per_second = static_cast<double>(r.requests) / r.seconds;
  std::printf("%-34s %4zu B/request  %7.1f ns/request  %6.2f M requests/s  %6.2f GB/s\n", name,
              request.size(), 1e9 / per_second, per_second / 1e6,
              static_cast<double>(r.bytes) / r.seconds / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  report("wrk request, 1 per read", kWrkRequest, 1, seconds);
  report("wrk request, 64 pipelined per read", kWrkRequest, 64, seconds);
  report("browser request, 1 per read", kBrowserRequest, 1, seconds);
  report("browser request, 64 per read", kBrowserRequest, 64, seconds);
  return 0;
}
