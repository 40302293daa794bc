#![no_main]
//! Fuzz target `plot_readers`: see rlsim_reports::fuzzing::plot_readers and docs/reliability.md.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rlsim_reports::fuzzing::plot_readers(data));
