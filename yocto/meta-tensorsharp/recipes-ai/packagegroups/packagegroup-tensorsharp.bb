SUMMARY = "TensorSharp: the daemon, its command line and a default model"
DESCRIPTION = "Everything an appliance image needs to serve an LLM over tsharpd's socket."
BUGTRACKER = "https://example.invalid/tensorsharp/issues"
SECTION = "ai"
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "tensorsharp tensorsharp-cli tensorsharp-model-smollm2"
