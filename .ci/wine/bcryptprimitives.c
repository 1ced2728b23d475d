/* A stand-in for Windows' bcryptprimitives.dll, for running the test suite
 * under wine 8 only (wine 8 lacks this DLL; Rust's std >= 1.78 imports
 * ProcessPrng from it). It ships nowhere: .ci/run builds it with MinGW and
 * copies it into the CI wine prefix. ProcessPrng fills the buffer from
 * RtlGenRandom (advapi32!SystemFunction036), the OS's own CSPRNG. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
