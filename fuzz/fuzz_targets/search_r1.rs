#![no_main]
//! Fuzz target `search_r1`: see rlsim_sim::fuzzing::search_r1 and docs/reliability.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rlsim_sim::fuzzing::search_r1(data));
