#ifndef LAMPCELL_CMODBUS_SHIM_H
#define LAMPCELL_CMODBUS_SHIM_H
// libmodbus (Debian libmodbus-dev 3.1.6) as a Swift system library.
#include <modbus/modbus.h>
#include <errno.h>

/// errno after a failed libmodbus call; Swift cannot read the `errno` macro reliably across threads.
static inline int lampcell_modbus_errno(void) { return errno; }
/// Sets errno (tests and wrappers that need to restore it).
static inline void lampcell_modbus_set_errno(int value) { errno = value; }
#endif
