// boost_replay.cpp: replay one allocation trace on Boost.Interprocess, as segalloc's native
// reference (built and driven by bench/boost_reference.py; not part of Boost).
//
//   boost_replay ALGORITHM SEGMENT_SIZE < OPS
//
// ALGORITHM is rbtree_best_fit or simple_seq_fit; the segment is a
// basic_managed_external_buffer<char, ALGORITHM<null_mutex_family>, iset_index> over a
// SEGMENT_SIZE-byte buffer. The trace arrives already parsed by bench/traces.py (one parser for
// both sides, so IDs, validation and the peak index agree by construction), as the op stream:
//
//   segalloc-ops 1 OPS IDS PEAK_INDEX       header: version, op count, dense ID count, the op
//                                          after which the trace's live bytes first peak
//   CODE ID SIZE ALIGN                       OPS lines; CODE 0 allocate, 1 free, 2 reallocate;
//                                          ID in [0, IDS); ALIGN 0 when unaligned
//
// Replay rules are DESIGN.md's, step for step as bench/replay.py: a failed allocate is counted
// and its ID stays unbound (later ops on it skipped); a reallocate to a size <= the old one tries
// shrink_in_place(limit old, preferred new) and keeps the block whatever the outcome; a larger
// one tries expand_fwd(limit new, preferred new), then allocates anew, copies the old bytes and
// frees the old block (a failure there is counted, the old block kept).
//
// Prints one JSON object: ops, seconds, ns_per_op (wall time of the replay loop only), peak_live,
// high_water (max of block offset from the buffer start + requested size), footprint_ratio,
// failures, frag_at_peak, first_failure_utilisation, plus algorithm, segment_size and
// boost_version. Exit 2: bad arguments or op stream; exit 3: Boost refused the segment.
//
// frag_at_peak: Boost cannot list free blocks, but the census needs only two figures. Total free
// is get_free_memory() less the bytes it counts outside any free block (rbtree_best_fit's 16-byte
// end marker, found on the fresh segment); the largest free block is what allocation_command(allocate_new, limit 1,
// preferred = the whole segment) hands out, since both algorithms fall back to their biggest
// block whole when the preferred size fits nowhere, plus the algorithm's PayloadPerAllocation
// (the header bytes that received size leaves out). The block is freed at once: with both
// neighbours allocated (free ones would have coalesced) it goes back exactly as it was. The probe
// runs untimed after the peak op, where bench/replay.py takes its census; the four traced
// high_water figures of ../shared/reference/boost-1.74-figures.md come out exact with it.

#include <boost/interprocess/indexes/iset_index.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/mem_algo/simple_seq_fit.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>
#include <boost/version.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace bi = boost::interprocess;

namespace {

enum Code : unsigned { kAlloc = 0, kFree = 1, kRealloc = 2 };

struct Op {
    unsigned code;
    std::size_t id;
    std::size_t size;
    std::size_t align;
};

struct Ops {
    std::vector<Op> ops;
    std::size_t ids = 0;
    std::size_t peak_index = 0;
};

// Exits with status 2 and a message naming what is wrong with the input.
[[noreturn]] void die(const std::string &message) {
    std::fprintf(stderr, "boost_replay: %s\n", message.c_str());
    std::exit(2);
}

Ops read_ops(std::FILE *in) {
    Ops parsed;
    unsigned version = 0;
    std::size_t count = 0;
    if (std::fscanf(in, " segalloc-ops %u %zu %zu %zu", &version, &count, &parsed.ids,
                    &parsed.peak_index) != 4 || version != 1)
        die("op stream: expected header 'segalloc-ops 1 OPS IDS PEAK_INDEX'");
    parsed.ops.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        Op &op = parsed.ops[i];
        if (std::fscanf(in, "%u %zu %zu %zu", &op.code, &op.id, &op.size, &op.align) != 4)
            die("op stream: op " + std::to_string(i) + " missing or malformed");
        if (op.code > kRealloc || op.id >= parsed.ids)
            die("op stream: op " + std::to_string(i) + " has a bad code or ID");
    }
    return parsed;
}

