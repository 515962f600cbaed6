#ifndef LAMPCELL_CSYSTEMD_SHIM_H
#define LAMPCELL_CSYSTEMD_SHIM_H
// libsystemd (Debian libsystemd-dev) as a Swift system library.
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif
