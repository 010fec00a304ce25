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
    # The core and select, then each platform's own backends.
    "sources": [
      "native/loop.cc",
      "native/platform.cc",
      "native/poller.cc",
      "native/poller_select.cc",
      "native/poller_thread.cc",
      "native/sockets.cc",
      "native/timer_heap.cc"
    ],
    "conditions": [
      # Not on Windows, where select is the only backend (poller.cc says why
      # not WSAPoll).
      ["OS!='win'", {
        "sources": ["native/poller_poll.cc"]
      }],
      ["OS=='win'", {
        # Node's common.gypi turns C++ exceptions off (a later /D wins, so
        # its define is removed); the core uses them.
        "defines!": ["_HAS_EXCEPTIONS=0"],
        "defines": ["_HAS_EXCEPTIONS=1", "NOMINMAX", "WIN32_LEAN_AND_MEAN"],
        "libraries": ["-lws2_32.lib"],
        "msvs_settings": {
          "VCCLCompilerTool": {
            "ExceptionHandling": 1,
            "AdditionalOptions": ["/std:c++17"]
          }
        }
      }],
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
      # Plain Node-API (node_api.h, from Node's headers): no C++ exception
      # can be thrown into an environment that is being torn down.
      "sources": ["native/addon.cc"],
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
      # A plain program: no delay-load hook for node.exe.
      "win_delay_load_hook": "false",
      "conditions": [
        ["OS!='win'", {
          "cflags": ["-pthread"],
          "ldflags": ["-pthread"]
        }]
      ]
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
