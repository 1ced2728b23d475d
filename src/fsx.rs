//! Safe file writes for every file of ours (settings, backups, the skill,
//! the window registry, presence stamps, the queue and its side files): a
//! fresh temp name created exclusively beside the destination, the old
//! file's mode kept, then a rename over the destination. A rename replaces
//! a symlink planted at the destination instead of writing through it, and
//! an exclusive create never opens a file someone planted at the temp name.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` whole or not at all (see the module).
/// `durable` syncs the data before the rename (a crash then leaves the old
/// file or the new one, never an empty one).
pub fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    write_replace_like(path, bytes, durable, path)
}

/// `write_replace` with the mode of file `like` (a backup takes the mode
/// of what it backs up: a settings.json of mode 600 may hold secrets).
pub fn write_replace_like(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    like: &Path,
) -> std::io::Result<()> {
    // The mode of what is there now (not of a symlink's target: a planted
    // link must not lend its target's mode either).
    let mode = std::fs::symlink_metadata(like)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map(|m| m.permissions());
    let (mut f, tmp) = create_temp(path)?;
    let write = || -> std::io::Result<()> {
        if let Some(p) = mode {
            f.set_permissions(p)?;
        }
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    };
    let done = write().and_then(|()| {
        drop(f);
        std::fs::rename(&tmp, path)
    });
    done.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `write_replace`, synced: for files whose loss would lose a write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replace(path, bytes, true)
}

/// A new file beside `path` with a name nobody could have guessed, opened
/// with create-new (which also refuses to follow a symlink).
fn create_temp(path: &Path) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..8 {
        let mut name = std::ffi::OsString::from(".");
        name.push(path.file_name().unwrap_or_default());
        name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let tmp = path.with_file_name(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Whether `path` itself is a symlink (not following it).
pub fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens `path` for appending without following a symlink at it: an
/// existing symlink is refused (Unix: `O_NOFOLLOW`; elsewhere checked
/// first).
pub fn open_append(path: &Path) -> std::io::Result<File> {
    open_no_follow(
        path,
        OpenOptions::new().create(true).append(true).read(true),
    )
}

/// Opens (creating) a lock file without following a symlink at it and
/// without truncating it: only its lock is used.
pub fn open_lock(path: &Path) -> std::io::Result<File> {
    open_no_follow(
        path,
        OpenOptions::new().create(true).truncate(false).write(true),
    )
}

/// Opens `path` with `o`, refusing a symlink at it.
fn open_no_follow(path: &Path, o: &mut OpenOptions) -> std::io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    if is_symlink(path) {
        return Err(std::io::Error::other("it is a symbolic link"));
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("settings.json");
        std::fs::write(&p, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("stamp");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_replace(&p, b"", false).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!is_symlink(&p));
        // And appending refuses to follow one.
        let q = dir.path().join("progress");
        std::os::unix::fs::symlink(&victim, &q).unwrap();
        assert!(open_append(&q).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
