#ifndef LAMPCELL_CPOSTGRES_H
#define LAMPCELL_CPOSTGRES_H
// libpq (Debian libpq-dev, PostgreSQL 15), the plant database's client, loaded only when a plant database is
// configured. Linked directly, libpq and what it needs (OpenSSL, Kerberos, LDAP, GnuTLS…) add about 5 MB to every
// lampcelld's resident memory under mlockall, plant database or not (issue 17: 40 MB). The libpq functions LampCell
// calls are defined in loader.c with libpq's own prototypes (so the compiler checks them) and forward to the
// library that `lampcell_pq_load` opened with dlopen.
#include <stddef.h>
#include <postgresql/libpq-fe.h>

/// Opens libpq.so.5 and resolves every function LampCell calls, once per process; later calls return the first
/// call's result. Returns 0, or -1 with a one-line reason (the dlopen or dlsym error) in `error`.
/// Thread: any (serialized by pthread_once). Call it before any PQ function.
int lampcell_pq_load(char *error, size_t capacity);

#endif
