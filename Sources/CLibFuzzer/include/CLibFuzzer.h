#ifndef NESTCACHE_CLIBFUZZER_H
#define NESTCACHE_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's entry point for a program that has its own main (SwiftPM names every executable's
// main itself, so nestcache-fuzz cannot use libFuzzer's). Defined by the toolchain's
// libclang_rt.fuzzer, linked only in `make fuzz` builds (-sanitize=fuzzer).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
