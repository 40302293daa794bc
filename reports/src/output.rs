//! Output folders that are never half-written: everything is written into a fresh staging folder beside `--out`,
//! which then replaces the old folder in one atomic exchange, so readers see either the complete old set or the
//! complete new set — never a mix, never stale plots of an earlier run.
//!
//! Rules, each for a reported failure:
//! - the staging folder is created before any simulation, so an unwritable `--out` fails at once;
//! - `--out` may be missing, empty, or an earlier rlsim output (it holds [`MARKER`] or one of rlsim's result
//!   files); anything else is refused rather than replaced, so `--out ~` cannot wipe a home folder;
//! - a symlink is never followed: `--out` itself must not be one, and every file is created new inside a folder
//!   this process made;
//! - a process killed mid-write leaves only a `.NAME.rlsim-tmp-PID` folder, removed by the next writer once that
//!   process is gone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file that marks a folder as rlsim's output (and says which command wrote it).
pub const MARKER: &str = ".rlsim-output";

/// Result files that mark a folder written by an rlsim older than [`MARKER`].
const KNOWN_RESULTS: [&str; 6] =
    ["summary.json", "compare.csv", "sweep.csv", "search.csv", "validate.csv", "fidelity.csv"];

/// An output folder that could not be prepared or put in place.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct OutputError {
    pub path: PathBuf,
    pub message: String,
}

fn fail(path: &Path, message: impl Into<String>) -> OutputError {
    OutputError { path: path.to_path_buf(), message: message.into() }
}

/// A staging folder that becomes `target` on [`Staged::commit`]; dropped uncommitted, it is removed.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl Staged {
    /// Checks `target` may be replaced and creates its staging folder (with the marker) beside it. `command`
    /// names what writes the folder (`run`, `compare`, …), recorded in the marker.
    pub fn new(target: &Path, command: &str) -> Result<Staged, OutputError> {
        let name = target
            .file_name()
            .filter(|n| *n != "." && *n != "..")
            .ok_or_else(|| fail(target, "expected a folder path that ends in a name (not `.`, `..` or `/`)"))?;
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail(
                    target,
                    "is a symbolic link; rlsim does not write through links — name the folder itself",
                ))
            }
            Ok(m) if !m.is_dir() => return Err(fail(target, "exists and is not a folder; choose another --out")),
            Ok(_) => {
                if !is_replaceable(target)? {
                    return Err(fail(
                        target,
                        format!(
                            "exists and is not an rlsim output folder (no {MARKER} and no {}); rlsim replaces its output folder whole, so it will not write here — choose an empty or new --out",
                            KNOWN_RESULTS.join(", ")
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(target, e.to_string())),
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| fail(&parent, format!("cannot create the folder: {e}")))?;
        remove_abandoned(&parent, name);
        let staging = parent.join(staging_name(name, std::process::id()));
        if std::fs::symlink_metadata(&staging).is_ok() {
            // Left by an earlier process that had our pid; nobody else writes there.
            std::fs::remove_dir_all(&staging).map_err(|e| fail(&staging, e.to_string()))?;
        }
        std::fs::create_dir(&staging).map_err(|e| fail(&parent, format!("cannot write here: {e}")))?;
        let staged = Staged { target: target.to_path_buf(), staging, committed: false };
        let marker =
            format!("{{\"written_by\": \"rlsim {command}\", \"version\": \"{}\"}}\n", env!("CARGO_PKG_VERSION"));
        write_new(&staged.staging.join(MARKER), marker.as_bytes())?;
        Ok(staged)
    }

    /// Where to write the files now; they appear at the target on [`Staged::commit`].
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The folder the files will be in once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Puts the staging folder in place of the target in one step, then deletes the old folder.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        if std::fs::symlink_metadata(&self.target).is_err() {
            std::fs::rename(&self.staging, &self.target).map_err(|e| fail(&self.target, e.to_string()))?;
        } else if exchange(&self.staging, &self.target).is_ok() {
            // The staging path now holds the old folder.
            let _ = std::fs::remove_dir_all(&self.staging);
        } else {
            // No atomic exchange here (not Linux, or a file system without it): two renames, the window between
            // them as short as it can be.
            // `.NAME.rlsim-tmp-PID.old`: a name `remove_abandoned` recognises if we die between the renames.
            let mut old = self.staging.clone().into_os_string();
            old.push(".old");
            let old = PathBuf::from(old);
            std::fs::rename(&self.target, &old).map_err(|e| fail(&self.target, e.to_string()))?;
            std::fs::rename(&self.staging, &self.target).map_err(|e| fail(&self.target, e.to_string()))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn staging_name(name: &std::ffi::OsStr, pid: u32) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".rlsim-tmp-{pid}"));
    s
}

/// Whether an existing folder may be replaced: empty, marked, or holding one of rlsim's result files.
fn is_replaceable(dir: &Path) -> Result<bool, OutputError> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| fail(dir, e.to_string()))?;
    if entries.next().is_none() {
        return Ok(true);
    }
    Ok(std::iter::once(MARKER).chain(KNOWN_RESULTS).any(|f| dir.join(f).is_file()))
}