// The replay's running figures, carried across the two timed halves.
struct State {
    explicit State(std::size_t ids) : blocks(ids, nullptr), sizes(ids, 0) {}
    std::vector<char *> blocks;
    std::vector<std::size_t> sizes;
    std::size_t live = 0, peak = 0, high_water = 0, failures = 0;
    bool failed = false;
    std::size_t first_failure_live = 0;

    void fail() {
        ++failures;
        if (!failed) {
            failed = true;
            first_failure_live = live;
        }
    }
};

template <class Manager>
void run(const Op *begin, const Op *end, Manager &manager, const char *base, State &s) {
    for (const Op *op = begin; op != end; ++op) {
        if (op->code == kAlloc) {
            void *raw = op->align ? manager.allocate_aligned(op->size, op->align, std::nothrow)
                                  : manager.allocate(op->size, std::nothrow);
            if (!raw) {
                s.fail();
                continue;
            }
            char *block = static_cast<char *>(raw);
            s.blocks[op->id] = block;
            s.sizes[op->id] = op->size;
            s.live += op->size;
            if (s.live > s.peak) s.peak = s.live;
            std::size_t top = static_cast<std::size_t>(block - base) + op->size;
            if (top > s.high_water) s.high_water = top;
        } else if (op->code == kFree) {
            char *block = s.blocks[op->id];
            if (!block) continue;
            manager.deallocate(block);
            s.blocks[op->id] = nullptr;
            s.live -= s.sizes[op->id];
        } else {
            char *block = s.blocks[op->id];
            if (!block) continue;
            std::size_t old = s.sizes[op->id];
            std::size_t size = op->size;
            if (size <= old) {
                std::size_t preferred = size;
                char *reuse = block;
                manager.template allocation_command<char>(
                    bi::shrink_in_place | bi::nothrow_allocation, old, preferred, reuse);
            } else {
                std::size_t preferred = size;
                char *reuse = block;
                char *moved = manager.template allocation_command<char>(
                    bi::expand_fwd | bi::nothrow_allocation, size, preferred, reuse);
                if (!moved) {
                    moved = static_cast<char *>(manager.allocate(size, std::nothrow));
                    if (!moved) {
                        s.fail();
                        continue;
                    }
                    std::memcpy(moved, block, old);
                    manager.deallocate(block);
                    s.blocks[op->id] = moved;
                }
                std::size_t top = static_cast<std::size_t>(moved - base) + size;
                if (top > s.high_water) s.high_water = top;
            }
            s.sizes[op->id] = size;
            s.live += size - old;
            if (s.live > s.peak) s.peak = s.live;
        }
    }
}

// The largest free block in bytes, header included, by the probe described at the top.
template <class Algorithm, class Manager>
std::size_t largest_free_block(Manager &manager, std::size_t segment_size) {
    std::size_t received = segment_size;
    char *reuse = nullptr;
    char *biggest = manager.template allocation_command<char>(
        bi::allocate_new | bi::nothrow_allocation, 1, received, reuse);
    if (!biggest) return 0;
    manager.deallocate(biggest);
    return received + Algorithm::PayloadPerAllocation;
}

// get_free_memory() less what it counts outside any free block (rbtree_best_fit's end marker),
// measured on the fresh segment, where a single free block holds all there is.
template <class Algorithm, class Manager>
std::size_t untracked_free_bytes(Manager &manager, std::size_t segment_size) {
    return manager.get_free_memory() - largest_free_block<Algorithm>(manager, segment_size);
}

// 1 - largest free block / total free, as bench/replay.py's fragmentation().
template <class Algorithm, class Manager>
double fragmentation(Manager &manager, std::size_t segment_size, std::size_t untracked) {
    std::size_t total = manager.get_free_memory() - untracked;
    if (total == 0) return 0.0;
    return 1.0 - static_cast<double>(largest_free_block<Algorithm>(manager, segment_size)) /
                     static_cast<double>(total);
}

// A double as JSON: shortest round-trip digits, and always a float literal ("0.0", not "0").
std::string json_number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    std::string number = text;
    if (number.find_first_of(".en") == std::string::npos) number += ".0";
    return number;
}

