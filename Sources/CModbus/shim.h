#ifndef LAMPCELL_CMODBUS_SHIM_H
#define LAMPCELL_CMODBUS_SHIM_H
// libmodbus (Debian libmodbus-dev 3.1.6) as a Swift system library.
#include <modbus/modbus.h>
#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/prctl.h>

/// errno after a failed libmodbus call; Swift cannot read the `errno` macro reliably across threads.
static inline int lampcell_modbus_errno(void) { return errno; }
/// Sets errno (tests and wrappers that need to restore it).
static inline void lampcell_modbus_set_errno(int value) { errno = value; }

/// libmodbus' own errno values (macros over an enum, which Swift does not import).
enum {
    LAMPCELL_MODBUS_ENOBASE = MODBUS_ENOBASE,
    LAMPCELL_EMBXILFUN = EMBXILFUN,
    LAMPCELL_EMBXGTAR = EMBXGTAR,
    LAMPCELL_EMBBADCRC = EMBBADCRC,
    LAMPCELL_EMBBADDATA = EMBBADDATA,
    LAMPCELL_EMBBADEXC = EMBBADEXC,
    LAMPCELL_EMBUNKEXC = EMBUNKEXC,
    LAMPCELL_EMBMDATA = EMBMDATA,
    LAMPCELL_EMBBADSLAVE = EMBBADSLAVE,
};

/// 1 when `host` is a dotted IPv4 literal (libmodbus' `modbus_new_tcp` accepts only those).
static inline int lampcell_is_ipv4_literal(const char *host) {
    struct in_addr address;
    return inet_pton(AF_INET, host, &address) == 1;
}

/// Sets O_NONBLOCK and FD_CLOEXEC on `fd`. Returns 0 or -errno.
static inline int lampcell_socket_prepare(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) return -errno;
    return 0;
}

/// A pipe whose ends are both non-blocking and close-on-exec. Returns 0 or -errno.
static inline int lampcell_pipe_nonblocking(int fds[2]) {
    if (pipe(fds) == -1) return -errno;
    int rc = lampcell_socket_prepare(fds[0]);
    if (rc == 0) rc = lampcell_socket_prepare(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        fds[0] = fds[1] = -1;
    }
    return rc;
}

/// Names the calling thread (at most 15 characters are kept). Returns 0 or -errno.
static inline int lampcell_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0) == -1 ? -errno : 0;
}

/// A non-blocking IPv4 TCP listening socket bound to `host`:`port` (`port` 0: an ephemeral port).
/// Returns the descriptor or -errno (-EINVAL when `host` is not an IPv4 literal).
static inline int lampcell_tcp_listen(const char *host, int port, int backlog) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) return -errno;
    int one = 1;
    int rc = lampcell_socket_prepare(fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) rc = -errno;
    if (rc == 0 && bind(fd, (struct sockaddr *)&address, sizeof address) == -1) rc = -errno;
    if (rc == 0 && listen(fd, backlog) == -1) rc = -errno;
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/// The local port a socket is bound to, or -errno.
static inline int lampcell_tcp_local_port(int fd) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    if (getsockname(fd, (struct sockaddr *)&address, &length) == -1) return -errno;
    return ntohs(address.sin_port);
}

/// Accepts one pending connection as a non-blocking, close-on-exec socket with TCP_NODELAY.
/// Returns the descriptor or -errno (-EAGAIN when none is pending).
static inline int lampcell_tcp_accept(int listen_fd) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd == -1) return -errno;
    int rc = lampcell_socket_prepare(fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/// send() that never raises SIGPIPE. Returns the bytes sent or -errno.
static inline long lampcell_send(int fd, const void *bytes, unsigned long count) {
    long sent = send(fd, bytes, count, MSG_NOSIGNAL);
    return sent == -1 ? -errno : sent;
}

/// read() returning the bytes read (0 at end of stream) or -errno.
static inline long lampcell_read(int fd, void *bytes, unsigned long count) {
    long received = read(fd, bytes, count);
    return received == -1 ? -errno : received;
}

/// A blocking IPv4 TCP connection to 127.0.0.1:`port` (tests use it as a raw client). Returns the fd or -errno.
static inline int lampcell_tcp_connect_loopback(int port) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) return -errno;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) == -1) {
        int saved = errno;
        close(fd);
        return -saved;
    }
    return fd;
}

/// Sets SO_RCVTIMEO on a blocking socket (tests' raw clients). Returns 0 or -errno.
static inline int lampcell_set_receive_timeout_ms(int fd, int milliseconds) {
    struct timeval timeout;
    timeout.tv_sec = milliseconds / 1000;
    timeout.tv_usec = (milliseconds % 1000) * 1000;
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1 ? -errno : 0;
}
#endif
