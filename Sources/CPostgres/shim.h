#ifndef LAMPCELL_CPOSTGRES_SHIM_H
#define LAMPCELL_CPOSTGRES_SHIM_H
// libpq (Debian libpq-dev, PostgreSQL 15) as a Swift system library: the plant database's client.
#include <libpq-fe.h>
#endif
