# cmake/install.cmake - `cmake --install` for ovl: the header, the shared
# library with its SONAME links (ovl.dll + import library on Windows), the
# CMake package (find_package(ovl CONFIG) -> ovl::ovl) and ovl.pc.
# Included once at the end of the top-level CMakeLists.txt, after the `ovl`
# target exists. Checked by scripts/test-install.sh (also a ctest test).

option(OVL_INSTALL "Generate the install rules" ON)

# The same name inside a build that includes ovl with add_subdirectory.
if(NOT TARGET ovl::ovl)
  add_library(ovl::ovl ALIAS ovl)
endif()

if(NOT OVL_INSTALL)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(OVL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ovl
    CACHE STRING "Where ovlConfig.cmake goes, relative to the prefix")

# libovl.so.MAJOR.MINOR.PATCH, the SONAME link libovl.so.MAJOR.MINOR and the
# development link libovl.so; on Windows ovl.dll in bin/ and libovl.dll.a
# (or ovl.lib) in lib/.
install(TARGETS ovl EXPORT ovlTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/ovl.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The CMake package. The library's own dependencies (pthreads, ntdll) are
# private to the shared object, so the package needs no find_dependency.
install(EXPORT ovlTargets NAMESPACE ovl::
  DESTINATION ${OVL_INSTALL_CMAKEDIR} FILE ovlTargets.cmake)
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/ovlConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ovlConfig.cmake
  INSTALL_DESTINATION ${OVL_INSTALL_CMAKEDIR})
# 0.x: the SONAME carries MAJOR.MINOR, so only the same minor is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/ovlConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ovlConfig.cmake
              ${PROJECT_BINARY_DIR}/ovlConfigVersion.cmake
  DESTINATION ${OVL_INSTALL_CMAKEDIR})

# pkg-config. Paths are relative to the .pc file (${pcfiledir}), so the file
# stays right when the tree is installed with --prefix or DESTDIR or moved.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(OVL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _ovl_pc_up "/_p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/_p")
  string(REGEX REPLACE "/$" "" _ovl_pc_up "${_ovl_pc_up}")
  set(OVL_PC_PREFIX "\${pcfiledir}/${_ovl_pc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(OVL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(OVL_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(OVL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(OVL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/ovl.pc.in ${PROJECT_BINARY_DIR}/ovl.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ovl.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# Documentation that exists in the tree.
foreach(_ovl_doc README.md CHANGELOG.md docs/API.md docs/DESIGN.md)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${_ovl_doc})
    install(FILES ${PROJECT_SOURCE_DIR}/${_ovl_doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()

# The install test and the API.md freshness check, run by ctest. Native
# POSIX builds only: the script uses nm, ldd, make and pkg-config. Not in
# sanitizer builds: the consumers are plain programs, and an ASan/TSan
# libovl cannot be loaded into a program without the sanitizer runtime.
if(OVL_BUILD_TESTS AND NOT WIN32 AND NOT CMAKE_CROSSCOMPILING)
  if(NOT OVL_SANITIZE)
    add_test(NAME install
      COMMAND ${PROJECT_SOURCE_DIR}/scripts/test-install.sh --build-dir ${PROJECT_BINARY_DIR})
    set_tests_properties(install PROPERTIES TIMEOUT 300 LABELS install)
  endif()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/scripts/gen-api-md.py)
    add_test(NAME docs.api_md
      COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/gen-api-md.py --check)
    set_tests_properties(docs.api_md PROPERTIES LABELS docs)
  endif()
endif()
