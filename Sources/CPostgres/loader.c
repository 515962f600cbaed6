// libpq, opened on first use (see include/CPostgres.h).
#define _GNU_SOURCE
#include "CPostgres.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// The shared object a Debian libpq5 installs.
static const char *const library_name = "libpq.so.5";

// Every libpq function LampCell calls: X(return type, name, parameters, arguments) for those that return a value,
// V(name, parameters, arguments) for those that return nothing.
#define LAMPCELL_PQ_FUNCTIONS(X, V)                                                                                  \
    X(PGconn *, PQconnectdbParams, (const char *const *keywords, const char *const *values, int expand),          \
      (keywords, values, expand))                                                                                  \
    X(ConnStatusType, PQstatus, (const PGconn *conn), (conn))                                                      \
    X(char *, PQerrorMessage, (const PGconn *conn), (conn))                                                        \
    X(PGresult *, PQexecParams,                                                                                    \
      (PGconn *conn, const char *command, int count, const Oid *types, const char *const *values,                 \
       const int *lengths, const int *formats, int resultFormat),                                                 \
      (conn, command, count, types, values, lengths, formats, resultFormat))                                      \
    X(PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query))                                        \
    X(int, PQsendQuery, (PGconn *conn, const char *query), (conn, query))                                          \
    X(PGresult *, PQgetResult, (PGconn *conn), (conn))                                                             \
    X(ExecStatusType, PQresultStatus, (const PGresult *res), (res))                                                \
    X(int, PQputCopyData, (PGconn *conn, const char *buffer, int bytes), (conn, buffer, bytes))                    \
    X(int, PQputCopyEnd, (PGconn *conn, const char *message), (conn, message))                                     \
    X(char *, PQresultErrorField, (const PGresult *res, int code), (res, code))                                    \
    X(int, PQnfields, (const PGresult *res), (res))                                                                \
    X(int, PQntuples, (const PGresult *res), (res))                                                                \
    X(char *, PQfname, (const PGresult *res, int column), (res, column))                                           \
    X(int, PQgetisnull, (const PGresult *res, int row, int column), (res, row, column))                            \
    X(char *, PQgetvalue, (const PGresult *res, int row, int column), (res, row, column))                          \
    X(char *, PQcmdTuples, (PGresult *res), (res))                                                                 \
    X(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **message), (conninfo, message))            \
    V(PQconninfoFree, (PQconninfoOption *options), (options))                                                     \
    V(PQclear, (PGresult *res), (res))                                                                             \
    V(PQfinish, (PGconn *conn), (conn))

#define LAMPCELL_PQ_POINTER(type, name, parameters, arguments) static type(*loaded_##name) parameters;
#define LAMPCELL_PQ_VOID_POINTER(name, parameters, arguments) LAMPCELL_PQ_POINTER(void, name, parameters, arguments)
LAMPCELL_PQ_FUNCTIONS(LAMPCELL_PQ_POINTER, LAMPCELL_PQ_VOID_POINTER)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_result = -1;
static char load_error[512];

static void load(void) {
    void *library = dlopen(library_name, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(load_error, sizeof load_error, "cannot load %s (Debian package libpq5): %s", library_name, dlerror());
        return;
    }
#define LAMPCELL_PQ_RESOLVE(type, name, parameters, arguments)                                                    \
    *(void **)(&loaded_##name) = dlsym(library, #name);                                                             \
    if (loaded_##name == NULL) {                                                                                   \
        snprintf(load_error, sizeof load_error, "%s has no %s: %s", library_name, #name, dlerror());              \
        return;                                                                                                    \
    }
#define LAMPCELL_PQ_VOID_RESOLVE(name, parameters, arguments) LAMPCELL_PQ_RESOLVE(void, name, parameters, arguments)
    LAMPCELL_PQ_FUNCTIONS(LAMPCELL_PQ_RESOLVE, LAMPCELL_PQ_VOID_RESOLVE)
    load_result = 0;
}

int lampcell_pq_load(char *error, size_t capacity) {
    pthread_once(&load_once, load);
    if (load_result != 0 && error != NULL && capacity > 0) snprintf(error, capacity, "%s", load_error);
    return load_result;
}

/// A PQ function called before `lampcell_pq_load` succeeded: a programming error (the Swift side loads first).
static void require_loaded(const char *name) {
    if (lampcell_pq_load(NULL, 0) == 0) return;
    fprintf(stderr, "lampcelld: %s called without libpq: %s\n", name, load_error);
    abort();
}

// Hidden: the forwarders serve this binary's Swift code only, never libpq's own calls between its functions.
#define LAMPCELL_PQ_FORWARD(type, name, parameters, arguments)                                                    \
    __attribute__((visibility("hidden"))) type name parameters {                                                   \
        require_loaded(#name);                                                                                     \
        return loaded_##name arguments;                                                                            \
    }
#define LAMPCELL_PQ_VOID_FORWARD(name, parameters, arguments)                                                     \
    __attribute__((visibility("hidden"))) void name parameters {                                                   \
        require_loaded(#name);                                                                                     \
        loaded_##name arguments;                                                                                   \
    }
LAMPCELL_PQ_FUNCTIONS(LAMPCELL_PQ_FORWARD, LAMPCELL_PQ_VOID_FORWARD)
