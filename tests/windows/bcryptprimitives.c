/* bcryptprimitives.c - a stand-in for the ProcessPrng export of
 * bcryptprimitives.dll, which Go >= 1.24 programs require at start-up and
 * wine 8.0 lacks. Only for running Go test binaries under wine
 * (scripts/test-windows-go.sh installs it into the private wine prefix);
 * never shipped. */
#include <windows.h>
#include <ntsecapi.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
