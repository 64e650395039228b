// A main() for a fuzz target without libFuzzer: runs LLVMFuzzerTestOneInput
// once on every file of the directories (or files) named on the command line.
// Built with g++, plain and under ASan+UBSan, it keeps every input of the
// checked-in corpora (the seeds and whatever a fuzzer found) passing in CI.

#include <dirent.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// The files of `path` if it is a directory (sorted, so runs are repeatable), else `path`.
std::vector<std::string> inputs_of(const std::string& path) {
    std::vector<std::string> files;
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return {path};
    while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name == "." || name == "..") continue;
        std::string file = path;
        file += '/';
        file += name;
        files.push_back(std::move(file));
    }
    ::closedir(dir);
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        for (const std::string& file : inputs_of(argv[i])) {
            std::ifstream in(file, std::ios::binary);
            if (!in) {
                std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
                return 1;
            }
            const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                          std::istreambuf_iterator<char>());
            std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
            LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                   bytes.size());
            ++runs;
        }
    }
    // An empty corpus would make the test pass while checking nothing.
    if (runs == 0) {
        std::fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    std::fprintf(stderr, "replay: %zu inputs, all passed\n", runs);
    return 0;
}
