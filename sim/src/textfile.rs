//! Reading an input file whole, safely: only a regular file (not a device such as `/dev/zero`, a FIFO or a folder)
//! and at most a stated size, so a wrong path can neither hang rlsim nor exhaust memory.

use std::io::Read;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (devices, pipes and folders are refused)")]
    NotRegular,
    #[error("{len} bytes is more than the {max} bytes such a file may have")]
    TooBig { len: u64, max: u64 },
}

/// The text of `path`, a regular file of at most `max_bytes`.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooBig { len: meta.len(), max: max_bytes });
    }
    // Read at most one byte past the limit, in case the file grew since its size was taken.
    let mut text = String::new();
    std::fs::File::open(path)?.take(max_bytes + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(ReadError::TooBig { len: text.len() as u64, max: max_bytes });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_big_files_are_refused() {
        assert!(matches!(read_regular_text(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular)));
        assert!(matches!(read_regular_text(Path::new("/"), 10), Err(ReadError::NotRegular)));
        let f = std::env::temp_dir().join(format!("rlsim-textfile-{}", std::process::id()));
        std::fs::write(&f, "0123456789ab").unwrap();
        assert!(matches!(read_regular_text(&f, 10), Err(ReadError::TooBig { len: 12, max: 10 })));
        assert_eq!(read_regular_text(&f, 12).unwrap(), "0123456789ab");
        let _ = std::fs::remove_file(&f);
    }
}
