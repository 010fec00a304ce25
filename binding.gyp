{
  # The addon's source lists and defines, shared with CMakeLists.txt (cmake-js).
  "includes": ["native/sources.json"],
  "variables": {
    # 1: also build the native unit tests (native_tests, deny_io_uring):
    # `npm run build:tests` / `npm run build:native`. 0 (the default) builds
    # the addon only, which is all `npm install` needs (and all it can build:
    # the package does not ship native/test).
    "build_tests%": 0,
    # 1: a redistributable binary (`npm run prebuild`). On Linux: liburing,
    # libstdc++ and libgcc linked statically and glibc symbols pinned to
    # versions <= 2.28 (native/glibc_compat.c), so the binary loads on any
    # glibc >= 2.28 without liburing or a new libstdc++.
    "portable%": 0,
    # The C library a portable Linux binary is for: glibc or musl.
    "portable_libc%": "glibc"
  },
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
    "sources": ["<@(native_reactor_core_sources)"],
    "conditions": [
      # Not on Windows, where select is the only backend (poller.cc says why
      # not WSAPoll).
      ["OS!='win'", {
        "sources": ["<@(native_reactor_posix_sources)"]
      }],
      ["OS=='win'", {
        # Node's common.gypi turns C++ exceptions off (a later /D wins, so
        # its define is removed); the core uses them.
        "defines!": ["_HAS_EXCEPTIONS=0"],
        "defines": ["<@(native_reactor_win_defines)"],
        "libraries": ["-lws2_32.lib"],
        "msvs_settings": {
          "VCCLCompilerTool": {
            "ExceptionHandling": 1,
            "AdditionalOptions": ["/std:c++17"]
          }
        }
      }],
      ["OS=='linux'", {
        "sources": ["<@(native_reactor_linux_sources)"],
        "conditions": [
          # io_uring (opt-in) where liburing's header is installed.
          ["'<!(test -f /usr/include/liburing.h && echo 1 || echo 0)'=='1'", {
            "sources": ["<@(native_reactor_io_uring_sources)"],
            "defines": ["<@(native_reactor_io_uring_defines)"],
            "conditions": [
              ["portable==1", {
                # The archive, not liburing.so.2: a user's machine may lack it.
                "libraries": ["-l:liburing.a"]
              }, {
                "libraries": ["-luring"]
              }]
            ]
          }]
        ]
      }],
      ["OS=='mac' or OS=='freebsd' or OS=='openbsd' or OS=='netbsd'", {
        "sources": ["<@(native_reactor_kqueue_sources)"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "native_reactor",
      # Plain Node-API (node_api.h, from Node's headers): no C++ exception
      # can be thrown into an environment that is being torn down.
      "sources": ["<@(native_reactor_addon_sources)"],
      "defines": ["<@(native_reactor_addon_defines)"],
      "conditions": [
        ["OS=='linux' and portable==1", {
          "sources": ["native/glibc_compat.c"],
          "ldflags": [
            # Exports the Node-API entry points only (native/exports.map).
            "-Wl,--version-script=<(module_root_dir)/native/exports.map",
            # No libstdc++.so.6 (GLIBCXX_*/CXXABI_* versions) nor libgcc_s.so.1
            # (GCC_*) needed at run time: both are linked in ...
            "-static-libstdc++",
            "-static-libgcc",
            # ... and kept private: their symbols are not exported, so the
            # addon never binds to (or interposes on) node's own libstdc++.
            "-Wl,--exclude-libs,ALL",
            # glibc symbols whose default version is newer than 2.28 go to
            # their old versions: native/glibc_compat.c says how and why.
            "-Wl,--wrap=pthread_create,--wrap=pthread_join,--wrap=pthread_detach",
            "-Wl,--wrap=pthread_once,--wrap=pthread_key_create,--wrap=pthread_key_delete",
            "-Wl,--wrap=pthread_getspecific,--wrap=pthread_setspecific",
            "-Wl,--wrap=__pthread_key_create"
          ],
          "conditions": [
            ["portable_libc=='glibc'", {
              # Where those old versions live before glibc 2.34 (a stub since).
              "ldflags": ["-Wl,--no-as-needed,-l:libpthread.so.0,--as-needed"]
            }]
          ]
        }]
      ]
    }
  ],
  "conditions": [
    ["build_tests==1", {
      "targets": [
        {
          "target_name": "native_tests",
          "type": "executable",
          "sources": [
            "native/test/native_tests.cc",
            "native/test/indexed_heap_tests.cc",
            "native/test/loop_tests.cc",
            "native/test/poller_tests.cc",
            "native/test/fallback_tests.cc",
            "native/test/datagram_tests.cc",
            "native/test/watch_tests.cc",
            "native/test/udp_tests.cc",
            "native/test/fd_table_reserve_tests.cc",
            "native/test/idle_lists_tests.cc",
            "native/test/http_parser_tests.cc",
            "native/test/http_server_tests.cc",
            "native/test/proxy_protocol_tests.cc"
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
      ]
    }],
    ["build_tests==1", {
      "targets": [
        {
          # Test tool for the differential fuzzer (test/http-parser-fuzz.test.ts):
          # byte streams on stdin through the HTTP request parser, what it
          # parsed as JSON lines on stdout.
          "target_name": "http_parse_probe",
          "type": "executable",
          "sources": ["native/test/http_parse_probe.cc"],
          "win_delay_load_hook": "false"
        },
        {
          # The HTTP request parser's micro-benchmark:
          # build/Release/http_parser_bench [seconds per case].
          "target_name": "http_parser_bench",
          "type": "executable",
          "sources": ["native/test/http_parser_bench.cc"],
          "win_delay_load_hook": "false"
        }
      ]
    }],
    ["build_tests==1 and OS=='linux'", {
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
