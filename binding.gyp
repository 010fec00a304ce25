{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "xcode_settings": {
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "MACOSX_DEPLOYMENT_TARGET": "11.0",
      "WARNING_CFLAGS": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    # The core and the portable backends, then each platform's own.
    "sources": [
      "native/loop.cc",
      "native/poller.cc",
      "native/poller_poll.cc",
      "native/poller_select.cc",
      "native/poller_thread.cc",
      "native/sockets.cc",
      "native/timer_heap.cc"
    ],
    "conditions": [
      ["OS=='linux'", {
        "sources": ["native/poller_epoll.cc"],
        "conditions": [
          # io_uring (opt-in) where liburing's header is installed.
          ["'<!(test -f /usr/include/liburing.h && echo 1 || echo 0)'=='1'", {
            "sources": ["native/poller_io_uring.cc"],
            "defines": ["NATIVE_REACTOR_IO_URING"],
            "libraries": ["-luring"]
          }]
        ]
      }],
      ["OS=='mac' or OS=='freebsd' or OS=='openbsd' or OS=='netbsd'", {
        "sources": ["native/poller_kqueue.cc"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "native_reactor",
      "sources": ["native/addon.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "native_tests",
      "type": "executable",
      "sources": [
        "native/test/native_tests.cc",
        "native/test/loop_tests.cc",
        "native/test/poller_tests.cc",
        "native/test/fallback_tests.cc"
      ],
      "cflags": ["-pthread"],
      "ldflags": ["-pthread"]
    }
  ],
  "conditions": [
    ["OS=='linux'", {
      "targets": [
        {
          # Test tool: runs a command with io_uring refused by seccomp.
          "target_name": "deny_io_uring",
          "type": "executable",
          "sources": ["native/test/deny_io_uring.cc"]
        }
      ]
    }]
  ]
}
