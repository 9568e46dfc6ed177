#![no_main]
// Drives `mp::__fuzz::pool_worker` (see its doc); crashers go to tests/fuzz_regressions.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mp::__fuzz::pool_worker(data));
