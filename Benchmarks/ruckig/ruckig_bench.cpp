// The reference for `make bench` item 11: Ruckig's own planning time on the problem distribution of issue 17, in the
// same run as LampCell's planner, on the same problems.
//
// Built by lampbench against Ruckig's sources (the PyPI sdist ruckig 0.17.3, fetched and checked by its SHA-256):
//   c++ -O3 -std=c++17 -DNDEBUG -Iinclude ruckig_bench.cpp src/ruckig/*.cpp (but cloud_client.cpp) -o ruckig_bench
// Usage: ruckig_bench DOFS COUNT OUTPUT
// For DOFS in {1, 3, 6}: a fresh std::mt19937(42); per problem, field by field over the joints,
//   p0 ~ U(-2, 2), v0 ~ U(-1, 1), a0 ~ U(-2, 2), pf ~ U(-2, 2) (target velocity and acceleration 0),
//   vmax ~ U(1, 3.14), amax ~ U(5, 15), jmax ~ U(50, 300).
// Problems whose start state Ruckig finds outside the limits are skipped, and so are the (counted, printed) ones
// Ruckig fails to plan, until COUNT are kept. Only
// `Ruckig::calculate` is timed (steady_clock around the call, as Ruckig's own benchmark does).
// OUTPUT gets, per kept problem, 7 × DOFS doubles (p0[], v0[], a0[], pf[], vmax[], amax[], jmax[]), then Ruckig's
// duration (s) and its planning time (µs), native byte order.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <ruckig/ruckig.hpp>

template <size_t DOFs>
static int run(size_t count, const char *output_path) {
    std::mt19937 generator(42);
    std::uniform_real_distribution<double> position(-2.0, 2.0), velocity(-1.0, 1.0), acceleration(-2.0, 2.0);
    std::uniform_real_distribution<double> max_velocity(1.0, 3.14), max_acceleration(5.0, 15.0), max_jerk(50.0, 300.0);
    ruckig::Ruckig<DOFs> otg;
    ruckig::InputParameter<DOFs> input;
    ruckig::Trajectory<DOFs> trajectory;
    std::vector<double> out;
    out.reserve(count * (7 * DOFs + 2));
    size_t kept = 0, drawn = 0, failed = 0;
    while (kept < count) {
        for (size_t j = 0; j < DOFs; ++j) input.current_position[j] = position(generator);
        for (size_t j = 0; j < DOFs; ++j) input.current_velocity[j] = velocity(generator);
        for (size_t j = 0; j < DOFs; ++j) input.current_acceleration[j] = acceleration(generator);
        for (size_t j = 0; j < DOFs; ++j) input.target_position[j] = position(generator);
        for (size_t j = 0; j < DOFs; ++j) input.target_velocity[j] = 0.0;
        for (size_t j = 0; j < DOFs; ++j) input.target_acceleration[j] = 0.0;
        for (size_t j = 0; j < DOFs; ++j) input.max_velocity[j] = max_velocity(generator);
        for (size_t j = 0; j < DOFs; ++j) input.max_acceleration[j] = max_acceleration(generator);
        for (size_t j = 0; j < DOFs; ++j) input.max_jerk[j] = max_jerk(generator);
        ++drawn;
        if (!otg.template validate_input<false>(input, true, true)) continue;
        const auto start = std::chrono::steady_clock::now();
        const auto result = otg.calculate(input, trajectory);
        const auto stop = std::chrono::steady_clock::now();
        if (result != ruckig::Result::Working) { ++failed; continue; }
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.current_position[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.current_velocity[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.current_acceleration[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.target_position[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.max_velocity[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.max_acceleration[j]);
        for (size_t j = 0; j < DOFs; ++j) out.push_back(input.max_jerk[j]);
        out.push_back(trajectory.get_duration());
        out.push_back(std::chrono::duration<double, std::micro>(stop - start).count());
        ++kept;
    }
    FILE *file = std::fopen(output_path, "wb");
    if (file == nullptr || std::fwrite(out.data(), sizeof(double), out.size(), file) != out.size() || std::fclose(file) != 0) {
        std::fprintf(stderr, "ruckig_bench: cannot write %s\n", output_path);
        return 1;
    }
    std::printf("dofs %zu kept %zu drawn %zu failed %zu\n", DOFs, kept, drawn, failed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: ruckig_bench DOFS COUNT OUTPUT\n");
        return 2;
    }
    const long dofs = std::strtol(argv[1], nullptr, 10);
    const long count = std::strtol(argv[2], nullptr, 10);
    if (count <= 0) return 2;
    switch (dofs) {
    case 1: return run<1>(size_t(count), argv[3]);
    case 3: return run<3>(size_t(count), argv[3]);
    case 6: return run<6>(size_t(count), argv[3]);
    default: std::fprintf(stderr, "ruckig_bench: DOFS must be 1, 3 or 6\n"); return 2;
    }
}
