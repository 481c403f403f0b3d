# The Debian package: `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr
# gives preforkd_VERSION_ARCH.deb with /usr/sbin/preforkd, /etc/preforkd/preforkd.yaml (a
# conffile) and the units in /lib/systemd/system: the `cmake --install` layout.
set(PF_DEB_MAINTAINER "preforkd maintainers <maintainers@users.noreply.b-seed-f042f708.example>"
    CACHE STRING "The Debian package's Maintainer field")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME preforkd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${PF_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "prefork HTTP/1.1 server daemon")
# Lines of the extended description (CPack indents them as the control file wants).
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "A primary process binds the listening sockets, forks one worker per CPU and"
  "supervises them: respawn with crash-loop backoff, a hung-worker watchdog,"
  "recycling and zero-downtime reload. Each worker serves HTTP/1.1 from an epoll"
  "loop with llhttp. Runs under systemd (Type=notify, watchdog, socket activation)"
  "and serves Prometheus metrics.")
# The files' paths are the configured ones (the units and the binary name them).
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE https://github.com/preforkd/preforkd)
# Depends computed by dpkg-shlibdeps (dpkg-dev) from the binary's libraries: libc, libyaml.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/conffiles.in ${CMAKE_BINARY_DIR}/deb/conffiles @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/deb/conffiles ${CMAKE_CURRENT_LIST_DIR}/deb/postinst
    ${CMAKE_CURRENT_LIST_DIR}/deb/prerm ${CMAKE_CURRENT_LIST_DIR}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Read by cpack itself: refuses a package whose paths are not Debian's.
configure_file(${CMAKE_CURRENT_LIST_DIR}/cpack_project_config.cmake.in
               ${CMAKE_BINARY_DIR}/deb/cpack_project_config.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/deb/cpack_project_config.cmake)

include(CPack)
