SUMMARY = "TensorSharp: on-device LLM runtime for NVIDIA Jetson and ARM boards"
DESCRIPTION = "Loads GGUF models into a fixed memory plan and serves them: the tsharpd daemon \
               (Unix-socket RPC, systemd socket activation), the tsharp command line and the \
               libtensorsharp C library."
HOMEPAGE = "https://example.invalid/tensorsharp"
BUGTRACKER = "https://example.invalid/tensorsharp/issues"
SECTION = "ai"
CVE_PRODUCT = "tensorsharp"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=10;endline=10;md5=86b31c7756a1a7962f28b62856ed4f05"

PV = "0.1.0+git"
# Where the sources come from (a mirror or a local clone may be set in local.conf).
TENSORSHARP_GIT_URI ??= "git://example.invalid/tensorsharp.git;protocol=https"
SRC_URI = "${TENSORSHARP_GIT_URI};branch=main"
# The commit built; scripts/yocto-crates.py regenerates the crate list for it.
SRCREV = "39360bf898e741a8e5150386cc91940ac3123ccc"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd ptest-cargo pkgconfig

# The runtime, the CLI and the daemon (root package), and the C library.
CARGO_BUILD_FLAGS += "--workspace --exclude tensorsharp-kernel-bench --exclude tensorsharp-testkit"

PACKAGECONFIG ??= ""
# CUDA backend (meta-tegra): the runtime libraries it loads.
PACKAGECONFIG[cuda] = "--features cuda,,,tegra-libraries-cuda cuda-nvrtc"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/tensorsharp ${D}${datadir}/tensorsharp/models
    install -m 0644 ${S}/packaging/systemd/tsharpd.socket ${S}/packaging/systemd/tsharpd.service \
        ${D}${systemd_system_unitdir}/
    sed "s|@MODEL@|${datadir}/tensorsharp/models/model.gguf|" ${S}/packaging/tsharpd.toml \
        > ${D}${sysconfdir}/tensorsharp/tsharpd.toml
    chmod 0644 ${D}${sysconfdir}/tensorsharp/tsharpd.toml
    # The C library (header, libraries, pkg-config file) by its own installer, with the debug
    # information kept for OE to split into -dbg.
    DESTDIR=${D} ${S}/ffi/install.sh ${prefix} --no-build --debug --lib-dir ${B}/target/${CARGO_TARGET_SUBDIR}
}

# nooelint: oelint.func.specific - "tegra" is meta-tegra's SoC family override
do_install:append:tegra() {
    install -d ${D}${systemd_system_unitdir}/tsharpd.service.d
    install -m 0644 ${S}/packaging/systemd/tsharpd.service.d/jetson.conf ${D}${systemd_system_unitdir}/tsharpd.service.d/
}

# The socket's group (tsharpd itself runs as a DynamicUser).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system tensorsharp"

SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "tsharpd.socket tsharpd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

PACKAGES =+ "${PN}-cli lib${BPN}"
FILES:${PN} += "${systemd_system_unitdir} ${sysconfdir}/tensorsharp"
FILES:${PN}-cli += "${bindir}/tsharp"
FILES:lib${BPN} += "${libdir}/libtensorsharp.so.1"
FILES:${PN}-dev += "${libdir}/libtensorsharp.so"
FILES:${PN}-staticdev += "${libdir}/libtensorsharp.a"
CONFFILES:${PN} = "${sysconfdir}/tensorsharp/tsharpd.toml"
RDEPENDS:${PN}-ptest += "${PN}-cli"
