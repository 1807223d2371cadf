/* errors.c - the one place where OS error numbers (errno, Win32) become
 * OVL_E codes, and where the code list becomes names and messages. */
#include "ovl_internal.h"

#include <errno.h>

/* clang-format off */
#define OVL__ERR_MSG(name, value, msg) case (value): return msg;
#define OVL__ERR_NAME(name, value, msg) case (value): return "OVL_" #name;
/* clang-format on */

OVL_API const char *ovl_strerror(int32_t code)
{
    switch (code) {
        OVL_ERRORS(OVL__ERR_MSG)
    default: return "unknown error";
    }
}

OVL_API const char *ovl_error_name(int32_t code)
{
    switch (code) {
        OVL_ERRORS(OVL__ERR_NAME)
    default: return "OVL_E?";
    }
}

int32_t ovl__errno_to_code(int err)
{
    switch (err) {
    case 0: return OVL_OK;
    case EINVAL: return OVL_EINVAL;
    case EBADF: return OVL_EBADF;
    case ENOMEM: return OVL_ENOMEM;
    case ECANCELED: return OVL_ECANCELED;
    case EINTR: return OVL_EINTR;
    case EAGAIN: return OVL_EAGAIN;
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK: return OVL_EAGAIN;
#endif
    case EIO: return OVL_EIO;
    case EACCES: return OVL_EACCES;
    case EPERM: return OVL_EACCES;
    case ENOSPC: return OVL_ENOSPC;
#ifdef EDQUOT
    case EDQUOT: return OVL_ENOSPC;
#endif
    case EPIPE: return OVL_EPIPE;
    case ECONNRESET: return OVL_ECONNRESET;
    case EFAULT: return OVL_EFAULT;
    case EISDIR: return OVL_EISDIR;
    case EFBIG: return OVL_EFBIG;
    case EOVERFLOW: return OVL_EFBIG;
    case ENOSYS: return OVL_ENOTSUP;
    case EOPNOTSUPP: return OVL_ENOTSUP;
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP: return OVL_ENOTSUP;
#endif
    case ESPIPE: return OVL_ENOTSUP;
    case ETIMEDOUT: return OVL_ETIMEDOUT;
#ifdef ETIME
    case ETIME: return OVL_ETIMEDOUT;
#endif
    case ECONNREFUSED: return OVL_ECONNREFUSED;
    case EADDRINUSE: return OVL_EADDRINUSE;
    case ENETUNREACH: return OVL_ENETUNREACH;
    case ENETDOWN: return OVL_ENETUNREACH;
    case EHOSTUNREACH: return OVL_EHOSTUNREACH;
#ifdef EHOSTDOWN
    case EHOSTDOWN: return OVL_EHOSTUNREACH;
#endif
    case ECONNABORTED: return OVL_ECONNABORTED;
    case ENOTCONN: return OVL_ENOTCONN;
    case EADDRNOTAVAIL: return OVL_EADDRNOTAVAIL;
    default: return OVL_EOS;
    }
}

#ifdef _WIN32
#  include <windows.h>
#  include <winsock2.h>

int32_t ovl__win32_to_code(uint32_t err)
{
    switch (err) {
    case ERROR_SUCCESS: return OVL_OK;
    case ERROR_INVALID_HANDLE:
    case WSAENOTSOCK: /* a handle that is not a socket, or a closed one */
    case WSAEBADF: return OVL_EBADF;
    case ERROR_INVALID_PARAMETER:
    case WSAEINVAL: return OVL_EINVAL; /* AcceptEx on a non-listening socket */
    case WSAEFAULT: return OVL_EFAULT;
    case WSAEACCES: return OVL_EACCES;
    case WSAEINTR: return OVL_EINTR;
    case WSAEWOULDBLOCK: return OVL_EAGAIN;
    case WSAENOBUFS: return OVL_ENOMEM;
    case WSAEOPNOTSUPP:
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT: return OVL_ENOTSUP;
    case WSAESHUTDOWN: return OVL_EPIPE; /* a send after shutdown(SD_SEND) */
    case WSAENETRESET: return OVL_ECONNRESET;
    case WSAEHOSTDOWN: return OVL_EHOSTUNREACH;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NOT_ENOUGH_QUOTA:
    case ERROR_NO_SYSTEM_RESOURCES: return OVL_ENOMEM;
    case ERROR_OPERATION_ABORTED: return OVL_ECANCELED;
    case ERROR_ACCESS_DENIED: return OVL_EACCES;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL: return OVL_ENOSPC;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED: return OVL_EPIPE;
    case ERROR_NETNAME_DELETED:
    case WSAECONNRESET: return OVL_ECONNRESET;
    case WSAECONNABORTED:
    case ERROR_CONNECTION_ABORTED: return OVL_ECONNABORTED;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT: return OVL_ETIMEDOUT;
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED: return OVL_ECONNREFUSED;
    case WSAEADDRINUSE:
    case ERROR_ADDRESS_ALREADY_ASSOCIATED: return OVL_EADDRINUSE;
    case WSAENETUNREACH:
    case WSAENETDOWN:
    case ERROR_NETWORK_UNREACHABLE: return OVL_ENETUNREACH;
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE: return OVL_EHOSTUNREACH;
    case WSAENOTCONN: return OVL_ENOTCONN;
    case WSAEADDRNOTAVAIL: return OVL_EADDRNOTAVAIL;
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION: return OVL_ENOTSUP;
    case ERROR_IO_DEVICE:
    case ERROR_CRC:
    case ERROR_SECTOR_NOT_FOUND: return OVL_EIO;
    case ERROR_NOACCESS: return OVL_EFAULT;
    case ERROR_DIRECTORY: return OVL_EISDIR;
    case ERROR_FILE_TOO_LARGE:
    case ERROR_NEGATIVE_SEEK: return OVL_EFBIG;
    default: return OVL_EOS;
    }
}
#endif
