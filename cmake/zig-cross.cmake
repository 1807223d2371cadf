# cmake/zig-cross.cmake - cross-compile libovl with zig's C compiler (clang
# with the headers and link stubs of each target's libc), to check that it
# compiles and links for systems this project has no host for:
#
#   cmake -S . -B build-cross/x86_64-macos -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/zig-cross.cmake -DOVL_ZIG_TARGET=x86_64-macos \
#     -DOVL_ZIG=/path/to/zig -DOVL_BUILD_TESTS=OFF -DOVL_BUILD_EXAMPLES=OFF
#
# OVL_ZIG_TARGET: x86_64-macos, aarch64-macos (CMAKE_SYSTEM_NAME Darwin, so
# the build takes the Apple branch of CMakeLists.txt) or x86_64-freebsd.
# OVL_ZIG: the zig executable (default: zig on PATH). scripts/test-cross.sh
# installs zig from PyPI (ziglang) and runs this for each target. What it
# builds is never run here.
if(NOT OVL_ZIG_TARGET)
  message(FATAL_ERROR "zig-cross.cmake: set OVL_ZIG_TARGET (x86_64-macos, aarch64-macos, x86_64-freebsd)")
endif()
if(NOT OVL_ZIG)
  find_program(OVL_ZIG zig REQUIRED)
endif()
# try_compile (compiler checks, FindThreads) reads this file again in a
# project of its own: hand it the same two settings.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES OVL_ZIG_TARGET OVL_ZIG)

string(REGEX MATCH "^[^-]+" CMAKE_SYSTEM_PROCESSOR "${OVL_ZIG_TARGET}")
if(OVL_ZIG_TARGET MATCHES "-macos")
  set(CMAKE_SYSTEM_NAME Darwin)
  # Darwin 20 is macOS 11, the first with arm64.
  set(CMAKE_SYSTEM_VERSION 20.0)
  # CMake's Darwin platform turns rpath support on (and with it the
  # @rpath/libovl.0.1.dylib install name a native build gets) only after
  # asking sw_vers for the macOS version, which a cross build cannot; a
  # value set here is reset before the platform file runs, so it is set in
  # the rules override, read after it. Without it the dylib would record
  # its build directory as its install name.
  set(CMAKE_USER_MAKE_RULES_OVERRIDE ${CMAKE_CURRENT_LIST_DIR}/zig-cross-rules.cmake)
elseif(OVL_ZIG_TARGET MATCHES "-freebsd")
  set(CMAKE_SYSTEM_NAME FreeBSD)
  set(CMAKE_SYSTEM_VERSION 14.0)
else()
  message(FATAL_ERROR "zig-cross.cmake: no CMake system for ${OVL_ZIG_TARGET}")
endif()

# "zig cc" is one command with a subcommand: CMake takes a list here. The
# target goes in as --target=, which zig cc understands like clang.
set(CMAKE_C_COMPILER "${OVL_ZIG}" cc)
set(CMAKE_C_COMPILER_TARGET ${OVL_ZIG_TARGET})
# The tests' C++ header check (check_language(CXX)) would otherwise find
# the host's g++.
set(CMAKE_CXX_COMPILER "${OVL_ZIG}" c++)
set(CMAKE_CXX_COMPILER_TARGET ${OVL_ZIG_TARGET})
# The archiver cannot be a list: small scripts in the build tree (skipped
# inside try_compile, which archives nothing).
get_property(_ovl_in_try GLOBAL PROPERTY IN_TRY_COMPILE)
if(NOT _ovl_in_try)
  foreach(_tool ar ranlib)
    set(_w ${CMAKE_BINARY_DIR}/zig-${_tool})
    file(WRITE ${_w} "#!/bin/sh\nexec \"${OVL_ZIG}\" ${_tool} \"$@\"\n")
    file(CHMOD ${_w} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
      GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  set(CMAKE_AR ${CMAKE_BINARY_DIR}/zig-ar CACHE FILEPATH "zig ar" FORCE)
  set(CMAKE_RANLIB ${CMAKE_BINARY_DIR}/zig-ranlib CACHE FILEPATH "zig ranlib" FORCE)
endif()

# Nothing of the host's: no host libraries or headers for the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
