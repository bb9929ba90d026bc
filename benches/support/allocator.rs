//! The allocator the `hozon` binary uses (src/main.rs), so that a benchmark measures what an
//! operator runs rather than glibc's malloc.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
