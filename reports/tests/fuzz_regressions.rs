//! One test per crash found while fuzzing the plot readers (docs/reliability.md, "Fuzzing"): the exact input must give
//! a located `Err` instead of a panic or a plot that never finishes.

use rlsim_reports::plots::read_run;

/// Two finite `generate` spans of one trajectory whose tokens add up to infinity: read_run returned Ok with an
/// infinite response length, on which the length plot's tick search never ends.
#[test]
fn generate_tokens_adding_up_to_infinity_are_an_error() {
    let dir = std::env::temp_dir().join(format!("rlsim-plot-regress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("summary.json"), "{}").unwrap();
    std::fs::write(
        dir.join("timeline.csv"),
        "worker,kind,start_s,end_s,step,trajectory,tokens,version\nw0,generate,0,1,0,7,1e308,0\nw0,generate,1,2,0,7,1e308,0\n",
    )
    .unwrap();
    std::fs::write(dir.join("steps.csv"), "step,start_s,end_s\n0,0,2\n").unwrap();
    let e = read_run(&dir).err().expect("must be rejected").to_string();
    assert!(e.contains("timeline.csv: trajectory 7: its generate spans add up to inf tokens"), "{e}");
}
