# cmake/zig-cross-rules.cmake - read by CMake after its platform files when
# cross-building for macOS with cmake/zig-cross.cmake (see there): the rpath
# flag a native macOS build gets from the platform file.
set(CMAKE_SHARED_LIBRARY_RUNTIME_C_FLAG "-Wl,-rpath,")
