#ifndef CHAOSTRACE_CZSTD_SHIM_H
#define CHAOSTRACE_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>

/* Macros Swift cannot import, as functions. */
static inline size_t chaostrace_zstd_compress_bound(size_t size) { return ZSTD_COMPRESSBOUND(size); }
static inline unsigned long long chaostrace_zstd_content_size_unknown(void) { return ZSTD_CONTENTSIZE_UNKNOWN; }
static inline unsigned long long chaostrace_zstd_content_size_error(void) { return ZSTD_CONTENTSIZE_ERROR; }
#endif
