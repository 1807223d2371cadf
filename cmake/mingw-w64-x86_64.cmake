# Cross-compile ovl.dll for 64-bit Windows with Debian's mingw-w64
# (apt-get install gcc-mingw-w64-x86-64):
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake
# The result runs under wine (scripts/test-windows.sh) and on Windows.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_ovl_mingw x86_64-w64-mingw32)
# Debian ships two thread models; the win32 one keeps libwinpthread out of
# the DLL's imports (the plain name is an alternative that may point to
# either).
find_program(CMAKE_C_COMPILER NAMES ${_ovl_mingw}-gcc-win32 ${_ovl_mingw}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${_ovl_mingw}-g++-win32 ${_ovl_mingw}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${_ovl_mingw}-windres)
find_program(CMAKE_AR NAMES ${_ovl_mingw}-gcc-ar ${_ovl_mingw}-ar)
find_program(CMAKE_RANLIB NAMES ${_ovl_mingw}-gcc-ranlib ${_ovl_mingw}-ranlib)
find_program(CMAKE_OBJDUMP NAMES ${_ovl_mingw}-objdump)

set(CMAKE_FIND_ROOT_PATH /usr/${_ovl_mingw})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Test programs run under wine when cross-compiling (try_run, ctest).
find_program(_ovl_wine NAMES wine64 wine)
if(_ovl_wine)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${_ovl_wine})
endif()
