//! A per-test output folder under the system's temp dir that is removed when the test ends, so `cargo test` leaves
//! nothing behind (each run's plots and traces are megabytes).

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A folder path that is deleted, with everything in it, when this value drops (also when the test panics).
pub struct Scratch(PathBuf);

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `<temp>/rlsim-<kind>-<name>-<pid>`, absent on return (a command under test creates it) unless `create`.
pub fn scratch(kind: &str, name: &str, create: bool) -> Scratch {
    let d = std::env::temp_dir().join(format!("rlsim-{kind}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    if create {
        std::fs::create_dir_all(&d).unwrap();
    }
    Scratch(d)
}
