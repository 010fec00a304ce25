/*
 * Only in the portable Linux build (`npm run prebuild`; binding.gyp's
 * portable==1): lets a binary linked here against glibc 2.36 with a static
 * libstdc++/libgcc (GCC 12) load on any glibc >= 2.28.
 *
 * The static libstdc++ and libgcc, and our own code, reference glibc symbols
 * whose default version is newer than 2.28; `objdump -T` on the addon lists
 * them, and test/binary.test.ts fails on any that is left. Each one is dealt
 * with below, in one of two ways:
 *
 * - Functions that moved into libc.so.6 from libpthread.so.0 in glibc 2.34
 *   (std::thread, the C++ runtime's thread-local keys and call_once): their
 *   old versions (GLIBC_2.2.5 on x86_64, GLIBC_2.17 on aarch64) are still
 *   exported by every glibc since, by libc.so.6 as compatibility symbols from
 *   2.34 on and by libpthread.so.0 (which the addon therefore NEEDs) before.
 *   binding.gyp links with `-Wl,--wrap=NAME` for each, which sends every
 *   reference to NAME (ours and libstdc++'s) to __wrap_NAME here; __wrap_NAME
 *   calls NAME_compat, which `.symver` binds to NAME@<old version>. Same
 *   function, older name: nothing changes in behaviour.
 * - Symbols that glibc 2.28 lacks altogether get a hidden definition here,
 *   which the static link prefers over libc's; nothing is exported:
 *   __libc_single_threaded (2.32), _dl_find_object (2.35), arc4random (2.36)
 *   and, when built against glibc >= 2.38, the __isoc23_* scanf/strto* names.
 *
 * On another C library (musl) the wrappers just call the real function, so
 * the same link flags work there.
 */
#define _GNU_SOURCE 1
#include <features.h>

#include <pthread.h>

#if defined(__GLIBC__)

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#define COMPAT_VERSION "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define COMPAT_VERSION "GLIBC_2.17"
#else
#error "glibc_compat.c: no base glibc version known for this architecture"
#endif

#define HIDDEN __attribute__((visibility("hidden")))

/* NAME_compat is NAME@COMPAT_VERSION; __wrap_NAME (what --wrap=NAME makes
   every reference to NAME call) forwards to it. */
#define COMPAT(ret, name, params, args)                              \
  ret name##_compat params;                                          \
  __asm__(".symver " #name "_compat, " #name "@" COMPAT_VERSION);    \
  HIDDEN ret __wrap_##name params;                                   \
  ret __wrap_##name params { return name##_compat args; }

#else /* not glibc: NAME is fine as it is */

#define HIDDEN __attribute__((visibility("hidden")))
#define COMPAT(ret, name, params, args)                              \
  ret __real_##name params;                                          \
  HIDDEN ret __wrap_##name params;                                   \
  ret __wrap_##name params { return __real_##name args; }

#endif

/* Keep this list and the --wrap flags in binding.gyp in step. */
COMPAT(int, pthread_create,
       (pthread_t * thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg),
       (thread, attr, start, arg))
COMPAT(int, pthread_join, (pthread_t thread, void** result), (thread, result))
COMPAT(int, pthread_detach, (pthread_t thread), (thread))
COMPAT(int, pthread_once, (pthread_once_t * once, void (*init)(void)), (once, init))
COMPAT(int, pthread_key_create, (pthread_key_t * key, void (*destructor)(void*)), (key, destructor))
COMPAT(int, pthread_key_delete, (pthread_key_t key), (key))
COMPAT(void*, pthread_getspecific, (pthread_key_t key), (key))
COMPAT(int, pthread_setspecific, (pthread_key_t key, const void* value), (key, value))

#if defined(__GLIBC__)
/* libstdc++ asks for this one (weakly) to tell whether threads are in use. */
int __pthread_key_create_compat(pthread_key_t* key, void (*destructor)(void*));
__asm__(".symver __pthread_key_create_compat, __pthread_key_create@" COMPAT_VERSION);
HIDDEN int __wrap___pthread_key_create(pthread_key_t* key, void (*destructor)(void*));
int __wrap___pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) {
  return __pthread_key_create_compat(key, destructor);
}

/* glibc 2.32 tells libstdc++ through this byte that the process has a single
   thread, so reference counts may skip atomic instructions. 0 ("maybe
   several threads") is always correct: atomics every time. */
HIDDEN char __libc_single_threaded = 0;

