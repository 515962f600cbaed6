// crypt(3) of libxcrypt (Debian's libcrypt): the operators' password hashes (yescrypt, as /etc/shadow).
#include <crypt.h>
