// Makes io_uring_setup fail with a chosen errno for this process and its
// children, as a hardened container (EPERM) or a kernel built without
// io_uring (ENOSYS) would, so tests can see the backend fall back.
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cstddef>

#if defined(__x86_64__)
#define REACTOR_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define REACTOR_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

namespace reactor {

// Returns false when the filter cannot be installed (unknown architecture,
// seccomp unavailable).
inline bool deny_io_uring_setup(int errno_value) {
#ifdef REACTOR_AUDIT_ARCH
  sock_filter program[] = {
      // System call numbers mean something else on a foreign architecture.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, REACTOR_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (static_cast<unsigned>(errno_value) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog filter = {static_cast<unsigned short>(sizeof program / sizeof program[0]), program};
  // Without no_new_privs an unprivileged process may not install a filter.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) == 0;
#else
  (void)errno_value;
  return false;
#endif
}

}  // namespace reactor
