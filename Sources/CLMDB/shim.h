#ifndef CHAOSTRACE_CLMDB_SHIM_H
#define CHAOSTRACE_CLMDB_SHIM_H
#include <lmdb.h>

static inline const char *chaostrace_lmdb_version_string(void) { return MDB_VERSION_STRING; }
#endif