/* glibc 2.35's fast lookup of a code address's unwind tables, which GCC 12's
   unwinder (libgcc_eh, linked in) calls to find where a C++ exception is
   caught, with no fallback. This is the lookup libgcc did before: walk the
   loaded objects with dl_iterate_phdr (glibc 2.2.5) to the one whose
   segments hold the address, and give its PT_GNU_EH_FRAME. */
struct find_object_query {
  uintptr_t address;
  struct dl_find_object* result;
  int found;
};

static int find_object_in(struct dl_phdr_info* info, size_t size, void* data) {
  struct find_object_query* query = (struct find_object_query*)data;
  uintptr_t low = UINTPTR_MAX, high = 0;
  const ElfW(Phdr)* eh_frame = NULL;
  int holds = 0;
  (void)size;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* phdr = &info->dlpi_phdr[i];
    if (phdr->p_type == PT_LOAD) {
      uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
      uintptr_t end = start + phdr->p_memsz;
      if (query->address >= start && query->address < end) holds = 1;
      if (start < low) low = start;
      if (end > high) high = end;
    } else if (phdr->p_type == PT_GNU_EH_FRAME) {
      eh_frame = phdr;
    }
  }
  if (!holds) return 0;
  memset(query->result, 0, sizeof *query->result);
  query->result->dlfo_map_start = (void*)low;
  query->result->dlfo_map_end = (void*)high;
  query->result->dlfo_eh_frame = eh_frame ? (void*)(info->dlpi_addr + eh_frame->p_vaddr) : NULL;
  query->found = 1;
  return 1;
}

HIDDEN int _dl_find_object(void* address, struct dl_find_object* result);
int _dl_find_object(void* address, struct dl_find_object* result) {
  struct find_object_query query = {(uintptr_t)address, result, 0};
  dl_iterate_phdr(find_object_in, &query);
  return query.found ? 0 : -1;
}

/* glibc 2.38 headers send C++ (always _GNU_SOURCE, so C2X) calls of sscanf
   and the strto* family to new __isoc23_* symbols (GLIBC_2.38), which only
   add C23's 0b prefixes. Where they are in use, each gets a hidden definition
   that calls the classic function, named by its assembler name so the same
   redirection cannot apply. (Not reached on glibc 2.36, where this is built
   and checked: written for newer build hosts.) */
#if __GLIBC_PREREQ(2, 38)
#include <stdarg.h>
extern int classic_vsscanf(const char* s, const char* format, va_list args) __asm__("__isoc99_vsscanf");
extern long classic_strtol(const char* s, char** end, int base) __asm__("strtol");
extern unsigned long classic_strtoul(const char* s, char** end, int base) __asm__("strtoul");
extern long long classic_strtoll(const char* s, char** end, int base) __asm__("strtoll");
extern unsigned long long classic_strtoull(const char* s, char** end, int base) __asm__("strtoull");

HIDDEN int __isoc23_sscanf(const char* s, const char* format, ...);
int __isoc23_sscanf(const char* s, const char* format, ...) {
  va_list args;
  va_start(args, format);
  int result = classic_vsscanf(s, format, args);
  va_end(args);
  return result;
}
HIDDEN int __isoc23_vsscanf(const char* s, const char* format, va_list args);
int __isoc23_vsscanf(const char* s, const char* format, va_list args) {
  return classic_vsscanf(s, format, args);
}
HIDDEN long __isoc23_strtol(const char* s, char** end, int base);
long __isoc23_strtol(const char* s, char** end, int base) { return classic_strtol(s, end, base); }
HIDDEN unsigned long __isoc23_strtoul(const char* s, char** end, int base);
unsigned long __isoc23_strtoul(const char* s, char** end, int base) { return classic_strtoul(s, end, base); }
HIDDEN long long __isoc23_strtoll(const char* s, char** end, int base);
long long __isoc23_strtoll(const char* s, char** end, int base) { return classic_strtoll(s, end, base); }
HIDDEN unsigned long long __isoc23_strtoull(const char* s, char** end, int base);
unsigned long long __isoc23_strtoull(const char* s, char** end, int base) {
  return classic_strtoull(s, end, base);
}
#endif

/* glibc 2.36: std::random_device's "arc4random" source. From getentropy
   (glibc 2.25), which never fails for 4 bytes once the kernel's pool is
   ready. */
HIDDEN uint32_t arc4random(void);
uint32_t arc4random(void) {
  uint32_t value;
  if (getentropy(&value, sizeof value) != 0) abort();
  return value;
}
#endif
