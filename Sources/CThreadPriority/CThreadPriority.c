// The function is inline in include/CThreadPriority.h; a C target needs one source file.
