// The CUDA decoders (ts_cuda_quant.cuh) built for the host: dequantizes a row read from a file,
// for runtime/tests/cuda_host.rs to compare with the CPU reference bit for bit.
//   host_check TYPE N IN OUT
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ts_cuda_quant.cuh"

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    const int type = atoi(argv[1]);
    const long n = atol(argv[2]);
    FILE *in = fopen(argv[3], "rb");
    if (!in) return 3;
    std::vector<u8> row(1 << 24);
    const size_t got = fread(row.data(), 1, row.size(), in);
    fclose(in);
    if (n % 32 != 0 || got < (size_t)(n / ts_block_elems(type) * ts_block_bytes(type))) return 4;
    std::vector<float> y(n);
    for (long s = 0; s < n / 32; s++) ts_dequant_sub32(type, row.data(), s, y.data() + s * 32);
    FILE *out = fopen(argv[4], "wb");
    if (!out) return 5;
    fwrite(y.data(), sizeof(float), y.size(), out);
    fclose(out);
    return 0;
}