double ratio(std::size_t numerator, std::size_t denominator) {
    return denominator ? static_cast<double>(numerator) / static_cast<double>(denominator) : 0.0;
}

void print_result(const char *name, std::size_t segment_size, std::size_t ops, double elapsed_ns,
                  const State &s, double frag) {
    std::string first_failure =
        s.failed ? json_number(ratio(s.first_failure_live, segment_size)) : "null";
    std::printf(
        "{\"algorithm\": \"%s\", \"boost_version\": \"%s\", \"segment_size\": %zu, "
        "\"ops\": %zu, \"seconds\": %s, \"ns_per_op\": %s, \"peak_live\": %zu, "
        "\"high_water\": %zu, \"footprint_ratio\": %s, \"failures\": %zu, "
        "\"frag_at_peak\": %s, \"first_failure_utilisation\": %s}\n",
        name, BOOST_LIB_VERSION, segment_size, ops, json_number(elapsed_ns / 1e9).c_str(),
        json_number(ops ? elapsed_ns / static_cast<double>(ops) : 0.0).c_str(), s.peak,
        s.high_water, json_number(ratio(s.high_water, s.peak)).c_str(), s.failures,
        json_number(frag).c_str(), first_failure.c_str());
}

template <class Algorithm>
int replay(const char *name, const Ops &trace, std::size_t segment_size) {
    using Segment = bi::basic_managed_external_buffer<char, Algorithm, bi::iset_index>;
    // Page-aligned so that the block layout, relative to the buffer start, is the same on every
    // run whatever malloc returns; zeroed (so touched) up front so that the timed loop measures
    // the allocator, not the kernel's first-touch page faults (a quarter of the sqlite replay's
    // time on rbtree_best_fit otherwise).
    const std::size_t page = 4096;
    std::size_t rounded = (segment_size + page - 1) / page * page;
    std::unique_ptr<char, decltype(&std::free)> buffer(
        static_cast<char *>(std::aligned_alloc(page, rounded)), &std::free);
    if (!buffer) die("cannot allocate a " + std::to_string(segment_size) + "-byte buffer");
    char *base = buffer.get();
    std::memset(base, 0, rounded);
    std::unique_ptr<Segment> segment;
    try {
        segment = std::make_unique<Segment>(bi::create_only, base, segment_size);
    } catch (const std::exception &error) {
        std::fprintf(stderr, "boost_replay: Boost refused a %zu-byte segment: %s\n", segment_size,
                     error.what());
        return 3;
    }
    auto &manager = *segment->get_segment_manager();
    std::size_t untracked = untracked_free_bytes<Algorithm>(manager, segment_size);
    State state(trace.ids);
    std::size_t split = std::min(trace.peak_index + 1, trace.ops.size());
    const Op *ops = trace.ops.data();

    auto t0 = std::chrono::steady_clock::now();
    run(ops, ops + split, manager, base, state);
    auto t1 = std::chrono::steady_clock::now();
    double frag = fragmentation<Algorithm>(manager, segment_size, untracked);
    auto t2 = std::chrono::steady_clock::now();
    run(ops + split, ops + trace.ops.size(), manager, base, state);
    auto t3 = std::chrono::steady_clock::now();

    double elapsed_ns = std::chrono::duration<double, std::nano>((t1 - t0) + (t3 - t2)).count();
    print_result(name, segment_size, trace.ops.size(), elapsed_ns, state, frag);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) die("usage: boost_replay rbtree_best_fit|simple_seq_fit SEGMENT_SIZE < OPS");
    const std::string algorithm = argv[1];
    char *end = nullptr;
    unsigned long long segment_size = std::strtoull(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || segment_size == 0)
        die(std::string("not a segment size: ") + argv[2]);
    if (algorithm != "rbtree_best_fit" && algorithm != "simple_seq_fit")
        die("unknown algorithm " + algorithm + " (rbtree_best_fit or simple_seq_fit)");
    Ops trace = read_ops(stdin);
    if (algorithm == "rbtree_best_fit")
        return replay<bi::rbtree_best_fit<bi::null_mutex_family>>(argv[1], trace, segment_size);
    return replay<bi::simple_seq_fit<bi::null_mutex_family>>(argv[1], trace, segment_size);
}
