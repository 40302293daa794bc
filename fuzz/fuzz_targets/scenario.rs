#![no_main]
//! Fuzz target `scenario`: see rlsim_sim::fuzzing::scenario and docs/reliability.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rlsim_sim::fuzzing::scenario(data));