/// Removes staging folders of `name` left by processes that no longer run (killed mid-write).
fn remove_abandoned(parent: &Path, name: &std::ffi::OsStr) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let prefix = format!(".{}.rlsim-tmp-", name.to_string_lossy());
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else { continue };
        let (pid, is_old) = match rest.strip_suffix(".old") {
            Some(pid) => (pid, true),
            None => (rest, false),
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let target = parent.join(name);
        if is_old && std::fs::symlink_metadata(&target).is_err() {
            // Killed between the two renames of the fallback: the complete old set goes back in place.
            let _ = std::fs::rename(e.path(), &target);
        } else {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc we cannot tell: keep the folder (it is hidden and harmless).
        true
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    let rc =
        unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no atomic exchange"))
}

/// Creates a new file (never opening an existing one or a link) and writes `bytes`.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| fail(path, format!("cannot create: {e}")))?;
    f.write_all(bytes).map_err(|e| fail(path, format!("cannot write: {e}")))
}

/// Writes one file atomically: a temporary file beside it, then a rename over it (a link at `path` is replaced,
/// not followed). For single-file outputs (`profile --out`, `trace import/synth --out`) and in-place plot redraws.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let tmp = temp_beside(path)?;
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes)?;
    rename_over(&tmp, path)
}

/// A temporary path in `path`'s folder, named after it and this process.
pub fn temp_beside(path: &Path) -> Result<PathBuf, OutputError> {
    let name = path.file_name().ok_or_else(|| fail(path, "expected a file path"))?;
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(fail(path, "is a folder; expected a file path"));
    }
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".rlsim-tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Renames a finished temporary file over its destination (removing the temporary on failure).
pub fn rename_over(tmp: &Path, path: &Path) -> Result<(), OutputError> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        fail(path, format!("cannot replace: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rlsim-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_commit_replaces_the_whole_folder_and_leaves_no_staging() {
        let root = scratch("commit");
        let out = root.join("run");
        let s = Staged::new(&out, "test").unwrap();
        std::fs::write(s.path().join("summary.json"), "old").unwrap();
        std::fs::write(s.path().join("steps.png"), "old plot").unwrap();
        s.commit().unwrap();
        let s = Staged::new(&out, "test").unwrap();
        std::fs::write(s.path().join("summary.json"), "new").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "new");
        assert!(!out.join("steps.png").exists(), "a stale plot of the earlier run survived");
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("run")]);
    }

    #[test]
    fn an_uncommitted_stage_leaves_the_old_folder_untouched() {
        let root = scratch("drop");
        let out = root.join("run");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("summary.json"), "old").unwrap();
        {
            let s = Staged::new(&out, "test").unwrap();
            std::fs::write(s.path().join("summary.json"), "half").unwrap();
        }
        assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "old");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    }

    #[test]
    fn foreign_folders_files_and_links_are_refused() {
        let root = scratch("refuse");
        let foreign = root.join("home");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("thesis.tex"), "precious").unwrap();
        let e = Staged::new(&foreign, "run").unwrap_err().to_string();
        assert!(e.contains("not an rlsim output folder"), "{e}");
        let file = root.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(Staged::new(&file, "run").unwrap_err().to_string().contains("not a folder"));
        #[cfg(unix)]
        {
            let link = root.join("link");
            std::os::unix::fs::symlink(&foreign, &link).unwrap();
            assert!(Staged::new(&link, "run").unwrap_err().to_string().contains("symbolic link"));
        }
        assert!(Staged::new(Path::new(".."), "run").is_err());
        assert_eq!(std::fs::read_to_string(foreign.join("thesis.tex")).unwrap(), "precious");
    }

    #[test]
    fn abandoned_staging_folders_of_dead_processes_are_removed() {
        let root = scratch("abandoned");
        // pid 4194305 is above Linux's pid_max: no such process.
        let dead = root.join(".run.rlsim-tmp-4194305");
        std::fs::create_dir(&dead).unwrap();
        Staged::new(&root.join("run"), "test").unwrap().commit().unwrap();
        assert!(!dead.exists());
    }

    #[test]
    fn an_old_set_left_between_the_fallback_renames_is_put_back() {
        let root = scratch("fallback");
        let old = root.join(".run.rlsim-tmp-4194305.old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("summary.json"), "old").unwrap();
        std::fs::create_dir(root.join(".run.rlsim-tmp-4194305")).unwrap();
        // The next writer restores the old set, drops the dead writer's half-staged one, and stages its own.
        let s = Staged::new(&root.join("run"), "test").unwrap();
        assert_eq!(std::fs::read_to_string(root.join("run/summary.json")).unwrap(), "old");
        assert!(!old.exists() && !root.join(".run.rlsim-tmp-4194305").exists());
        drop(s);
    }

    #[test]
    fn single_files_are_replaced_atomically_and_links_not_followed() {
        let root = scratch("file");
        let target = root.join("victim");
        std::fs::write(&target, "keep").unwrap();
        #[cfg(unix)]
        {
            let link = root.join("out.csv");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            write_file_atomic(&link, b"new").unwrap();
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
            assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        }
    }
}
