// The function is inline in include/CMallocArenas.h; a C target needs one source file.
