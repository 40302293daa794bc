#![no_main]
//! Fuzz target `trace_csv`: see rlsim_sim::fuzzing::trace_csv and docs/reliability.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rlsim_sim::fuzzing::trace_csv(data));
