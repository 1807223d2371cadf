# cmake/windows.cmake - the Windows-only part of the build (mingw-w64 cross
# or native). Included at the end of the top-level CMakeLists.txt inside
# if(WIN32), once the ovl targets exist. It makes the DLL
#   - named ovl.dll (import library libovl.dll.a, so -lovl works),
#   - export exactly dll/ovl.def (the same list as dll/ovl.map on ELF),
#   - import only system DLLs: libgcc linked statically, no libwinpthread
#     (the core uses Win32 threads, see dll/platform.h),
# and adds the Windows test runner (tests/windows) when tests are wanted.
if(NOT WIN32)
  return()
endif()

set(OVL_DEF_FILE ${CMAKE_CURRENT_LIST_DIR}/../dll/ovl.def)
get_filename_component(OVL_DEF_FILE ${OVL_DEF_FILE} ABSOLUTE)

# platform.h uses Win32 threads: drop the pthreads link the POSIX build adds.
get_target_property(_ovl_libs ovl LINK_LIBRARIES)
if(_ovl_libs)
  list(REMOVE_ITEM _ovl_libs Threads::Threads)
  set_property(TARGET ovl PROPERTY LINK_LIBRARIES ${_ovl_libs})
endif()
# RtlNtStatusToDosError (dll/iocp.c) lives in ntdll; the socket calls of the
# connection ops (and WSAIoctl, which yields AcceptEx/ConnectEx) in ws2_32.
target_link_libraries(ovl PRIVATE ntdll ws2_32)
target_compile_definitions(ovl_objects PRIVATE WIN32_LEAN_AND_MEAN _WIN32_WINNT=0x0601)

set_target_properties(ovl PROPERTIES
  PREFIX ""
  OUTPUT_NAME ovl
  IMPORT_PREFIX "lib"
  LINK_DEPENDS ${OVL_DEF_FILE})
if(MINGW)
  target_link_options(ovl PRIVATE -static-libgcc -Wl,--no-undefined
    -Wl,--exclude-all-symbols ${OVL_DEF_FILE})
elseif(MSVC)
  target_link_options(ovl PRIVATE /DEF:${OVL_DEF_FILE})
endif()

option(OVL_BUILD_WINDOWS_TESTS "Build the C test suite for Windows (tests/windows)" ON)
if(OVL_BUILD_WINDOWS_TESTS)
  enable_testing()
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../tests/windows ${CMAKE_BINARY_DIR}/tests-windows)
endif()
