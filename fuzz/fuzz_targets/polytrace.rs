#![no_main]
//! Fuzz target `polytrace`: see rlsim_sim::fuzzing::polytrace and docs/reliability.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rlsim_sim::fuzzing::polytrace(data));
