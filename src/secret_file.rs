//! Secret files (passwords, private keys): read only when no one but the
//! owner can read them, as ssh refuses a private key that others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "secret file {path} is readable by group or others (mode {mode:03o}): \
         run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
}

/// Refuses a file whose mode lets group or others read or write it.
pub fn check_private(path: &Path) -> Result<(), SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The first line of a private file, without its line ending.
pub fn read_first_line(path: &Path) -> Result<String, SecretFileError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(mode: u32, text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn private_file_is_read() {
        let file = file_with(0o600, "s3cret\nignored\n");
        assert_eq!(read_first_line(file.path()).unwrap(), "s3cret");
        let file = file_with(0o400, "s3cret");
        assert_eq!(read_first_line(file.path()).unwrap(), "s3cret");
    }

    #[test]
    fn group_or_world_readable_file_is_refused() {
        for mode in [0o640, 0o604, 0o644, 0o660] {
            let file = file_with(mode, "s3cret\n");
            let err = read_first_line(file.path()).unwrap_err();
            assert!(matches!(err, SecretFileError::TooOpen { .. }), "{mode:o}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn empty_file_is_refused() {
        let file = file_with(0o600, "\n");
        assert!(matches!(
            read_first_line(file.path()),
            Err(SecretFileError::Empty { .. })
        ));
    }
}
